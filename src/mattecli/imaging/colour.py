"""Colours given on the command line, one meaning for every verb (``--composite-bg``, ``--pad``).

``#RRGGBB``, ``#RGB``, ``R,G,B`` (0-255), ``r,g,b`` (0.0-1.0, with a decimal point) or a name. Names follow the
common RGB meaning (``green`` is pure green, 0,255,0); keying colours have their own names: ``greenscreen``
(chroma green, 0,177,64), ``bluescreen`` (0,71,187), and ``rvm-green`` (120,255,155, the green Robust Video Matting
composites over, `video`'s default).
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import UsageError

NAMED_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "grey": (128, 128, 128), "gray": (128, 128, 128), "yellow": (255, 255, 0), "magenta": (255, 0, 255),
    "cyan": (0, 255, 255), "greenscreen": (0, 177, 64), "chroma-green": (0, 177, 64), "bluescreen": (0, 71, 187),
    "rvm-green": (120, 255, 155),
}


def colour_or_none(text: str) -> np.ndarray | None:
    """float32 RGB in [0,1], or None when ``text`` is not a colour (it may then be a file name)."""
    s = str(text).strip().lower()
    if s in NAMED_COLOURS:
        return np.array(NAMED_COLOURS[s], np.float32) / 255.0
    m = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", s)
    if m and (s.startswith("#") or len(m.group(1)) == 6):
        h = m.group(1)
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0
    parts = [p for p in re.split(r"[,\s]+", s) if p]
    if len(parts) == 3:
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            return None
        if all(v >= 0 for v in vals):
            if any("." in p for p in parts) and all(v <= 1 for v in vals):
                return np.array(vals, np.float32)
            if all(v <= 255 for v in vals):
                return np.array(vals, np.float32) / 255.0
    return None


def parse_colour(text: str, flag: str = "colour") -> np.ndarray:
    """Like :func:`colour_or_none`, but a usage error (exit 2) naming the valid forms."""
    c = colour_or_none(text)
    if c is None:
        raise UsageError(f"{flag} {text!r}: not a colour; use #RRGGBB, R,G,B (0-255), r,g,b (0.0-1.0) or a name "
                         f"({', '.join(sorted(NAMED_COLOURS))})")
    return c


def neither_colour_nor_file(text: str, flag: str = "--composite-bg") -> UsageError:
    """The one message for a background that is no colour and no existing file (a typo, a missing image)."""
    return UsageError(f"{flag} {text!r}: neither a colour (#RRGGBB, R,G,B, or a name such as white, greenscreen) "
                      "nor an existing image file")
