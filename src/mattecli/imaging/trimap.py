"""Trimaps: read, quantise, validate, and generate from a mask or an alpha matte.

Quantisation (:func:`quantise_trimap`), on the 8-bit grey scale (16-bit files are scaled to 0..255 first):

==============  ==========  =========================================
grey level      meaning     stored as
==============  ==========  =========================================
``<= 25``       background  0   (float 0.0)
``26 .. 229``   unknown     128 (float 0.5)
``>= 230``      foreground  255 (float 1.0)
==============  ==========  =========================================

These are pymatting's own thresholds (``trimap_split``: background <= 0.1, foreground >= 0.9), so every trimap pymatting
accepts means the same here, including its lemur trimap whose unknown value is **102**, and anti-aliased edges of a
hand-painted trimap fall into the unknown band. Accepted files: grey, RGB/RGBA with equal colour channels (an opaque
alpha channel is ignored), palette, 8/16-bit. Refused with a one-line error naming the file: coloured RGB trimaps,
RGBA trimaps with transparent pixels (ambiguous: transparent is not a trimap value), a size different from the image,
and trimaps without any unknown pixel (nothing to solve).

Generation (:func:`trimap_from_mask`, :func:`trimap_from_alpha`): foreground = pixels at or above ``hi``,
background = pixels at or below ``lo`` (a mask is binarised at 0.5 instead), then both are eroded by a structuring
element of radius ``band`` pixels (shape ellipse, rect or cross), so the unknown band is about ``2 * band`` wide
around a mask edge. :func:`band_pixels` turns ``"12"`` (pixels), ``"2%"`` or ``"0.02"`` (a fraction of the image
diagonal) into a radius. A band wider than the image's long side is refused before anything is allocated, and the
generation's memory does not depend on the band (see ``_erode``).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError, UsageError

BG_MAX = 25      # 8-bit grey level at or below which a trimap pixel is background
FG_MIN = 230     # 8-bit grey level at or above which a trimap pixel is foreground
ALPHA_LO = 0.06  # --from-alpha: alpha <= lo is background
ALPHA_HI = 0.96  # --from-alpha: alpha >= hi is foreground
KERNELS = ("ellipse", "rect", "cross")
SMALL_RADIUS = 16  # erosions up to this radius use OpenCV's structuring element (see _erode)


def quantise_trimap(a: np.ndarray, path: str | os.PathLike = "trimap") -> np.ndarray:
    """Decoded trimap (HxW, HxWx3, HxWx4; uint8/uint16/float) -> HxW uint8 with values {0, 128, 255}."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        to8 = 1.0
    elif a.dtype == np.uint16:
        to8 = 255.0 / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        to8 = 255.0
    else:
        to8, a = 1.0, a.astype(np.float64)
    if a.ndim == 3:
        if a.shape[2] == 4:
            full = 255.0 / to8
            if np.any(a[..., 3] != full):
                raise InputError(
                    f"{path}: trimap has transparent pixels (RGBA); save it as an opaque grey image "
                    "(0 = background, 128 = unknown, 255 = foreground)", path=path)
            a = a[..., :3]
        if a.shape[2] != 3:
            raise InputError(f"{path}: trimap has an unsupported channel layout {a.shape}", path=path)
        r, g, b = a[..., 0], a[..., 1], a[..., 2]
        if np.array_equal(r, g) and np.array_equal(g, b):
            a = r
        else:
            # element-wise on channel slices (a reduction over the last axis is slow)
            spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
            if float(spread.max()) * to8 > 16:
                raise InputError(
                    f"{path}: trimap is a colour image; save it as grey (0 = background, 128 = unknown, "
                    "255 = foreground)", path=path)
            a = (r.astype(np.float64) + g + b) / 3.0
    if a.dtype == np.uint8:
        bg, fg = a <= BG_MAX, a >= FG_MIN
    else:
        grey = np.asarray(a, np.float64) * to8
        bg, fg = grey <= BG_MAX + 0.5, grey >= FG_MIN - 0.5
    out = np.full(a.shape, 128, np.uint8)
    out[bg] = 0
    out[fg] = 255
    return out


