"""Opt-in tiled inference with overlap and linear blending (for images too large for one pass).

``tiled_batch(run, batch, tile, overlap)`` runs ``run(sub_batch) -> Prediction`` on overlapping crops of at most
``tile`` x ``tile`` pixels of a :class:`~mattecli.backends.base.Batch` and blends alpha, foreground and background
with weights that ramp linearly across the overlap (no ramp on the image border). A crop whose trimap has no unknown
pixel is not run: the trimap decides its alpha and the image gives its colours.

``tiled(fn, image, trimap, tile, overlap)`` is the same on numpy arrays for pipelines that work per image.
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


def tiled_batch(run, batch, tile: int, overlap: int):
    """Tiled ``run`` over a Batch -> Prediction (float32 tensors on the batch's device; extras are dropped)."""
    import torch

    from ..base import Prediction

    h, w = batch.size
    tile = int(tile)
    overlap = int(max(0, min(overlap, tile // 2)))
    dev = batch.device
    acc: dict = {}
    wsum = torch.zeros((1, 1, h, w), dtype=torch.float64, device=dev)
    for y0 in _starts(h, tile, overlap):
        for x0 in _starts(w, tile, overlap):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            sub = batch.map(lambda t: t[..., y0:y1, x0:x1])
            if sub.trimap is not None and not bool((sub.trimap == 128).any()):
                img = sub.float_image()
                pred = Prediction(alpha=(sub.trimap == 255).float(), foreground=img, background=img)
            else:
                pred = run(sub)
            wy = torch.from_numpy(_ramp(y1 - y0, y0 == 0, y1 == h, overlap)).to(dev)
            wx = torch.from_numpy(_ramp(x1 - x0, x0 == 0, x1 == w, overlap)).to(dev)
            wt = (wy[:, None] * wx[None, :])[None, None]
            wsum[..., y0:y1, x0:x1] += wt
            for k in ("alpha", "foreground", "background"):
                v = getattr(pred, k)
                if v is None:
                    continue
                if k not in acc:
                    acc[k] = torch.zeros((batch.n, v.shape[1], h, w), dtype=torch.float64, device=dev)
                acc[k][..., y0:y1, x0:x1] += v.double() * wt
    out = {k: (v / wsum).float() for k, v in acc.items()}
    return Prediction(alpha=out["alpha"], foreground=out.get("foreground"), background=out.get("background"))
