"""BiSeNetV2 segmenter: the official demo pipeline (CoinCheung/BiSeNet tools/demo.py).

RGB /255, normalised with the Cityscapes statistics (the demo uses them for every checkpoint; option
``normalization="dataset"`` uses the checkpoint's own training statistics instead), bilinear resize UP to multiples of
32, network, logits resized back bilinearly, argmax. ``MatteResult.alpha`` is the softmax probability of the
``classes`` option (default: person); ``extras["labels"]`` is the argmax class map and ``extras["class_names"]`` the
class list.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import UsageError
from ..base import MatteResult, TorchBackend, as_float_image
from . import convert

CITYSCAPES_MEAN_STD = ((0.3257, 0.3690, 0.3223), (0.2112, 0.2148, 0.2115))
COCO_MEAN_STD = ((0.46962251, 0.4464104, 0.40718787), (0.27469736, 0.27012361, 0.28515933))


class BiSeNetV2Adapter(TorchBackend):
    def build_net(self):
        from .net import BiSeNetV2

        self.class_names = tuple(self.entry.classes)
        self.class_ids = self._class_ids(self.options.get("classes"))
        norm = self.options.get("normalization", "demo")
        if norm not in ("demo", "dataset"):
            raise UsageError("bisenetv2 option normalization must be 'demo' or 'dataset'")
        coco = len(self.class_names) == 171
        self.mean_std = COCO_MEAN_STD if (norm == "dataset" and coco) else CITYSCAPES_MEAN_STD
        return BiSeNetV2(len(self.class_names))

    def _class_ids(self, classes) -> list[int]:
        if classes is None or classes == ():
            classes = ("person",)
        if isinstance(classes, str):
            classes = [c.strip() for c in classes.split(",") if c.strip()]
        ids = []
        lookup = {n.lower(): i for i, n in enumerate(self.class_names)}
        for c in classes:
            if isinstance(c, int) or (isinstance(c, str) and c.isdigit()):
                i = int(c)
                if not 0 <= i < len(self.class_names):
                    raise UsageError(f"{self.entry.name}: class index {i} out of range 0..{len(self.class_names) - 1}")
                ids.append(i)
            elif c.lower() in lookup:
                ids.append(lookup[c.lower()])
            else:
                raise UsageError(f"{self.entry.name}: unknown class {c!r}; see `mattecli models info {self.entry.name}`")
        return ids

    def read_checkpoint(self, path):
        return convert.read_checkpoint(path)

    def convert(self, official):
        return convert.to_ours(official, len(self.entry.classes))

    def logits(self, image: np.ndarray):
        """Official demo pipeline up to the logits resized back to the input size: torch [1, C, H, W] float32."""
        import torch
        import torch.nn.functional as F

        img = as_float_image(image)
        h, w = img.shape[:2]
        mean = np.asarray(self.mean_std[0], np.float32)
        std = np.asarray(self.mean_std[1], np.float32)
        x = torch.from_numpy(((img - mean) / std).transpose(2, 0, 1).copy())[None].to(self.device)
        size = (math.ceil(h / 32) * 32, math.ceil(w / 32) * 32)
        with torch.inference_mode():
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            lo = self.net.forward_lowres(x.to(self.dtype)).float()
            up = F.interpolate(lo, scale_factor=8.0, mode="bilinear", align_corners=False)
            out = F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)
        return out, lo

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        import torch

        logits, lo = self.logits(image)
        with torch.inference_mode():
            labels = logits.argmax(dim=1)[0]
            prob = torch.softmax(logits, dim=1)[0, self.class_ids].sum(0)
        return MatteResult(
            alpha=prob.clamp(0, 1).cpu().numpy().astype(np.float32),
            extras={"labels": labels.cpu().numpy().astype(np.int32), "class_names": self.class_names,
                    "class_ids": list(self.class_ids), "logits_lowres": lo.cpu().numpy()},
        )
