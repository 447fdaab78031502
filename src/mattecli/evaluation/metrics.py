"""SAD, MSE, Grad and Conn exactly as the official Deep Image Matting (Composition-1k) MATLAB code; dtSSD, MESSDdt.

What "exactly" means (checked against the official ``.m`` files run under GNU Octave, ``../shared/eval_vectors``):

- Inputs are 8-bit single-channel arrays ``P`` (prediction), ``G`` (ground truth), ``T`` (trimap). The unknown
  region is ``T == 128`` exactly (127/129 count as known). ``p = single(P)/255``, ``g = single(G)/255``.
- Sums run over the unknown region only, but gradients and connected components use the **whole image**; the
  prediction is never clamped to the trimap.
- Sums are float32, accumulated the way Octave's ``sum(sum(X))`` does (sequentially down each column, then across
  the column totals), so the raw values are bit-identical to the official ones on the shared vectors.
- SAD: ``sum |single(P)-single(G)|/255 / 1000``. MSE: ``sum ((single(P)-single(G))/255)^2 / |U|`` (NaN when there
  is no unknown pixel); the error map is formed in that order, as the official files do.
- Grad: per-image ``mat2gray`` (min-max stretch in float64; a constant image gives a zero gradient), 9x9
  Gaussian-derivative kernel (sigma 1.4, half size ``ceil(sigma*sqrt(-2 ln(sqrt(2 pi) sigma 0.01)))`` = 4, unit
  Frobenius norm), replicate borders, magnitude cast to float32, ``sum (|grad p| - |grad g|)^2`` (not scaled).
  The kernel is an outer product, so it is applied as two separable 1-D passes (same numbers, ~10x faster).
- Conn: thresholds ``0:0.1:1``; for k = 1..10 the largest **4-connected** component of ``(p >= t_k) & (g >= t_k)``
  (ties: the component whose first pixel comes first in column-major order, as ``bwconncomp`` lists them); an empty
  intersection gives an empty component (the guarded GCA copy; the unguarded copy crashes there). ``l`` = the
  threshold before the first level at which the pixel is not in the component (1 if it never drops out);
  ``phi = 1 - d [d >= 0.15]`` with ``d = alpha - l``; ``sum |phi_p - phi_g|`` (not scaled). The thresholds are
  applied on the 8-bit values (``P >= ceil(25.5 k)``), which is exactly what float32 ``p >= t_k`` gives and avoids
  the float64 ``153/255 < 0.6`` trap. The official code's unused distance transforms are skipped.

Reporting units (what papers print, and what :func:`compute_all` returns): SAD = raw SAD (already /1000),
MSE = raw MSE, Grad = raw Grad / 1000, Conn = raw Conn / 1000.

Whole-image mode: ``trimap=None`` makes every pixel "unknown" (MSE then divides by H*W).

Video (:func:`video_metrics`): dtSSD as RobustVideoMatting's ``evaluation/evaluate_lr.py`` (``MetricDTSSD``):
per frame ``sqrt(sum(((p_t - p_{t-1}) - (g_t - g_{t-1}))^2) / N) * 100`` with ``N = H*W``, frame 0 scored 0 and
included in the per-sequence mean (RVM's spreadsheet averages all frame columns). RVM's code has no MESSDdt; ours
follows Erofeev et al. 2015 and the DVM/TCVOM evaluation code: ``E_t = p_t - g_t``; ``v_t`` = Farneback optical flow
of the ground truth from frame t to t+1 (OpenCV, parameters 0.5, 5, 10, 2, 7, 1.5, Gaussian), rounded to whole
pixels and clamped to the frame; per pair ``sum |E_t(x)^2 - E_{t+1}(x + v_t(x))^2| / N * 1000``; the sequence value
is the mean over the T-1 pairs.
"""
from __future__ import annotations

import math
import time
from typing import Iterable

import numpy as np

from ..imaging.arrays import to_float, to_uint8

__all__ = [
    "official_raw", "compute_all", "sad_error", "mse_error", "gradient_error", "connectivity_error",
    "unknown_mask", "as_alpha_u8", "gauss_kernels", "dtssd_sequence", "messddt_sequence", "video_metrics",
    "METRICS", "VIDEO_METRICS",
]

METRICS = ("sad", "mse", "grad", "conn")
VIDEO_METRICS = ("sad", "mse", "grad", "conn", "dtssd", "messddt")