def quantise_levels(t):
    """8-bit grey levels -> {0, 128, 255} by the same rule, for a uint8 numpy array or torch tensor (any shape,
    any device); the result has the type of ``t``."""
    out = t * 0 + 128
    out[t <= BG_MAX] = 0
    out[t >= FG_MIN] = 255
    return out


def validate_trimap(t: np.ndarray, path: str | os.PathLike = "trimap", shape: tuple | None = None,
                    image_path: str | os.PathLike | None = None) -> np.ndarray:
    """Check size against ``shape`` (HxW) and that some pixel is unknown. Returns ``t``."""
    if shape is not None and tuple(t.shape[:2]) != tuple(shape[:2]):
        h, w = t.shape[:2]
        H, W = shape[:2]
        of = f" {image_path}" if image_path else ""
        raise InputError(f"{path}: trimap is {w}x{h} but the image{of} is {W}x{H}; they must have the same size",
                         path=path)
    if not np.any(t == 128):
        raise InputError(f"{path}: trimap has no unknown (grey) pixels, so there is nothing to solve; "
                         f"mark the uncertain band with grey (values {BG_MAX + 1}..{FG_MIN - 1}, e.g. 128)", path=path)
    return t


def read_trimap(path: str | os.PathLike, shape: tuple | None = None,
                image_path: str | os.PathLike | None = None) -> np.ndarray:
    """Read, quantise and validate a trimap file -> HxW uint8 {0, 128, 255}."""
    from .io import read_image

    return validate_trimap(quantise_trimap(read_image(path), path), path, shape, image_path)


def resize_to_image(a: np.ndarray, shape: tuple, path: str | os.PathLike = "mask",
                    image_path: str | os.PathLike | None = None) -> np.ndarray:
    """A mask/alpha (float [0,1]) resized (bilinear) to the image's HxW when only the resolution differs (same aspect
    ratio within 1 %); a different aspect ratio is an InputError naming both files."""
    import cv2

    H, W = shape[:2]
    h, w = a.shape[:2]
    if (h, w) == (H, W):
        return a
    if abs((w / h) - (W / H)) > 0.01 * (W / H):
        raise InputError(f"{path}: is {w}x{h} but the image {image_path} is {W}x{H} (different aspect ratio); "
                         "give a mask of the image's size", path=path)
    return np.clip(cv2.resize(a.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR), 0, 1)


def band_pixels(band: str | float | int, shape: tuple) -> int:
    """``"12"``/``12`` -> 12 px; ``"2%"`` -> 2 % of the image diagonal; ``"0.02"`` (< 1) -> 2 % of the diagonal."""
    s = str(band).strip()
    try:
        if s.endswith("%"):
            frac = float(s[:-1]) / 100.0
        else:
            v = float(s)
            frac = v if 0 < v < 1 else None
            if frac is None:
                if v < 0 or v != int(v):
                    raise ValueError
                return int(v)
        if not 0 <= frac < float("inf"):
            raise ValueError
    except (ValueError, OverflowError):
        raise UsageError(f"--band {band!r}: use pixels (12), a percentage of the image diagonal (2%) or a fraction (0.02)") from None
    diag = math.hypot(shape[0], shape[1])
    return max(1, int(round(frac * diag)))


def _kernel(radius: int, shape: str):
    import cv2

    if shape not in KERNELS:
        raise UsageError(f"--kernel {shape!r}: use one of {', '.join(KERNELS)}")
    kind = {"ellipse": cv2.MORPH_ELLIPSE, "rect": cv2.MORPH_RECT, "cross": cv2.MORPH_CROSS}[shape]
    return cv2.getStructuringElement(kind, (2 * radius + 1, 2 * radius + 1))


