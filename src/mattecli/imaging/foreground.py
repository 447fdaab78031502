"""Foreground colour estimation (decontamination) from an image and its alpha, via pymatting.

``ml``: multi-level estimation (Germer et al. 2020, pymatting ``estimate_foreground_ml``), fast, the default.
``cf``: closed-form estimation (Levin et al. 2008, ``estimate_foreground_cf``), slower, sometimes smoother.
``none``: the foreground is the input image itself (colour spill at soft edges is kept).
Both use pymatting's default parameters.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .arrays import to_float

METHODS = ("ml", "cf", "none")


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, method: str = "ml") -> np.ndarray:
    """image HxWx3 (uint8 or float [0,1]), alpha HxW float [0,1] -> foreground HxWx3 float32 in [0,1]."""
    img = to_float(image, np.float64)
    a = np.asarray(alpha, np.float64)
    if method == "none":
        return img.astype(np.float32)
    if method == "ml":
        from pymatting import estimate_foreground_ml

        fg = estimate_foreground_ml(img, a)
    elif method == "cf":
        from pymatting import estimate_foreground_cf

        fg = estimate_foreground_cf(img, a)
    else:
        raise UsageError(f"--foreground {method!r}: use one of {', '.join(METHODS)} (or 'model')")
    return np.clip(fg, 0.0, 1.0).astype(np.float32)
