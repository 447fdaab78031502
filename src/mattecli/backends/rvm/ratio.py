"""RVM's downsample ratio: the one rule for the API, the CLI and the video pipeline (pure Python, no torch).

The authors' guidance (documentation/inference.md, "Downsample Ratio"): "so that the downsampled resolution is
between 256 and 512", with this table:

    resolution   portrait   full-body
    <= 512x512     1.0        1.0
    1280x720       0.375      0.6
    1920x1080      0.25       0.4
    3840x2160      0.125      0.2

Every portrait row maps the long side to 480 px and every full-body row to 768 px, so :func:`auto_downsample_ratio`
uses that rule at any size (never above 1). Note: the official ``inference.convert_video`` has another default
when no ratio is given, ``min(512 / max(h, w), 1)``; pass ``downsample_ratio`` explicitly to reproduce it.
"""
from __future__ import annotations

SHOTS = {"portrait": 480.0, "full-body": 768.0}
SMALL = 512   # long side up to which the network runs at full resolution


def auto_downsample_ratio(h: int, w: int, shot: str = "portrait") -> float:
    """The authors' table as a rule: long side <= 512 -> 1.0; else the long side becomes 480 px (portrait) or
    768 px (``shot="full-body"``): 1080p -> 0.25 / 0.4, 720p -> 0.375 / 0.6, 4K -> 0.125 / 0.2."""
    if shot not in SHOTS:
        raise ValueError(f"shot must be one of {', '.join(SHOTS)}, not {shot!r}")
    side = max(int(h), int(w))
    if side <= SMALL:
        return 1.0
    return min(1.0, SHOTS[shot] / side)


def official_default_ratio(h: int, w: int) -> float:
    """``inference.convert_video``'s own default (when its caller gives no ratio): ``min(512 / max(h, w), 1)``."""
    return min(512 / max(int(h), int(w)), 1)
