"""Background Matting v1 checkpoints: ``Models/<tag>/netG_epoch_*.pth``.

Official wrapping: the state dict of ``nn.DataParallel(ResnetConditionHR(...))`` (every key prefixed ``module.``),
loaded strictly by test_background-matting_image.py. Our module uses the bare official names, so conversion =
strip ``module.`` + validate every key.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

from ..checkpoint import safe_torch_load, strip_prefix, take_exactly, unwrap


def read_checkpoint(path: str | os.PathLike) -> dict:
    return strip_prefix(unwrap(safe_torch_load(os.fspath(path))))


def to_ours(official: Mapping, expected: Iterable[str]) -> dict:
    return take_exactly(official, expected, "Background Matting v1 checkpoint")


def to_official(ours: Mapping) -> dict:
    return dict(ours)


def write_checkpoint(ours: Mapping, path: str | os.PathLike) -> None:
    """The authors' file: ``torch.save(nn.DataParallel(netG).state_dict())`` -> ``module.`` + official keys."""
    import torch

    torch.save({"module." + k: v.detach().clone() for k, v in to_official(ours).items()}, os.fspath(path))