_F255 = np.float32(255.0)
_F1000 = np.float32(1000.0)
# Conn: p >= k/10 in float32  <=>  P >= ceil(25.5 k) for 8-bit P (k/255 == t only at 51, 102, 153, 204, 255,
# where float32 p >= t holds).
_CONN_U8_THRESH = tuple((51 * k + 1) // 2 for k in range(11))
# l values as Octave sees them: double range element k*0.1 converted to single.
_L_F32 = np.array([np.float32(k * 0.1) for k in range(10)] + [np.float32(1.0)], np.float32)
_P_F32 = to_float(np.arange(256, dtype=np.uint8))  # single(P)/255 for every 8-bit value
_D_F32 = (np.arange(-255, 256, dtype=np.float32) / _F255).astype(np.float32)


def _phi_table(theta: float = 0.15) -> np.ndarray:
    """phi[L, P] = 1 - d [d >= theta], d = single(P)/255 - single(l_L), all float32 like the official code."""
    d = (_P_F32[None, :] - _L_F32[:, None]).astype(np.float32)
    return (np.float32(1.0) - d * (d >= theta).astype(np.float32)).astype(np.float32)


_PHI = _phi_table()


# -- input handling ---------------------------------------------------------------------------------------------

def as_alpha_u8(a, what: str = "alpha") -> np.ndarray:
    """HxW 8-bit alpha from uint8 (as is), bool (0/255), uint16 or float in [0,1] (the tool's one conversion,
    :func:`mattecli.imaging.arrays.to_uint8`: rounded, as a saved 8-bit PNG would be; NaN counts as 0).

    3-channel arrays take channel 0 (the official ``evaluate.m`` keeps ``target(:,:,1)``); 4-channel take alpha.
    """

    x = np.asarray(a)
    if x.ndim == 3:
        if x.shape[2] == 4:
            x = x[..., 3]
        elif x.shape[2] in (1, 3):
            x = x[..., 0]
        else:
            raise ValueError(f"{what}: expected HxW, HxWx3 or HxWx4, got shape {x.shape}")
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D alpha, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool:
        return x.astype(np.uint8) * np.uint8(255)
    if x.dtype == np.uint16:
        return to_uint8(x)
    if np.issubdtype(x.dtype, np.integer):
        return np.clip(x, 0, 255).astype(np.uint8)
    return to_uint8(np.nan_to_num(x.astype(np.float32)))


def unknown_mask(trimap, shape=None) -> np.ndarray:
    """Boolean unknown region: ``trimap == 128`` exactly (trimap None: every pixel)."""
    if trimap is None:
        if shape is None:
            raise ValueError("unknown_mask(None) needs a shape")
        return np.ones(shape, bool)
    t = np.asarray(trimap)
    if t.ndim == 3:
        t = t[..., 0]
    if t.dtype != np.uint8:
        if np.issubdtype(t.dtype, np.floating) and t.size and float(np.nanmax(t)) <= 1.0:
            return np.isclose(t, 0.5, atol=1e-3)
        t = as_alpha_u8(t, "trimap")
    return t == 128


def _prepare(pred, gt, trimap):
    P = as_alpha_u8(pred, "prediction")
    G = as_alpha_u8(gt, "ground truth")
    if P.shape != G.shape:
        raise ValueError(f"prediction is {P.shape[1]}x{P.shape[0]} but ground truth is {G.shape[1]}x{G.shape[0]}")
    U = unknown_mask(trimap, P.shape)
    if U.shape != P.shape:
        raise ValueError(f"trimap is {U.shape[1]}x{U.shape[0]} but ground truth is {G.shape[1]}x{G.shape[0]}")
    return P, G, U


def _bbox(U: np.ndarray):
    """(r0, r1, c0, c1) of the True pixels, or None."""
    rows = np.flatnonzero(U.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(U.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _octave_sum_f32(x: np.ndarray) -> np.float32:
    """``sum(sum(X))`` for single X as Octave does it: down each column in float32, then across the totals."""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        return np.float32(0.0)
    col = np.add.reduce(x, axis=0, dtype=np.float32)  # row after row: sequential per column
    return np.float32(np.cumsum(col, dtype=np.float32)[-1])


# -- the four official metrics ----------------------------------------------------------------------------------

def _sad_mse_raw(P, G, U, box):
    if box is None:
        return np.float32(0.0), np.float32(np.nan)
    r0, r1, c0, c1 = box
    Uc = U[r0:r1, c0:c1]
    # error_map = (single(P) - single(G)) / 255, in float32 (bit-identical to the official returns)
    diff = _D_F32[P[r0:r1, c0:c1].astype(np.int16) - G[r0:r1, c0:c1].astype(np.int16) + 255]
    m = Uc.astype(np.float32)
    sad = _octave_sum_f32(np.abs(diff) * m) / _F1000
    num = _octave_sum_f32(diff * diff * m)
    den = _octave_sum_f32(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.float32(num / den)
    return np.float32(sad), mse


def gauss_kernels(sigma: float = 1.4, epsilon: float = 1e-2):
    """The official ``gaussgradient`` kernel as separable factors (g along rows, dg along columns).

    ``Kx = outer(g, dg)`` equals the official 9x9 ``hx`` (unit Frobenius norm); ``Ky = Kx.T``.
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-x ** 2 / (2.0 * sigma ** 2)) / (sigma * math.sqrt(2.0 * math.pi))
    dg = -x * g / sigma ** 2
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


_G1, _DG1 = gauss_kernels(1.4)
_HALF = len(_G1) // 2


def _grad_mag_f32(X: np.ndarray, crop) -> np.ndarray:
    """float32(|gaussgradient(mat2gray(X), 1.4)|) on the crop (r0, r1, c0, c1), whole-image mat2gray."""
    import cv2

    lo, hi = int(X.min()), int(X.max())
    r0, r1, c0, c1 = crop
    if hi == lo:
        return np.zeros((r1 - r0, c1 - c0), np.float32)
    lut = (np.arange(256, dtype=np.float64) - lo) / float(hi - lo)
    N = lut[X[r0:r1, c0:c1]]
    gx = cv2.sepFilter2D(N, cv2.CV_64F, _DG1, _G1, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(N, cv2.CV_64F, _G1, _DG1, borderType=cv2.BORDER_REPLICATE)
    np.multiply(gx, gx, out=gx)
    np.multiply(gy, gy, out=gy)
    gx += gy
    np.sqrt(gx, out=gx)
    return gx.astype(np.float32)


def _grad_raw(P, G, U, box):
    if box is None:
        return np.float32(0.0)
    H, W = P.shape
    r0, r1, c0, c1 = box
    # The kernel reaches 4 px: filtering a crop with a 4 px margin (replicated only at true image borders) gives
    # the same values inside the box as filtering the whole image.
    crop = (max(r0 - _HALF, 0), min(r1 + _HALF, H), max(c0 - _HALF, 0), min(c1 + _HALF, W))
    ap = _grad_mag_f32(P, crop)
    ag = _grad_mag_f32(G, crop)
    ir0, ic0 = r0 - crop[0], c0 - crop[2]
    sl = (slice(ir0, ir0 + (r1 - r0)), slice(ic0, ic0 + (c1 - c0)))
    d = ap[sl] - ag[sl]
    return _octave_sum_f32(d * d * U[r0:r1, c0:c1].astype(np.float32))


def _largest_4cc(mask_u8: np.ndarray):
    """(labels, winner label) of the largest 4-connected component, ties by column-major first pixel; None if empty.

    One labelling (OpenCV, 4-connectivity) plus a bincount of the labels; ties (rare) are resolved by locating each
    tied component's first pixel in column-major order, which is the order ``bwconncomp`` lists components in.
    """
    import cv2

    n, labels = cv2.connectedComponents(mask_u8, connectivity=4, ltype=cv2.CV_32S)
    if n <= 1:
        return None
    areas = np.bincount(labels.ravel(), minlength=n)[1:]
    best = areas.max()
    cand = np.flatnonzero(areas == best) + 1
    if cand.size == 1:
        return labels, int(cand[0])
    H = labels.shape[0]
    keys = []
    for lab in cand:
        hit = labels == lab
        left = int(np.flatnonzero(hit.any(axis=0))[0])
        keys.append(left * H + int(np.flatnonzero(hit[:, left])[0]))
    return labels, int(cand[int(np.argmin(keys))])


def conn_levels(P: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Level index L (l = L/10) per pixel: first k whose largest component misses the pixel, minus 1; 10 if none."""
    Mn = np.minimum(P, G)  # (P >= c) & (G >= c)  <=>  min(P, G) >= c
    out = np.zeros(P.shape, np.uint8)  # pixels outside the first intersection drop out at k = 1: l = 0
    box = _bbox(Mn >= _CONN_U8_THRESH[1])
    if box is None:
        return out
    # every intersection lies inside the first one's bounding box, so label that crop only (same components;
    # the crop keeps the column-major order of their first pixels)
    r0, r1, c0, c1 = box
    Mn = Mn[r0:r1, c0:c1]
    NOT_YET = np.uint8(255)
    lvl = np.full(Mn.shape, NOT_YET, np.uint8)
    for k in range(1, 11):
        res = _largest_4cc((Mn >= _CONN_U8_THRESH[k]).view(np.uint8))
        if res is None:
            lvl[lvl == NOT_YET] = k - 1
            break  # nothing can stay in any later component (intersections only shrink)
        labels, win = res
        np.putmask(lvl, (lvl == NOT_YET) & (labels != win), np.uint8(k - 1))
    lvl[lvl == NOT_YET] = 10
    out[r0:r1, c0:c1] = lvl
    return out


def _conn_raw(P, G, U, box, theta: float = 0.15):
    if box is None:
        return np.float32(0.0)
    phi = _PHI if theta == 0.15 else _phi_table(theta)
    lvl = conn_levels(P, G)
    r0, r1, c0, c1 = box
    L = lvl[r0:r1, c0:c1]
    dphi = np.abs(phi[L, P[r0:r1, c0:c1]] - phi[L, G[r0:r1, c0:c1]])
    return _octave_sum_f32(dphi * U[r0:r1, c0:c1].astype(np.float32))


def official_raw(pred, gt, trimap=None, metrics: Iterable[str] = METRICS, timings: dict | None = None) -> dict:
    """Return values of the official functions (float32 as Python floats): sad (already /1000), mse, grad, conn.

    trimap None = whole-image mode. ``timings`` (optional dict) receives seconds per metric.
    """
    P, G, U = _prepare(pred, gt, trimap)
    box = _bbox(U)
    out = {}
    want = set(metrics)
    t = time.perf_counter()
    if "sad" in want or "mse" in want:
        sad, mse = _sad_mse_raw(P, G, U, box)
        if "sad" in want:
            out["sad"] = float(sad)
        if "mse" in want:
            out["mse"] = float(mse)
        t = _tick(timings, "sad+mse", t)
    if "grad" in want:
        out["grad"] = float(_grad_raw(P, G, U, box))
        t = _tick(timings, "grad", t)
    if "conn" in want:
        out["conn"] = float(_conn_raw(P, G, U, box))
        t = _tick(timings, "conn", t)
    return out


def _tick(timings, key, t0):
    t1 = time.perf_counter()
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + (t1 - t0)
    return t1


def to_reporting_units(raw: dict) -> dict:
    """Raw official returns -> the units papers print: SAD, MSE as is; Grad/1000; Conn/1000."""
    out = {}
    for k, v in raw.items():
        out[k] = v / 1000.0 if k in ("grad", "conn") else v
    return out


def compute_all(pred, gt, trimap=None, metrics: Iterable[str] = METRICS, timings: dict | None = None) -> dict:
    """SAD, MSE, Grad, Conn in the conventional reporting units (SAD/1000, MSE, Grad/1000, Conn/1000)."""
    return to_reporting_units(official_raw(pred, gt, trimap, metrics, timings))


def sad_error(pred, gt, trimap=None, raw: bool = False) -> float:
    """SAD over the unknown region, /1000 (the official function's own scaling; same in both unit systems)."""
    return official_raw(pred, gt, trimap, ("sad",))["sad"]


def mse_error(pred, gt, trimap=None, raw: bool = False) -> float:
    """Mean squared error over the unknown region (NaN if it is empty)."""
    return official_raw(pred, gt, trimap, ("mse",))["mse"]


def gradient_error(pred, gt, trimap=None, raw: bool = False) -> float:
    """Gradient error: reporting units (/1000) unless raw=True (the official function's return)."""
    v = official_raw(pred, gt, trimap, ("grad",))["grad"]
    return v if raw else v / 1000.0


def connectivity_error(pred, gt, trimap=None, raw: bool = False) -> float:
    """Connectivity error: reporting units (/1000) unless raw=True (the official function's return)."""
    v = official_raw(pred, gt, trimap, ("conn",))["conn"]
    return v if raw else v / 1000.0


# -- video ------------------------------------------------------------------------------------------------------

def dtssd_pair(p_t, p_tm1, g_t, g_tm1) -> float:
    """RVM ``MetricDTSSD`` for one frame pair: sqrt(sum(((p_t-p_tm1)-(g_t-g_tm1))^2)/N) * 100, alphas in [0,1]."""
    d = (p_t - p_tm1) - (g_t - g_tm1)
    return float(np.sqrt(np.sum(d.astype(np.float64) ** 2) / g_t.size) * 1e2)


def _farneback(g0_u8, g1_u8):
    import cv2

    return cv2.calcOpticalFlowFarneback(g0_u8, g1_u8, None, 0.5, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def messddt_pair(p_t, g_t, p_t1, g_t1, flow) -> float:
    """sum |E_t(x)^2 - E_{t+1}(x + v(x))^2| / N * 1000 with E = p - g (alphas in [0,1]); flow HxWx2 (dx, dy)."""
    H, W = g_t.shape
    v = np.rint(np.nan_to_num(np.asarray(flow, np.float64))).astype(np.int64)
    ys, xs = np.mgrid[0:H, 0:W]
    ty = np.clip(ys + v[..., 1], 0, H - 1)
    tx = np.clip(xs + v[..., 0], 0, W - 1)
    e0 = (p_t.astype(np.float64) - g_t) ** 2
    e1 = (p_t1.astype(np.float64) - g_t1) ** 2
    return float(np.abs(e0 - e1[ty, tx]).sum() / g_t.size * 1e3)


def dtssd_sequence(preds, gts) -> list[float]:
    """Per-frame dtSSD, frame 0 = 0 (RVM). preds/gts: sequences of HxW uint8 alphas."""
    out, pp, pg = [], None, None
    for P, G in zip(preds, gts):
        p = _P_F32[as_alpha_u8(P)]
        g = _P_F32[as_alpha_u8(G)]
        out.append(0.0 if pp is None else dtssd_pair(p, pp, g, pg))
        pp, pg = p, g
    return out


def messddt_sequence(preds, gts, flows=None) -> list[float]:
    """Per-pair MESSDdt (T-1 values). flows: optional list of T-1 HxWx2 flows (default: Farneback on the GT)."""
    P = [as_alpha_u8(x) for x in preds]
    G = [as_alpha_u8(x) for x in gts]
    out = []
    for t in range(len(G) - 1):
        flow = flows[t] if flows is not None else _farneback(G[t], G[t + 1])
        out.append(messddt_pair(_P_F32[P[t]], _P_F32[G[t]], _P_F32[P[t + 1]], _P_F32[G[t + 1]], flow))
    return out


def video_metrics(preds, gts, trimaps=None, flows=None, with_messddt: bool = True) -> dict:
    """Per-sequence scores: sad/mse/grad/conn (official functions, reporting units, mean over frames; whole-frame
    unless trimaps are given), dtssd (RVM, mean over frames incl. frame 0 = 0), messddt (mean over pairs)."""
    preds = [as_alpha_u8(x, "prediction") for x in preds]
    gts = [as_alpha_u8(x, "ground truth") for x in gts]
    if len(preds) != len(gts):
        raise ValueError(f"prediction has {len(preds)} frames but ground truth has {len(gts)}")
    if not gts:
        raise ValueError("empty sequence")
    for i, (P, G) in enumerate(zip(preds, gts)):
        if P.shape != G.shape:
            raise ValueError(f"frame {i}: prediction is {P.shape[1]}x{P.shape[0]}, ground truth {G.shape[1]}x{G.shape[0]}")
    per = {k: [] for k in METRICS}
    for i, (P, G) in enumerate(zip(preds, gts)):
        r = compute_all(P, G, None if trimaps is None else trimaps[i])
        for k in METRICS:
            per[k].append(r[k])
    out = {k: float(np.nanmean(v)) if not all(np.isnan(v)) else float("nan") for k, v in per.items()}
    d = dtssd_sequence(preds, gts)
    out["dtssd"] = float(np.mean(d))
    if with_messddt:
        m = messddt_sequence(preds, gts, flows)
        out["messddt"] = float(np.mean(m)) if m else 0.0
    out["frames"] = len(gts)
    return out
