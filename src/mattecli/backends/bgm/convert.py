"""Background Matting v1 checkpoints: ``Models/<tag>/netG_epoch_*.pth``.

Official wrapping: the state dict of ``nn.DataParallel(ResnetConditionHR(...))`` (every key prefixed ``module.``),
loaded strictly by test_background-matting_image.py. Our module uses the bare official names, so conversion =
strip ``module.`` + validate every key (the unused motion branch included, as the official strict load);
writing puts the ``module.`` prefix back.
"""
from __future__ import annotations

import os

from ..base import SameKeys

_KEYS: list | None = None


def our_keys() -> list:
    """Our state-dict keys (the generator built once per process, on the meta device)."""
    global _KEYS
    if _KEYS is None:
        import torch

        from .net import ResnetConditionHR

        with torch.device("meta"):
            _KEYS = list(ResnetConditionHR().state_dict().keys())
    return _KEYS


class BGMConverter(SameKeys):
    def keys(self, spec) -> list:
        return our_keys()

    def write(self, ours, path, spec) -> None:
        """The authors' file: ``torch.save(nn.DataParallel(netG).state_dict())`` -> ``module.`` + official keys."""
        import torch

        torch.save({"module." + k: v.detach().clone() for k, v in self.to_official(ours, spec).items()},
                   os.fspath(path))
