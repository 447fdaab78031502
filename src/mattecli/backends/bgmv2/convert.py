"""BGMv2 checkpoints: ``pytorch_{resnet50,resnet101,mobilenetv2}.pth`` are plain state dicts of ``MattingRefine``
(no prefix), with exactly the keys our :mod:`.net` uses. Conversion = unwrap + validate every key.

TorchScript (``torchscript_*.pth``) and ONNX exports are refused with a message naming the PyTorch file to use.
"""
from __future__ import annotations

import os
import zipfile
from typing import Iterable, Mapping

from ...errors import ConverterError
from ..checkpoint import safe_torch_load, strip_prefix, take_exactly, unwrap

FILENAMES = {
    "resnet50": "pytorch_resnet50.pth",
    "resnet101": "pytorch_resnet101.pth",
    "mobilenetv2": "pytorch_mobilenetv2.pth",
}


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Official file -> official-layout mapping (plain dict; ``{'state_dict': ...}`` and ``module.`` tolerated)."""
    path = os.fspath(path)
    if path.lower().endswith(".onnx"):
        raise ConverterError(f"{path}: ONNX exports are not read; use the PyTorch checkpoint pytorch_<backbone>.pth")
    if _is_torchscript(path):
        raise ConverterError(
            f"{path}: this is a TorchScript export; use the PyTorch checkpoint pytorch_<backbone>.pth from the same "
            "release")
    return strip_prefix(unwrap(safe_torch_load(path)))


def to_ours(official: Mapping, expected: Iterable[str]) -> dict:
    """Validate an official mapping against our key list (identical names); every key consumed, no leftovers."""
    return take_exactly(official, expected, "BGMv2 checkpoint")


def to_official(ours: Mapping) -> dict:
    return dict(ours)


def write_checkpoint(ours: Mapping, path: str | os.PathLike) -> None:
    """Write in the authors' wrapping: ``torch.save(model.state_dict(), path)``."""
    import torch

    torch.save({k: v.detach().clone() for k, v in to_official(ours).items()}, os.fspath(path))
