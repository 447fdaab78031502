"""Fused full-resolution CPU kernels (numba, compiled once and cached on disk; torch ops where numba is missing).

RVM's last step at full resolution is memory-bound: bilinear upsampling of 8 coefficient maps (the guided filter's
A and b) to the frame size, ``fgr = A[:3] * x + b[:3] + x``, ``pha = A[3] * mean(x) + b[3]``, both clamped to
[0, 1]. As graph ops (torch or onnxruntime) that is a full-size 8-channel tensor written and read again plus five
more passes; here it is one pass over the frame that reads the frame (uint8 or float) once and writes the outputs
once, the foreground straight into an HWC buffer (so the numpy result needs no transposing copy). Same arithmetic
per pixel as ``F.interpolate(mode="bilinear", align_corners=False)`` followed by the affine step, up to float
rounding (1e-7). :func:`downsample` is the network's input resize (``F.interpolate(scale_factor=r,
recompute_scale_factor=False)``), reading uint8 frames directly.

Rows are split into bands run by ``torch.get_num_threads()`` threads (numba releases the GIL).
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_compiled: dict = {}
_numba_ok: bool | None = None


def _kernels():
    """(apply, downsample) numba functions, or None when numba is not usable."""
    global _numba_ok
    if _numba_ok is False:
        return None
    with _lock:
        if "apply" in _compiled:
            return _compiled["apply"], _compiled["down"]
        try:
            from numba import njit
        except Exception:   # numba missing or broken: torch ops instead
            _numba_ok = False
            return None
        jit = njit(nogil=True, cache=True, fastmath=False, boundscheck=False)
        _compiled["apply"] = jit(_apply_rows)
        _compiled["down"] = jit(_down_rows)
        _numba_ok = True
        return _compiled["apply"], _compiled["down"]


def _axis(n_out: int, n_in: int, scale: float):
    """Source index pairs and weights of bilinear resampling along one axis (align_corners=False)."""
    s = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(scale) - np.float32(0.5)
    s = np.maximum(s, np.float32(0.0))
    i0 = np.minimum(s.astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (s - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, lam


def _apply_rows(ab, x, div, y0, y1, ly, x0, x1, lx, fgr, pha, r0, r1):   # pragma: no cover - compiled by numba
    w = ab.shape[2]
    W = x.shape[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    third = np.float32(3.0)
    row = np.empty((w, 8), np.float32)
    for i in range(r0, r1):
        a0 = y0[i]
        a1 = y1[i]
        l1 = ly[i]
        l0 = one - l1
        for c in range(8):
            for k in range(w):
                row[k, c] = ab[c, a0, k] * l0 + ab[c, a1, k] * l1
        for j in range(W):
            p = x0[j]
            q = x1[j]
            m1 = lx[j]
            m0 = one - m1
            r = np.float32(x[i, j, 0]) / div
            g = np.float32(x[i, j, 1]) / div
            b = np.float32(x[i, j, 2]) / div
            v = (row[p, 0] * m0 + row[q, 0] * m1) * r + (row[p, 4] * m0 + row[q, 4] * m1) + r
            fgr[i, j, 0] = min(max(v, zero), one)
            v = (row[p, 1] * m0 + row[q, 1] * m1) * g + (row[p, 5] * m0 + row[q, 5] * m1) + g
            fgr[i, j, 1] = min(max(v, zero), one)
            v = (row[p, 2] * m0 + row[q, 2] * m1) * b + (row[p, 6] * m0 + row[q, 6] * m1) + b
            fgr[i, j, 2] = min(max(v, zero), one)
            mean = (r + g + b) / third
            v = (row[p, 3] * m0 + row[q, 3] * m1) * mean + (row[p, 7] * m0 + row[q, 7] * m1)
            pha[i, j] = min(max(v, zero), one)


def _down_rows(x, div, y0, y1, ly, x0, x1, lx, out, r0, r1):   # pragma: no cover - compiled by numba
    one = np.float32(1.0)
    w = out.shape[2]
    for c in range(3):
        for i in range(r0, r1):
            a0 = y0[i]
            a1 = y1[i]
            l1 = ly[i]
            l0 = one - l1
            for j in range(w):
                p = x0[j]
                q = x1[j]
                m1 = lx[j]
                m0 = one - m1
                top = (np.float32(x[a0, p, c]) / div) * m0 + (np.float32(x[a0, q, c]) / div) * m1
                bot = (np.float32(x[a1, p, c]) / div) * m0 + (np.float32(x[a1, q, c]) / div) * m1
                out[c, i, j] = top * l0 + bot * l1


def _bands(n: int, fn) -> None:
    """fn(r0, r1) over n rows in torch.get_num_threads() bands, in parallel."""
    global _pool
    import torch

    k = max(1, min(int(torch.get_num_threads()), n // 8 or 1))
    if k == 1:
        fn(0, n)
        return
    with _lock:
        if _pool is None or _pool._max_workers < k - 1:
            _pool = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="mattecli-kernel")
        pool = _pool
    edges = [round(i * n / k) for i in range(k + 1)]
    futures = [pool.submit(fn, edges[i], edges[i + 1]) for i in range(1, k)]
    fn(edges[0], edges[1])
    for f in futures:
        f.result()


def _divisor(x) -> np.float32:
    return np.float32(255.0) if x.dtype == np.uint8 else np.float32(1.0)


def guided_apply(ab, x, fgr_out=None, pha_out=None):
    """ab [8,h,w] float32 (A then b), x [3,H,W] uint8 (divided by 255) or float32 in [0,1] (torch tensors on the
    CPU, any memory layout: NHWC frames from the video reader are read in place) -> (fgr [3,H,W] as a view of an
    HWC buffer, pha [1,H,W]), the clamped RVM outputs."""
    import torch

    H, W = int(x.shape[-2]), int(x.shape[-1])
    h, w = int(ab.shape[-2]), int(ab.shape[-1])
    fgr = torch.empty((H, W, 3), dtype=torch.float32) if fgr_out is None else fgr_out
    pha = torch.empty((1, H, W), dtype=torch.float32) if pha_out is None else pha_out
    ks = _kernels()
    if ks is None:
        return _apply_torch(ab, x, fgr, pha)
    a = np.ascontiguousarray(ab.detach().float().numpy())
    xs = x.permute(1, 2, 0).numpy()            # an HWC view: no copy for NHWC frames, strided for NCHW
    y0, y1, ly = _axis(H, h, h / H)
    x0, x1, lx = _axis(W, w, w / W)
    fn, f_np, p_np, div = ks[0], fgr.numpy(), pha.numpy()[0], _divisor(xs)
    _bands(H, lambda r0, r1: fn(a, xs, div, y0, y1, ly, x0, x1, lx, f_np, p_np, r0, r1))
    return fgr.permute(2, 0, 1), pha


def _apply_torch(ab, x, fgr, pha):
    import torch
    import torch.nn.functional as F

    xf = x.float() / 255.0 if x.dtype == torch.uint8 else x
    up = F.interpolate(ab[None].float(), tuple(xf.shape[-2:]), mode="bilinear", align_corners=False)[0]
    f = (up[0:3] * xf + up[4:7] + xf).clamp_(0.0, 1.0)
    p = (xf.mean(0, keepdim=True) * up[3:4] + up[7:8]).clamp_(0.0, 1.0)
    fgr.copy_(f.permute(1, 2, 0))
    pha.copy_(p)
    return fgr.permute(2, 0, 1), pha


def out_size(n: int, ratio: float) -> int:
    """``F.interpolate(scale_factor=ratio)``'s output size."""
    return int(math.floor(n * ratio))


def downsample(x, ratio: float):
    """x [3,H,W] uint8 or float32 (CPU tensor) -> [1,3,h,w] float32, bilinear as ``F.interpolate(x / 255,
    scale_factor=ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False)``."""
    import torch

    H, W = int(x.shape[-2]), int(x.shape[-1])
    h, w = out_size(H, ratio), out_size(W, ratio)
    ks = _kernels()
    if ks is None:
        import torch.nn.functional as F

        xf = x.float() / 255.0 if x.dtype == torch.uint8 else x
        return F.interpolate(xf[None], scale_factor=ratio, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)
    out = torch.empty((1, 3, h, w), dtype=torch.float32)
    xs = x.permute(1, 2, 0).numpy()
    scale = float(np.float32(1.0 / ratio))
    y0, y1, ly = _axis(h, H, scale)
    x0, x1, lx = _axis(w, W, scale)
    fn, o_np, div = ks[1], out.numpy()[0], _divisor(xs)
    _bands(h, lambda r0, r1: fn(xs, div, y0, y1, ly, x0, x1, lx, o_np, r0, r1))
    return out
