"""Compositing: straight or premultiplied RGBA, and ``I = alpha * F + (1 - alpha) * B`` onto a colour, an image
(fit cover / contain / stretch) or a blurred copy of the original.

Conventions: every array is float32 in [0,1]. *Straight* RGBA stores the foreground colour F unchanged next to
alpha (what PNG specifies and most editors assume); *premultiplied* RGBA stores ``alpha * F``. Files written by
mattecli say which in the PNG text chunk ``alpha-mode`` (``straight`` or ``premultiplied``).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .colour import NAMED_COLOURS, parse_colour  # noqa: F401  (re-exported)

FITS = ("cover", "contain", "stretch")

def _a3(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, np.float32)
    return a[..., None] if a.ndim == 2 else a


def blend(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """alpha * fg + (1 - alpha) * bg (fg straight)."""
    a = _a3(alpha)
    return np.clip(a * fg + (1.0 - a) * bg, 0.0, 1.0).astype(np.float32)


def blend_premultiplied(fg_premul: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = _a3(alpha)
    return np.clip(fg_premul + (1.0 - a) * bg, 0.0, 1.0).astype(np.float32)


def rgba(fg: np.ndarray, alpha: np.ndarray, premultiplied: bool = False) -> np.ndarray:
    """HxWx4 float32: straight (F, alpha) or premultiplied (alpha * F, alpha)."""
    a = _a3(alpha)
    rgb = fg * a if premultiplied else fg
    return np.concatenate([np.clip(rgb, 0, 1), np.clip(a, 0, 1)], axis=2).astype(np.float32)


def fit_background(bg: np.ndarray, shape: tuple, fit: str = "cover", fill: np.ndarray | None = None) -> np.ndarray:
    """Resize a background image to HxW. cover: scale to fill and centre-crop; contain: scale to fit inside and pad
    with ``fill`` (default black); stretch: resize to exactly HxW ignoring the aspect ratio."""
    if fit not in FITS:
        raise UsageError(f"--fit {fit!r}: use one of {', '.join(FITS)}")
    H, W = shape[:2]
    h, w = bg.shape[:2]
    bg = np.asarray(bg, np.float32)
    if fit == "stretch":
        return _resize(bg, W, H)
    if fit == "cover":
        s = max(W / w, H / h)
        nw, nh = max(W, int(round(w * s))), max(H, int(round(h * s)))
        r = _resize(bg, nw, nh)
        y0, x0 = (nh - H) // 2, (nw - W) // 2
        return np.ascontiguousarray(r[y0:y0 + H, x0:x0 + W])
    s = min(W / w, H / h)
    nw, nh = min(W, max(1, int(round(w * s)))), min(H, max(1, int(round(h * s))))
    r = _resize(bg, nw, nh)
    out = np.empty((H, W, 3), np.float32)
    out[:] = np.zeros(3, np.float32) if fill is None else fill
    y0, x0 = (H - nh) // 2, (W - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = r
    return out


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    if a.shape[1] == w and a.shape[0] == h:
        return a
    interp = cv2.INTER_AREA if (w < a.shape[1] and h < a.shape[0]) else cv2.INTER_CUBIC
    return np.clip(cv2.resize(a, (w, h), interpolation=interp), 0, 1)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred copy of ``image`` (float32 HxWx3), sigma in pixels."""
    import cv2

    if sigma <= 0:
        raise UsageError(f"--blur {sigma}: the blur sigma must be > 0 pixels")
    return cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT)
