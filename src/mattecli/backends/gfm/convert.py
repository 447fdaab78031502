"""GFM checkpoints (JizhiziLi/GFM ``models/pretrained/gfm_*.pth``): a plain state dict loaded with ``strict=True``.

The official module registers its torchvision backbone twice: as ``resnet`` / ``densenet`` and, piece by piece, as
``encoder0..4``, so every backbone tensor is stored under two keys with identical values. ``to_ours`` keeps the
``resnet.*`` / ``densenet.*`` copy, checks that each ``encoderN.*`` alias is present and equal to it (a mismatch
raises ConverterError: the file is not what the official model would load consistently) and consumes it. The unused
``resnet.fc`` / ``densenet.classifier`` (and ``densenet.features.norm5``) are kept in our module, so
``to_official(to_ours(x)) == x`` key for key; ``write`` saves that full layout (aliases included), which
the official ``load_state_dict(strict=True)`` accepts. A ``module.`` prefix (DataParallel training saves) is stripped.
"""
from __future__ import annotations

import os
import re

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix, unwrap

_RESNET_ALIASES = (("encoder0.0.", "resnet.conv1."), ("encoder0.1.", "resnet.bn1."), ("encoder1.1.", "resnet.layer1."),
                   ("encoder2.", "resnet.layer2."), ("encoder3.", "resnet.layer3."), ("encoder4.", "resnet.layer4."))
# alias prefix in the official file -> prefix of the same tensors in our module
ALIASES = {
    "r34": _RESNET_ALIASES,
    "r101": _RESNET_ALIASES,
    "r34_2b": (("encoder1.", "resnet.layer1."), ("encoder2.", "resnet.layer2."), ("encoder3.", "resnet.layer3."),
               ("encoder4.", "resnet.layer4.")),
    "d121": (("encoder0.0.", "densenet.features.conv0."), ("encoder0.1.", "densenet.features.norm0."),
             ("encoder1.0.", "densenet.features.denseblock1."), ("encoder1.1.", "densenet.features.transition1."),
             ("encoder2.0.", "densenet.features.denseblock2."), ("encoder2.1.", "densenet.features.transition2."),
             ("encoder3.0.", "densenet.features.denseblock3."), ("encoder3.1.", "densenet.features.transition3."),
             ("encoder4.0.", "densenet.features.denseblock4.")),
}

_TEMPLATES: dict = {}


def template(backbone: str, rosta: str) -> dict:
    """Our state dict's {key: (shape, dtype)} for a variant (built on the meta device: no memory, no time)."""
    key = (backbone, rosta)
    if key not in _TEMPLATES:
        import torch

        from .net import GFM

        with torch.device("meta"):
            net = GFM(backbone, rosta)
        _TEMPLATES[key] = {k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}
    return _TEMPLATES[key]


def alias_pairs(backbone: str, rosta: str) -> list:
    """[(official alias key, our key)] in our key order."""
    pairs = []
    for ours in template(backbone, rosta):
        for alias_prefix, our_prefix in ALIASES[backbone]:
            if ours.startswith(our_prefix):
                pairs.append((alias_prefix + ours[len(our_prefix):], ours))
    return pairs


def _variant_hint(official) -> str:
    """Best guess of the variant a checkpoint belongs to, for error messages."""
    try:
        if "densenet.features.conv0.weight" in official:
            bb = "d121"
        elif "encoder6.1.conv1.weight" in official:
            bb = "r34-2b"
        elif "resnet.layer1.0.conv3.weight" in official:
            bb = "r101"
        else:
            bb = "r34"
        if "rim.0.weight" in official:
            return f"gfm.{bb}-rim"
        w = official.get("decoder0_g.6.weight", official.get("decoder0_g.0.weight"))
        rosta = "tt" if w is not None and w.shape[0] == 3 else "ft or bt"
        return f"gfm.{bb}-{rosta}"
    except Exception:  # pragma: no cover - only used to word an error
        return "another GFM variant"


def variant_of_tag(tag: str) -> tuple:
    """Registry tag ``r34-2b-tt`` -> (``r34_2b``, ``TT``)."""
    bb, _, rosta = tag.rpartition("-")
    return bb.replace("-", "_"), rosta.upper()


def variant_of(spec) -> tuple:
    """(backbone, rosta) of the weight set a spec names (the default set ``r34-tt`` without one)."""
    return variant_of_tag(spec.tag or "r34-tt")


_ENC = re.compile(r"^encoder(\d+)\.(\d+)\.")


class GFMConverter(Converter):
    """The weight set's tag picks the variant (backbone, RoSTa); see the module docstring for the layout."""

    def read(self, path, spec) -> dict:
        return strip_prefix(unwrap(safe_torch_load(path)))

    def to_ours(self, official, spec) -> dict:
        import torch

        backbone, rosta = variant_of(spec)
        what = f"GFM {backbone}-{rosta} checkpoint"
        taker = KeyTaker(official, what)
        ours = {}
        try:
            for key, (shape, dtype) in template(backbone, rosta).items():
                v = taker.take(key)
                if not isinstance(v, torch.Tensor):
                    raise ConverterError(f"{what}: {key} is not a tensor")
                if tuple(v.shape) != shape:
                    raise ConverterError(f"{what}: {key} has shape {tuple(v.shape)}, expected {shape}")
                ours[key] = v.to(dtype)
            for alias, key in alias_pairs(backbone, rosta):
                v = taker.take(alias)
                if tuple(v.shape) != tuple(ours[key].shape) or not torch.equal(v.to(ours[key].dtype), ours[key]):
                    raise ConverterError(f"{what}: {alias} differs from {key}; the official model registers them "
                                         "as one tensor, so a consistent checkpoint stores identical copies")
            taker.finish()
        except ConverterError as e:
            if "differs from" in str(e):
                raise
            hint = _variant_hint(official)
            if hint != f"gfm.{backbone.replace('_', '-')}-{rosta.lower()}":
                raise ConverterError(f"{e}; the file looks like {hint}: load it under that name") from None
            raise
        return ours

    def to_official(self, ours, spec) -> dict:
        """Our state dict -> the full official layout in the official key order (aliases and unused heads)."""
        backbone, rosta = variant_of(spec)
        keys = list(ours)
        backbone_keys = [k for k in keys if k.startswith(("resnet.", "densenet."))]
        encoder = [(k, k) for k in keys if k.startswith("encoder")] + alias_pairs(backbone, rosta)
        encoder.sort(key=lambda p: tuple(int(g) for g in _ENC.match(p[0]).groups()))  # stable: torchvision order
        taken = set(backbone_keys)
        rest = [k for k in keys if k not in taken and not k.startswith("encoder")]
        out = {k: ours[k] for k in backbone_keys}
        out.update({name: ours[src] for name, src in encoder})
        out.update({k: ours[k] for k in rest})
        return out

    def write(self, ours, path, spec) -> None:
        """The authors' wrapping: ``torch.save(model.state_dict())``, aliases included (their strict load needs
        them)."""
        import torch

        torch.save({k: v.detach().cpu().clone() for k, v in self.to_official(ours, spec).items()}, os.fspath(path))
