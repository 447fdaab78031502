"""BiSeNetV2 checkpoints (CoinCheung/BiSeNet): plain state dict saved in training mode.

The official layout equals our module names plus the auxiliary heads ``aux2, aux3, aux4, aux5_4`` that only training
uses. ``to_ours`` consumes every key: inference keys are taken by name, auxiliary-head keys are checked against the
official auxiliary-head shapes and dropped; anything else raises.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker

_AUX = {  # head name -> (input channels, up factor): mid channels 128, aux conv to up_factor**2 channels
    "aux2": (16, 4), "aux3": (32, 8), "aux4": (64, 16), "aux5_4": (128, 32),
}
_AUX_RE = re.compile(r"^(aux2|aux3|aux4|aux5_4)\.(.+)$")


@lru_cache(maxsize=None)
def _inference_keys(n_classes: int) -> dict:
    import torch

    from .net import BiSeNetV2

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in BiSeNetV2(n_classes).state_dict().items()}


def _aux_shapes(n_classes: int) -> dict:
    out = {}
    for name, (cin, up) in _AUX.items():
        mid2 = up * up
        conv = {"conv.conv.weight": (128, cin, 3, 3), "conv_out.0.1.conv.weight": (mid2, 128, 3, 3),
                "conv_out.1.weight": (n_classes, mid2, 1, 1), "conv_out.1.bias": (n_classes,)}
        for bn, c in (("conv.bn", 128), ("conv_out.0.1.bn", mid2)):
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                conv[f"{bn}.{leaf}"] = (c,)
            conv[f"{bn}.num_batches_tracked"] = ()
        out.update({f"{name}.{k}": v for k, v in conv.items()})
    return out


def num_classes(official) -> int:
    try:
        return int(official["head.conv_out.1.weight"].shape[0])
    except KeyError:
        raise ConverterError("missing key 'head.conv_out.1.weight' (not a BiSeNetV2 checkpoint)") from None


class BiSeNetConverter(Converter):
    """Official training-mode state dict <-> our inference state dict (the class count is the entry's)."""

    def to_ours(self, official, spec) -> dict:
        n = len(spec.entry.classes)
        if num_classes(official) != n:
            raise ConverterError(f"checkpoint has {num_classes(official)} classes, this model expects {n}")
        taker = KeyTaker(official, "BiSeNetV2 checkpoint")
        ours = {}
        for key, shape in _inference_keys(n).items():
            v = taker.take(key)
            if tuple(v.shape) != shape:
                raise ConverterError(f"BiSeNetV2 checkpoint: {key} has shape {tuple(v.shape)}, expected {shape}")
            ours[key] = v
        aux = _aux_shapes(n)
        for key in [k for k in taker.src if _AUX_RE.match(k)]:
            v = taker.take(key)
            if key not in aux or tuple(v.shape) != aux[key]:
                raise ConverterError(f"BiSeNetV2 checkpoint: unexpected auxiliary-head tensor {key} "
                                     f"{tuple(v.shape)}")
        taker.finish()
        return ours

    def to_official(self, ours, spec) -> dict:
        """Our state dict is the official inference subset (what the demo's ``strict=False`` load uses); the
        training-only auxiliary heads are not kept. Written as a plain ``torch.save`` dict, as the authors do."""
        return dict(ours)