def _erode_line(m: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Binary erosion by a line of 2r+1 pixels along ``axis``, from a running count of unset pixels: O(pixels)
    whatever the radius, the border never erodes."""
    holes = np.cumsum(~m, axis=axis, dtype=np.int32)
    n = m.shape[axis]
    idx = np.arange(n)
    hi = np.take(holes, np.minimum(idx + radius, n - 1), axis=axis)
    lo_idx = idx - radius - 1
    lo = np.take(holes, np.maximum(lo_idx, 0), axis=axis)
    shape = [1, 1]
    shape[axis] = n
    lo = np.where((lo_idx >= 0).reshape(shape), lo, 0)
    return hi == lo


def _erode(m: np.ndarray, radius: int, shape: str) -> np.ndarray:
    """Binary erosion; pixels outside the image count as set (the border never erodes). Memory stays a few bytes per
    pixel at any radius: radii up to SMALL_RADIUS use OpenCV's structuring element; beyond, rect is a chessboard
    distance transform and cross two running counts (both exact), the ellipse a Euclidean distance transform (a disk
    of radius ``band``: on its rim at most a pixel from OpenCV's digital ellipse, about 0.1 % of the pixels)."""
    import cv2

    if radius <= 0:
        return m
    if radius <= SMALL_RADIUS:
        k = _kernel(radius, shape)
        return cv2.erode(m.astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    m = np.asarray(m, bool)
    if shape == "cross":
        return _erode_line(m, radius, 1) & _erode_line(m, radius, 0)
    if shape == "rect":     # chessboard distance: exact for a square
        return cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_C, 3) > radius
    return cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > radius


#: bytes per pixel of generating a trimap (masks, running counts or distances, the result)
TRIMAP_BYTES = 24


def check_band(band: int, shape: tuple) -> None:
    """A band (px) wider than the image's long side erodes everything: refused before any allocation."""
    long = max(int(shape[0]), int(shape[1]))
    if band > long:
        raise UsageError(f"--band {band} px is wider than the image ({shape[1]}x{shape[0]}); use at most {long} px "
                         "(or a percentage of the diagonal, e.g. 2%)")


def make_trimap(fg: np.ndarray, bg: np.ndarray, band: int, kernel: str = "ellipse") -> np.ndarray:
    """fg/bg boolean masks (disjoint) -> uint8 trimap, each region shrunk by ``band`` px, the rest unknown. A band
    wider than the image is refused first (no allocation), then the generation's memory is checked."""
    if kernel not in KERNELS:
        raise UsageError(f"--kernel {kernel!r}: use one of {', '.join(KERNELS)}")
    check_band(band, fg.shape)
    from ..memory import check_bytes

    check_bytes(TRIMAP_BYTES * fg.size, "to make the trimap")
    fg_e = _erode(fg, band, kernel)
    bg_e = _erode(bg, band, kernel)
    out = np.full(fg.shape, 128, np.uint8)
    out[bg_e] = 0
    out[fg_e] = 255
    return out


def trimap_from_mask(mask: np.ndarray, band: int, kernel: str = "ellipse", threshold: float = 0.5) -> np.ndarray:
    """Coarse mask (binary or soft, float [0,1]) -> trimap: binarise at ``threshold``, then an unknown band of
    ``band`` px on each side of the edge."""
    m = np.asarray(mask, np.float32)
    fg = m >= threshold
    return make_trimap(fg, ~fg, band, kernel)


def trimap_from_alpha(alpha: np.ndarray, band: int = 0, kernel: str = "ellipse", lo: float = ALPHA_LO,
                      hi: float = ALPHA_HI) -> np.ndarray:
    """Alpha matte (float [0,1]) -> trimap: alpha <= lo background, alpha >= hi foreground, the soft pixels in between
    unknown, then both known regions eroded by ``band`` px."""
    if not 0.0 <= lo < hi <= 1.0:
        raise UsageError(f"--lo {lo} / --hi {hi}: need 0 <= lo < hi <= 1")
    a = np.asarray(alpha, np.float32)
    return make_trimap(a >= hi, a <= lo, band, kernel)


def trimap_from_labels(labels: np.ndarray, selected: list[int], band: int, kernel: str = "ellipse") -> np.ndarray:
    """Segmentation class map -> trimap: pixels of the selected classes are foreground."""
    fg = np.isin(np.asarray(labels), np.asarray(selected))
    return make_trimap(fg, ~fg, band, kernel)
