"""Pixel conversions, one rule for the whole tool (numpy arrays and torch tensors alike).

* integer -> float: ``uint8 / 255``, ``uint16 / 65535`` in the requested float type (division in that type, as
  ``torchvision.ToTensor`` and ``img / 255.0`` do); float input is clipped to [0, 1].
* float -> uint8: ``round(clip(x, 0, 1) * 255)``; uint16 -> uint8 by rounding ``x * 255 / 65535``.
* ``rgb_of``: grey is repeated to three channels, an alpha channel dropped.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_rgb(a, what: str = "image") -> None:
    """HxWx3 numpy array, or raise InputError naming ``what``."""
    shape = tuple(getattr(a, "shape", ()))
    if len(shape) != 3 or shape[2] != 3:
        raise InputError(f"{what} must be HxWx3 RGB, got shape {shape}")


def to_float(a: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 / uint16 / float array -> ``dtype`` in [0, 1]."""
    a = np.asarray(a)
    scale = _SCALE.get(a.dtype)
    if scale is not None:
        return a.astype(dtype) / np.array(scale, dtype=dtype)
    return np.clip(a.astype(dtype), 0.0, 1.0)


def to_uint8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def rgb_of(a: np.ndarray) -> np.ndarray:
    """Any decoded image -> HxWx3 (grey is repeated, an alpha channel is dropped). dtype kept."""
    if a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        return np.ascontiguousarray(a[..., :3])
    return a


def tensor_to_float(t, dtype=None):
    """Torch twin of :func:`to_float`: uint8 / int16-stored uint16 / float tensor -> float ``dtype`` in [0, 1]."""
    import torch

    dtype = dtype or torch.float32
    if t.dtype == torch.uint8:
        return t.to(dtype).div_(255.0)
    if t.dtype in (torch.uint16, torch.int32):   # 16-bit sources
        return t.to(dtype).div_(65535.0)
    if t.dtype == dtype:
        return t.clamp(0.0, 1.0)
    return t.to(dtype).clamp_(0.0, 1.0)
