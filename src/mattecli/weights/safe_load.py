"""Safe loading of checkpoints: ``torch.load(weights_only=True)`` only.

A checkpoint that pickles arbitrary Python objects (classes, functions, ``__reduce__`` tricks) is refused with a
:class:`~mattecli.errors.ConverterError` before any of its code can run. Plain tensors, dicts, lists, numbers and
strings load fine.
"""
from __future__ import annotations

import os
from typing import Any

from ..backends.checkpoint import is_ours, safe_torch_load, unwrap

__all__ = ["safe_load", "load_state_dict", "is_ours"]


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with one-line errors."""
    return safe_torch_load(path)


def load_state_dict(path: str | os.PathLike) -> dict:
    """The tensor mapping of a checkpoint (our converted file or an official state dict in a common wrapping)."""
    obj = safe_torch_load(path)
    if is_ours(obj):
        return dict(obj["state_dict"])
    return unwrap(obj)
