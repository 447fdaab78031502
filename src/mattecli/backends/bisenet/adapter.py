"""BiSeNetV2 segmenter: the official demo pipeline (CoinCheung/BiSeNet tools/demo.py), batched on the device.

RGB / 255, normalised with the Cityscapes statistics (the demo uses them for every checkpoint; option
``normalization="dataset"`` uses the checkpoint's own training statistics instead), bilinear resize UP to multiples
of 32, network, logits x8 then resized back bilinearly, argmax.

Outputs (``Prediction``): ``alpha`` [B,1,H,W] = the softmax probability of the ``classes`` option (default:
person); extras ``labels`` [B,H,W] int32 (the argmax class map), ``probability`` (= alpha), ``logits_lowres``
[B,C,h,w] (the classifier output at 1/8 of the network input), ``class_ids`` (the selected classes) and
``class_names`` (the class list).
"""
from __future__ import annotations

import math

from ...errors import UsageError
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import BiSeNetConverter

CITYSCAPES_MEAN_STD = ((0.3257, 0.3690, 0.3223), (0.2112, 0.2148, 0.2115))
COCO_MEAN_STD = ((0.46962251, 0.4464104, 0.40718787), (0.27469736, 0.27012361, 0.28515933))


def class_ids(entry, classes) -> tuple[int, ...]:
    """Class names (case-insensitive) or indices -> indices; UsageError naming an unknown one."""
    names = tuple(entry.classes)
    lookup = {n.lower(): i for i, n in enumerate(names)}
    ids = []
    for c in classes or ("person",):
        c = str(c).strip()
        if c.isdigit():
            i = int(c)
            if not 0 <= i < len(names):
                raise UsageError(f"{entry.name}: class index {i} out of range 0..{len(names) - 1}")
            ids.append(i)
        elif c.lower() in lookup:
            ids.append(lookup[c.lower()])
        else:
            raise UsageError(f"{entry.name}: unknown class {c!r}; see `mattecli models info {entry.name}`")
    return tuple(ids)


class BiSeNetV2Adapter(TorchBackend):
    converter = BiSeNetConverter()
    runtime_parts = (Part("net", "forward_lowres"),)

    def __init__(self, entry, weights_set=None, **kwargs):
        options = {k: v for k, v in kwargs.items() if k not in ("weights", "device", "precision", "runtime")}
        self.class_names = tuple(entry.classes)
        self.class_ids = class_ids(entry, entry.validate_options(options)["classes"])   # before the weights load
        super().__init__(entry, weights_set, **kwargs)

    @property
    def mean_std(self):
        coco = len(self.class_names) == 171
        return COCO_MEAN_STD if (self.options["normalization"] == "dataset" and coco) else CITYSCAPES_MEAN_STD

    def build_net(self, state_dict):
        from .net import BiSeNetV2

        return BiSeNetV2(len(self.class_names))

    # -- pipeline ---------------------------------------------------------------------------------------------------
    def encode(self, batch):
        import torch.nn.functional as F

        from ..layers.normalize import normalize

        h, w = batch.size
        mean, std = self.mean_std
        x = normalize(batch.float_image(), mean, std)
        x = F.interpolate(x, size=(math.ceil(h / 32) * 32, math.ceil(w / 32) * 32), mode="bilinear",
                          align_corners=False)
        return (x.to(self.dtype),), (h, w)

    def forward(self, inputs):
        """Low-resolution logits, in float32 at least (post-processing never runs in half precision)."""
        import torch

        lo = self.net.forward_lowres(*inputs)
        return lo.to(torch.promote_types(lo.dtype, torch.float32))

    @staticmethod
    def upsample(lo, size):
        """Low-resolution logits -> logits at the input size: x8 (the head's own upsampling), then the demo's
        resize back."""
        import torch.nn.functional as F

        up = F.interpolate(lo, scale_factor=8.0, mode="bilinear", align_corners=False)
        return F.interpolate(up, size=size, mode="bilinear", align_corners=False)

    def logits(self, batch):
        """(logits [B,C,H,W] at the input size, low-resolution logits): the demo pipeline up to the argmax."""
        import torch

        batch = batch.to(self.device)
        with torch.inference_mode():
            inputs, size = self.encode(batch)
            lo = self.forward(inputs)
            return self.upsample(lo, size), lo

    def decode(self, lo, batch, size) -> Prediction:
        import torch

        from ..layers.reductions import first_argmax

        logits = self.upsample(lo, size)
        labels = first_argmax(logits, dim=1).to(torch.int32)
        prob = torch.softmax(logits, dim=1)[:, list(self.class_ids)].sum(1, keepdim=True).clamp_(0, 1).float()
        return Prediction(alpha=prob, extras={"labels": labels, "probability": prob, "logits_lowres": lo.float(),
                                              "class_ids": self.class_ids, "class_names": self.class_names})
