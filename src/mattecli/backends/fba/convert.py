"""FBA.pth <-> our weights.

The official file is a plain state dict (``torch.save(model.state_dict())`` of ``MattingModule``), keys
``encoder.*`` / ``decoder.*``, no prefix. Our module uses the same names, so conversion is a strict key/shape check
(a ``module.`` prefix from a DataParallel re-save is tolerated). The load-time weight standardisation is not part of
the file: it happens in ``FBAAdapter.after_load`` via ``eval()`` exactly as the official demo does.
"""
from __future__ import annotations

import os
from typing import Mapping

from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix, unwrap


def expected_keys() -> list:
    from .net import FBANet

    return list(FBANet().state_dict().keys())


_KEYS: list | None = None


def _keys() -> list:
    global _KEYS
    if _KEYS is None:
        _KEYS = expected_keys()
    return _KEYS


def read_checkpoint(path: str | os.PathLike) -> dict:
    """FBA.pth -> official-layout mapping."""
    return strip_prefix(unwrap(safe_torch_load(path)))


def to_ours(official: Mapping) -> dict:
    kt = KeyTaker(strip_prefix(dict(official)), what="FBA checkpoint")
    ours = {k: kt.take(k) for k in _keys()}
    kt.finish()
    return ours


def to_official(ours: Mapping) -> dict:
    return {k: ours[k] for k in _keys()}


def write_checkpoint(ours: Mapping, path: str | os.PathLike) -> None:
    """Write in the authors' wrapping: a plain state dict."""
    import torch

    torch.save({k: v.detach().clone() for k, v in to_official(ours).items()}, os.fspath(path))
