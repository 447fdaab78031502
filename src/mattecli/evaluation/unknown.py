"""Which trimap pixels the metrics score: the unknown region, checked before scoring.

The official DIM code counts exactly the value 128 as unknown. Trimaps from other tools often mark unknown with
another grey (102, 127, 64...); scored as stored they have no unknown pixel at all, and every image scores a perfect
0. So a trimap with no pixel of the unknown value(s) but other grey values is an error for that item, naming the
values found and the two ways out: convert the trimaps (``mattecli trimap --from-alpha``, the tool's one trimap rule:
<= 25 background, >= 230 foreground, anything between unknown -> 128) or say which values are unknown
(``--unknown-values 102[,N]``: those values are unknown, every other value, 128 included, is known).

A trimap with only 0 and 255 has no unknown pixel: the image has nothing to score; it is left out of every mean and
the report counts it (:data:`LEFT_OUT`).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError, UsageError

OFFICIAL = (128,)
LEFT_OUT = "no unknown pixels"
_MANY = 4                          # more grey values than this: probably not a trimap at all


def parse_unknown_values(spec: str | Iterable[int] | None) -> tuple[int, ...] | None:
    """``"102"`` / ``"102,128"`` / ``[102]`` -> ``(102,)`` / ``(102, 128)``; None or empty -> None (128, as the
    official code)."""
    if spec is None:
        return None
    parts = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [str(v) for v in spec]
    parts = [p for p in parts if p]
    if not parts:
        return None
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise UsageError(f"--unknown-values {spec}: {p!r} is not a whole number; give the trimap's unknown grey "
                             "value(s), e.g. --unknown-values 102 or 102,128") from None
        if not 0 <= v <= 255:
            raise UsageError(f"--unknown-values {spec}: {v} is not an 8-bit value (0..255)")
        if v not in out:
            out.append(v)
    return tuple(out)


def describe(values: Sequence[int] | None) -> str:
    """The region's name in reports: ``trimap == 128`` or ``trimap in {102, 128}``."""
    vals = tuple(values or OFFICIAL)
    return f"trimap == {vals[0]}" if len(vals) == 1 else "trimap in {" + ", ".join(map(str, vals)) + "}"


def _listed(vals: Sequence[int]) -> str:
    return ", ".join(map(str, vals))


def scored_trimap(trimap: np.ndarray, values: Sequence[int] | None, where: str) -> np.ndarray:
    """The trimap the metrics see: as stored with the official 128; with other ``values``, those pixels become 128
    and all others 0. Raises :class:`InputError` when no pixel has an unknown value but other grey values exist."""
    t = np.asarray(trimap)
    if t.ndim == 3:
        t = t[..., 0]
    if t.dtype != np.uint8:                 # float/16-bit arrays from API callers: the metrics' own rule
        return trimap
    vals = tuple(values or OFFICIAL)
    unknown = np.isin(t, vals)
    if not unknown.any():
        greys = [int(v) for v in np.unique(t) if v not in (0, 255)]
        if greys:
            raise InputError(_no_unknown_message(greys, vals, where), path=where)
    if vals == OFFICIAL:
        return t
    return np.where(unknown, np.uint8(128), np.uint8(0))


def _no_unknown_message(greys: list[int], vals: tuple[int, ...], where: str) -> str:
    counted = ("the official metrics count only 128 as unknown" if vals == OFFICIAL
               else f"--unknown-values counts only {_listed(vals)} as unknown")
    convert = ("convert the trimaps with `mattecli trimap --from-alpha TRIMAPS --lo 0.1 --hi 0.9 -o FIXED/` "
               "(grey becomes 128)")
    if len(greys) > _MANY:
        return (f"{where}: no pixel is {_listed(vals)} but {len(greys)} grey values ({greys[0]}..{greys[-1]}) are: "
                f"is this a trimap? {counted}; {convert}")
    what = f"unknown is {greys[0]} here" if len(greys) == 1 else f"unknown is one of {_listed(greys)} here"
    return f"{where}: {what}: {counted}; {convert} or pass --unknown-values {','.join(map(str, greys))}"
