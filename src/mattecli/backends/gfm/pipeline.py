"""The host-side steps of GFM's ``core/test.py`` pipeline (numpy, per image): scikit-image and cv2 resizes have no
bit-exact torch twin, so they run here; the adapter keeps the network and the glance argmax on the device.

* :func:`prepare`: ``test_samples``' short-side rule (cv2 INTER_LINEAR when the short side exceeds the limit);
* :func:`scaled_size` + :func:`net_input`: one pass's network input (``skimage.transform.resize`` * 255);
* :func:`sk_resize`: ``skimage.transform.resize`` with its defaults, via SciPy;
* :func:`fuse` / :func:`select`: HYBRID's collaborative matting of the resized maps, ``pred_choice``.
"""
from __future__ import annotations

import numpy as np

GLANCE_LEVELS = {3: (0, 128, 255), 2: (0, 255)}   # TT: bg / transition / fg; FT, BT: bg / fg
RIM_MAPS = ("tt_fusion", "ft_fusion", "bt_fusion", "rim_fusion")


def sk_resize(image: np.ndarray, output_hw) -> np.ndarray:
    """``skimage.transform.resize(image, output_hw)`` with its defaults (scikit-image >= 0.19), via SciPy.

    uint8 -> float64 ``x * (1/255)``; float32 stays float32, float64 stays float64. Anti-aliasing (Gaussian,
    sigma = max(0, (in/out - 1)/2) per axis, mode 'mirror', truncate 4) when any axis shrinks; then bilinear zoom with
    half-pixel centres and mirror edges; clipped to the input's value range.
    """
    from scipy import ndimage as ndi

    a = np.asarray(image)
    if a.dtype == np.uint8:
        x = np.multiply(a, 1.0 / 255.0, dtype=np.float64)
    elif a.dtype == np.float16:
        x = a.astype(np.float32)
    elif a.dtype in (np.float32, np.float64):
        x = a
    else:
        x = a.astype(np.float64)
    out_shape = tuple(int(s) for s in output_hw) + tuple(x.shape[2:])
    lo, hi = x.min(), x.max()
    factors = np.divide(x.shape, out_shape)
    if any(o < i for o, i in zip(out_shape, x.shape)):
        sigma = np.maximum(0, (factors - 1) / 2)
        x = ndi.gaussian_filter(x, sigma, cval=0, mode="mirror")
    zoom = [1 / f for f in factors]
    out = ndi.zoom(x, zoom, order=1, mode="mirror", cval=0, grid_mode=True)
    np.clip(out, lo, hi, out=out)
    return out


def prepare(image: np.ndarray, limit: int | None) -> np.ndarray:
    """HxWx3 uint8 (as PIL reads the file) or float in [0,1] (resized like uint8 / 255) -> the array the official code
    resizes, after the short-side rule: if min(h, w) > ``limit``, cv2 INTER_LINEAR to short side ``limit`` and long
    side ``int(limit * long / short)``."""
    import cv2

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float64), 0.0, 1.0)
    h, w = a.shape[:2]
    if limit and min(h, w) > int(limit):
        limit = int(limit)
        size = (limit, int(limit * h / w)) if h >= w else (int(limit * w / h), limit)  # cv2 (w, h)
        a = cv2.resize(a if a.dtype == np.uint8 else a.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    return a


def scaled_size(h: int, w: int, max_size: int = 1600, ratio: float | None = None, div: int | None = None) -> tuple:
    """``min(max_size, s - s % 32)`` per side with ``s = int(side * ratio)`` (HYBRID) or ``int(side / div)`` (RESIZE,
    RIM), as the official code computes them; at least 32 (the official code would crash below)."""
    out = []
    for side in (h, w):
        s = int(side * ratio) if div is None else int(side / div)
        out.append(max(32, min(max_size, s - s % 32)))
    return tuple(out)


def net_input(img: np.ndarray, max_size: int, ratio: float | None = None, div: int | None = None) -> np.ndarray:
    """One pass's network input, [3,h,w] float32 RGB in 0..255: ``resize(img, scaled_size) * 255``."""
    size = scaled_size(*img.shape[:2], max_size, ratio=ratio, div=div)
    scaled = sk_resize(img, size) * 255.0
    return np.ascontiguousarray(scaled.astype(np.float32).transpose(2, 0, 1))


def passes(rosta: str, test_choice: str) -> tuple:
    """The (ratio, div) of each network pass: RIM one h/3 pass; RESIZE one h/2 pass; HYBRID a glance pass at
    ``int(h * (1/3))`` and a focus pass at ``int(h * (1/2))`` (the official global / local ratios)."""
    if rosta == "RIM":
        return ((None, 3),)
    if test_choice == "RESIZE":
        return ((None, 2),)
    return ((1 / 3, None), (1 / 2, None))


def fuse(rosta: str, glance: np.ndarray, focus: np.ndarray) -> np.ndarray:
    """HYBRID's fusion of the resized maps (glance 0..255 float, focus [0,1]), float64 as the official numpy code."""
    if rosta == "TT":
        wgt = np.ones(glance.shape)
        wgt[glance == 255] = 0
        wgt[glance == 0] = 0
        return glance * (1.0 - wgt) / 255 + focus * wgt
    if rosta == "BT":
        fusion = glance / 255.0 - focus
        fusion[fusion < 0] = 0
        return fusion
    fusion = glance / 255.0 + focus   # FT
    fusion[fusion > 1] = 1
    return fusion


def select(maps: dict, rosta: str, pred_choice: int) -> np.ndarray:
    """The map ``pred_choice`` picks, as an alpha (glance / 255): 1 glance, 2 focus, 3 fusion; RIM 1 TT, 2 FT, 3 BT,
    4 RIM."""
    if rosta == "RIM":
        return maps[RIM_MAPS[pred_choice - 1]]
    return (maps["glance"] / 255.0, maps["focus"], maps["fusion"])[pred_choice - 1]
