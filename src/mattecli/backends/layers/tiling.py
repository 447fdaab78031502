"""Opt-in tiled inference with overlap and linear blending (for images too large for one pass).

``tiled(fn, image, trimap, tile, overlap)`` runs ``fn(image_crop, trimap_crop) -> dict of HxW[xC] float arrays`` on
overlapping crops of at most ``tile`` x ``tile`` pixels and blends the results with weights that ramp linearly across
the overlap (no ramp on the image border). Tiles whose trimap has no unknown pixel may be skipped by the caller's
``fn`` returning None, in which case ``fill(image_crop, trimap_crop)`` provides the result.
"""
from __future__ import annotations

import numpy as np


def _starts(n: int, tile: int, overlap: int) -> list:
    if n <= tile:
        return [0]
    step = max(1, tile - overlap)
    s = list(range(0, n - tile, step))
    s.append(n - tile)
    return sorted(set(s))


def _ramp(n: int, lo_edge: bool, hi_edge: bool, overlap: int) -> np.ndarray:
    r = np.ones(n, np.float64)
    if overlap <= 0:
        return r
    i = np.arange(n, dtype=np.float64)
    if not lo_edge:
        r = np.minimum(r, (i + 1) / (overlap + 1))
    if not hi_edge:
        r = np.minimum(r, (n - i) / (overlap + 1))
    return r


def tiled(fn, image: np.ndarray, trimap: np.ndarray, tile: int, overlap: int) -> dict:
    h, w = trimap.shape[:2]
    tile = int(tile)
    overlap = int(max(0, min(overlap, tile // 2)))
    acc: dict = {}
    wsum = np.zeros((h, w), np.float64)
    for y0 in _starts(h, tile, overlap):
        for x0 in _starts(w, tile, overlap):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            out = fn(image[y0:y1, x0:x1], trimap[y0:y1, x0:x1])
            wy = _ramp(y1 - y0, y0 == 0, y1 == h, overlap)
            wx = _ramp(x1 - x0, x0 == 0, x1 == w, overlap)
            wt = wy[:, None] * wx[None, :]
            wsum[y0:y1, x0:x1] += wt
            for k, v in out.items():
                if v is None:
                    continue
                if k not in acc:
                    acc[k] = np.zeros((h, w) + v.shape[2:], np.float64)
                acc[k][y0:y1, x0:x1] += v * (wt if v.ndim == 2 else wt[..., None])
    res = {}
    for k, v in acc.items():
        res[k] = (v / (wsum if v.ndim == 2 else wsum[..., None])).astype(np.float32)
    return res
