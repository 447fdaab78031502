"""MODNet checkpoints (``modnet_photographic_portrait_matting.ckpt``, ``modnet_webcam_portrait_matting.ckpt``).

Official wrapping: a plain state dict saved from ``nn.DataParallel(MODNet(...))``: every key carries ``module.``.
The backbone appears twice (``backbone.model.*`` and its alias ``lr_branch.backbone.model.*``: one module registered
under two names). We keep one copy. When both copies are present and differ, the official strict load ends with the
``lr_branch.backbone`` values (it is loaded after ``backbone``), so that copy wins here too.
"""
from __future__ import annotations

import os
from typing import Mapping

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix, unwrap

ALIAS_PREFIX = "lr_branch.backbone."
BACKBONE_PREFIX = "backbone."


_KEYS: list | None = None


def our_keys() -> list:
    """Our state-dict keys (one network built once per process to learn them)."""
    global _KEYS
    if _KEYS is None:
        from .net import MODNet

        _KEYS = list(MODNet(in_channels=3, hr_channels=32).state_dict().keys())
    return _KEYS


class MODNetConverter(Converter):
    def read(self, path, spec):
        path = os.fspath(path)
        if path.lower().endswith(".onnx"):
            raise ConverterError(f"{path}: ONNX exports are not read; use modnet_*_portrait_matting.ckpt")
        return strip_prefix(unwrap(safe_torch_load(path)))

    def to_ours(self, official: Mapping, spec) -> dict:
        kt = KeyTaker(official, what="MODNet checkpoint")
        out = {}
        for k in our_keys():
            if k.startswith(BACKBONE_PREFIX):
                alias = ALIAS_PREFIX + k[len(BACKBONE_PREFIX):]
                has_main, has_alias = k in kt.src, alias in kt.src
                if has_main and has_alias:
                    main, al = kt.take(k), kt.take(alias)
                    out[k] = al  # loaded last by the official strict load
                    if tuple(main.shape) != tuple(al.shape):
                        raise ConverterError(f"MODNet checkpoint: {k} and its alias {alias} have different shapes")
                elif has_alias:
                    out[k] = kt.take(alias)
                else:
                    out[k] = kt.take(k)
            else:
                out[k] = kt.take(k)
        kt.finish()
        return out

    def to_official(self, ours: Mapping, spec) -> dict:
        """Bare official layout: backbone tensors listed twice (``backbone.*`` and ``lr_branch.backbone.*``)."""
        out = {}
        for k, v in ours.items():
            if k.startswith(BACKBONE_PREFIX):
                out[k] = v
        for k, v in ours.items():
            if k.startswith(BACKBONE_PREFIX):
                out[ALIAS_PREFIX + k[len(BACKBONE_PREFIX):]] = v
        for k, v in ours.items():
            if not k.startswith(BACKBONE_PREFIX):
                out[k] = v
        return out

    def write(self, ours: Mapping, path, spec) -> None:
        """The authors' file: ``torch.save(nn.DataParallel(model).state_dict())`` -> ``module.`` + official keys."""
        import torch

        torch.save({"module." + k: v.detach().clone() for k, v in self.to_official(ours, spec).items()},
                   os.fspath(path))
