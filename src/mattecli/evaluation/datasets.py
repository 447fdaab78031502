"""Evaluation inputs: alphas read as the official code reads them, Composition-1k style composites, the GT trimap.

Reading (:func:`read_alpha`): every file goes through the one image reader (:func:`mattecli.imaging.io.read_image`,
EXIF orientation applied), then to an HxW 8-bit alpha as the official ``evaluate.m`` sees it: grey as is, 16-bit
rounded to 8 bits, RGB -> channel 1 (R), RGBA -> its alpha. Trimaps are read the same way and **not** quantised:
the unknown region of the metrics is exactly the value 128, as in the official code (a model given that trimap
quantises it by the tool's one trimap rule, :mod:`mattecli.imaging.trimap`).

Composition-1k style (``--fg/--alpha/--bg``; pairing in :mod:`.pairing`): each background is scaled up (bicubic),
only when smaller, by ``max(w/bw, h/bh)`` so that it covers the foreground, then its top-left ``h x w`` is used; the
image is ``alpha*F + (1-alpha)*B`` in float32, truncated to uint8 (DIM's ``Composition_code.py`` / ``composite4``).

Trimap recipe (:func:`gt_trimap`), used when no trimap is given: with an elliptical structuring element of diameter
``2r+1`` (default r = 10 px), pixels outside ``dilate(alpha > 0)`` are 0, pixels inside ``erode(alpha == 255)`` are
255, everything else is 128 (unknown). This is :func:`mattecli.imaging.trimap.trimap_from_alpha` with ``lo = 0``,
``hi = 1`` and ``band = r`` (eroding "alpha == 0" is the same as not dilating "alpha > 0").
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, UsageError
from ..imaging.arrays import rgb_of, to_float, to_uint8
from ..imaging.io import read_image
from .metrics import as_alpha_u8

#: default radius of the generated trimaps' unknown band (``--trimap-radius``)
TRIMAP_RADIUS = 10


def read_alpha(path: str | os.PathLike) -> np.ndarray:
    """An alpha or trimap file -> HxW uint8 (grey as is; 16-bit rounded; RGB -> R; RGBA -> its alpha)."""
    return as_alpha_u8(read_image(path), os.fspath(path))


def read_rgb8(path: str | os.PathLike) -> np.ndarray:
    """An image file -> HxWx3 uint8 RGB (16-bit files rounded), for the 8-bit composites of DIM's protocol."""
    return to_uint8(rgb_of(read_image(path)))


def gt_trimap(alpha_u8: np.ndarray, radius: int = TRIMAP_RADIUS) -> np.ndarray:
    """The documented recipe: 0 outside dilate(alpha>0), 255 inside erode(alpha==255), else 128 (ellipse 2r+1)."""
    from ..imaging.trimap import trimap_from_alpha

    if radius < 0:
        raise UsageError(f"--trimap-radius must be >= 0, got {radius}")
    h, w = alpha_u8.shape[:2]
    if radius <= max(h, w):
        return trimap_from_alpha(to_float(alpha_u8), band=radius, kernel="ellipse", lo=0.0, hi=1.0)
    return _recipe(alpha_u8, min(radius, int(np.ceil(np.hypot(h, w))) + 1))


def _recipe(a: np.ndarray, radius: int) -> np.ndarray:
    """The recipe written out, for a radius wider than the image (the trimap module refuses such a band; the
    protocol takes any radius). Past the image's diagonal a larger radius changes nothing, so the caller caps it."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg = cv2.erode((a == 255).astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    anyfg = cv2.dilate((a > 0).astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    t = np.full(a.shape[:2], 128, np.uint8)
    t[anyfg == 0] = 0
    t[fg == 1] = 255
    return t


def fit_background_cover(bg: np.ndarray, h: int, w: int) -> np.ndarray:
    """DIM rule: upscale (bicubic) by max(w/bw, h/bh) only when the plate is smaller, then take the top-left h x w."""
    import cv2

    bh, bw = bg.shape[:2]
    ratio = max(w / bw, h / bh)
    if ratio > 1:
        nw, nh = int(np.ceil(bw * ratio)), int(np.ceil(bh * ratio))
        bg = cv2.resize(bg, (nw, nh), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(bg[:h, :w])


def composite(fg: np.ndarray, alpha_u8: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """alpha*F + (1-alpha)*B in float32 on the 0..255 scale, truncated to uint8 (DIM ``composite4``); bg is fitted
    to fg first. This truncation is the protocol's, not the tool's rounding (:mod:`mattecli.imaging.composite`)."""
    h, w = alpha_u8.shape
    if fg.shape[:2] != (h, w):
        raise InputError(f"foreground is {fg.shape[1]}x{fg.shape[0]} but alpha is {w}x{h}; they must match")
    b = fit_background_cover(bg, h, w).astype(np.float32)
    a = to_float(alpha_u8)[..., None]
    im = a * fg.astype(np.float32) + (np.float32(1.0) - a) * b
    return np.clip(im, 0, 255).astype(np.uint8)
