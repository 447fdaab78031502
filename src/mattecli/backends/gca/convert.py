"""gca-dist-all-data.pth / gca-dist.pth <-> our weights.

Official wrapping: ``{'iter': int, 'loss': float, 'state_dict': {'module.' + key: tensor}}`` (trained with
DistributedDataParallel; optimizer state removed by the authors). ``demo.py`` strips the prefix only when the first
key starts with ``module`` and casts every value to float; we do the same (a bare state dict is accepted too).
Our module uses the official key names (spectral-norm ``...module.weight_u/_v/_bar`` included).
"""
from __future__ import annotations

import os
from typing import Mapping

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, safe_torch_load

PREFIX = "module"
_KEYS: list | None = None


def our_keys() -> list:
    global _KEYS
    if _KEYS is None:
        from .net import GCANet

        _KEYS = list(GCANet().state_dict().keys())
    return _KEYS


def remove_prefix_state_dict(sd: Mapping, prefix: str = PREFIX) -> dict:
    """The official ``utils.remove_prefix_state_dict``: strip ``module.`` if the FIRST key starts with it; float."""
    keys = list(sd.keys())
    if not keys:
        raise ConverterError("GCA checkpoint: empty state dict")
    if keys[0].startswith(prefix):
        return {k[len(prefix) + 1:]: v.float() for k, v in sd.items()}
    return {k: v.float() for k, v in sd.items()}


class GCAConverter(Converter):
    def read(self, path, spec):
        obj = safe_torch_load(path)
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise ConverterError(f"{path}: not a GCA checkpoint (expected {{'state_dict': ...}})", path=path)
        return remove_prefix_state_dict(obj)

    def to_ours(self, official, spec):
        import torch

        sd = dict(official)
        if sd and next(iter(sd)).startswith(PREFIX):
            sd = remove_prefix_state_dict(sd)
        kt = KeyTaker(sd, what="GCA checkpoint")
        ours = {}
        for k in our_keys():
            v = kt.take(k)
            if not isinstance(v, torch.Tensor):
                raise ConverterError(f"GCA checkpoint: {k} is not a tensor")
            ours[k] = v.float() if v.is_floating_point() else v
        kt.finish()
        return ours

    def to_official(self, ours, spec):
        """The layout inside the file: ``'module.' + key`` (DistributedDataParallel)."""
        return {f"{PREFIX}.{k}": ours[k] for k in our_keys()}

    def write(self, ours, path, spec):
        """The authors' wrapping: ``{'iter', 'loss', 'state_dict': {'module.' + key}}``."""
        import torch

        sd = {k: v.detach().clone() for k, v in self.to_official(ours, spec).items()}
        torch.save({"iter": 0, "loss": 0.0, "state_dict": sd}, os.fspath(path))
