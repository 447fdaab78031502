"""FBA.pth <-> our weights.

The official file is a plain state dict (``torch.save(model.state_dict())`` of ``MattingModule``), keys
``encoder.*`` / ``decoder.*``, no prefix. Our module uses the same names, so conversion is a strict key/shape check
(a ``module.`` prefix from a DataParallel re-save is tolerated). The load-time weight standardisation is not part of
the file: it happens when ``TorchBackend`` calls ``eval()`` once after the strict load, exactly as the official
demo does.
"""
from __future__ import annotations

from ..base import SameKeys

_KEYS: list | None = None


class FBAConverter(SameKeys):
    """Official names both ways; ``write`` (inherited) saves the plain state dict the authors ship."""

    def keys(self, spec) -> list:
        global _KEYS
        if _KEYS is None:
            from .net import FBANet

            _KEYS = list(FBANet().state_dict().keys())
        return _KEYS
