"""BGMv2 checkpoints: ``pytorch_{resnet50,resnet101,mobilenetv2}.pth`` are plain state dicts of ``MattingRefine``
(no prefix), with exactly the keys our :mod:`.net` uses. Conversion = unwrap + validate every key (the backbone is
the weight set's tag); writing = ``torch.save(model.state_dict())``, the authors' wrapping.

TorchScript (``torchscript_*.pth``) and ONNX exports are refused with a message naming the PyTorch file to use.
"""
from __future__ import annotations

import os
import zipfile

from ...errors import ConverterError
from ..base import SameKeys
from ..checkpoint import safe_torch_load, strip_prefix, unwrap

FILENAMES = {
    "resnet50": "pytorch_resnet50.pth",
    "resnet101": "pytorch_resnet101.pth",
    "mobilenetv2": "pytorch_mobilenetv2.pth",
}
DEFAULT_BACKBONE = "resnet50"

_KEYS: dict = {}


def backbone_of(spec) -> str:
    """The backbone named by the weight set's tag (resnet50 when there is none)."""
    return spec.tag if spec is not None and spec.tag in FILENAMES else DEFAULT_BACKBONE


def our_keys(backbone: str) -> list:
    """Our state-dict keys for one backbone (the network built once per process, on the meta device)."""
    if backbone not in _KEYS:
        import torch

        from .net import MattingRefine

        with torch.device("meta"):
            _KEYS[backbone] = list(MattingRefine(backbone).state_dict().keys())
    return _KEYS[backbone]


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class BGMv2Converter(SameKeys):
    def keys(self, spec) -> list:
        return our_keys(backbone_of(spec))

    def read(self, path, spec) -> dict:
        """Official file -> official-layout mapping (plain dict; ``{'state_dict': ...}`` and ``module.`` tolerated)."""
        path = os.fspath(path)
        if path.lower().endswith(".onnx"):
            raise ConverterError(f"{path}: ONNX exports are not read; use the PyTorch checkpoint "
                                 "pytorch_<backbone>.pth", path=path)
        if _is_torchscript(path):
            raise ConverterError(f"{path}: this is a TorchScript export; use the PyTorch checkpoint "
                                 "pytorch_<backbone>.pth from the same release", path=path)
        return strip_prefix(unwrap(safe_torch_load(path)))
