"""Image sequences: a folder of frames (natural order) or a printf pattern such as ``frames/%06d.png``."""
from __future__ import annotations

import os
import re

import numpy as np

from ..batch import natural_key
from ..formats import IMAGE_EXTS, TEMP_SUFFIX

PATTERN_RE = re.compile(r"%0?(\d*)d")


def is_pattern(path: str | os.PathLike) -> bool:
    """True for a printf-style frame pattern (``%06d`` in the file name)."""
    return bool(PATTERN_RE.search(os.path.basename(os.fspath(path))))


def is_sequence_target(path: str | os.PathLike) -> bool:
    """True for a folder or a printf-style pattern (``%06d``)."""
    return is_pattern(path) or os.path.isdir(os.fspath(path))


def frame_files(folder: str | os.PathLike) -> list[str]:
    """Image files directly in ``folder`` (hidden and temp files skipped), in natural order."""
    folder = os.fspath(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    files = [os.path.join(folder, f) for f in names
             if f.lower().endswith(IMAGE_EXTS) and not f.startswith(".") and not f.endswith(TEMP_SUFFIX)
             and os.path.isfile(os.path.join(folder, f))]
    return sorted(files, key=natural_key)


def list_sequence(path: str | os.PathLike) -> list[str]:
    """Files of an image sequence: a folder (images, natural sort) or a ``%0Nd`` pattern (sorted by number)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return frame_files(p)
    folder, base = os.path.split(p)
    folder = folder or "."
    m = PATTERN_RE.search(base)
    if not m or not os.path.isdir(folder):
        return []
    rx = re.compile("^" + re.escape(base[:m.start()]) + r"(\d+)" + re.escape(base[m.end():]) + "$")
    found = []
    for f in os.listdir(folder):
        mm = rx.match(f)
        if mm:
            found.append((int(mm.group(1)), os.path.join(folder, f)))
    return [f for _, f in sorted(found)]


def read_frame(path: str, gray: bool = False) -> np.ndarray:
    """One frame file as HxWx3 (or HxW with ``gray``) uint8 RGB, read by the one image reader (16-bit frames are
    rounded to 8 bits, an alpha channel is dropped)."""
    from ..imaging.arrays import to_uint8
    from ..imaging.io import read_rgb

    a = to_uint8(read_rgb(path))
    return np.ascontiguousarray(a[..., 0]) if gray else a
