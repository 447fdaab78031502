"""PP-Matting inference pipeline as PaddleSeg's ``Matting/tools/predict.py`` runs it (no trimap).

1. ``LimitShort(max_short)``: only when the short side exceeds ``max_short`` (512 for the ``hrnet_w18`` weights,
   1024 for ``hrnet_w18-1024``), resize (cv2 INTER_LINEAR, on uint8) so the short side equals it, long side
   ``round(long * scale)``;
2. ``ResizeToIntMult(32)``: cv2 INTER_LINEAR DOWN to multiples of 32 (``h - h % 32``; images under 32 px are
   resized up to 32, where the official code would fail);
3. normalise ``(x / 255 - 0.5) / 0.5``; network (eval output = fused alpha);
4. undo the resizes in reverse order with bilinear interpolation (half-pixel centres).
The official tool then writes ``(alpha * 255).astype(uint8)``; ``predict`` returns the float alpha before that.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..base import MatteResult, TorchBackend, as_uint8_image
from . import convert


class PPMattingAdapter(TorchBackend):
    def build_net(self):
        from .net import PPMatting

        return PPMatting()

    def read_checkpoint(self, path):
        return convert.read_checkpoint(path)

    def convert(self, official):
        return convert.to_ours(official)

    @property
    def max_short(self) -> int:
        if self.options.get("max_short"):
            return int(self.options["max_short"])
        tag = self.weights_set.tag if self.weights_set is not None else "hrnet_w18"
        return 1024 if tag.endswith("1024") else 512

    def preprocess(self, image: np.ndarray):
        """uint8 RGB -> (network input [1,3,h32,w32] float32 numpy, list of sizes to undo)."""
        img = as_uint8_image(image)
        sizes = []
        h, w = img.shape[:2]
        sizes.append((h, w))
        short = min(h, w)
        if short > self.max_short:
            scale = float(self.max_short) / float(short)
            img = cv2.resize(img, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        sizes.append((h, w))
        rh, rw = max(h - h % 32, 32), max(w - w % 32, 32)
        img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
        x = img.astype(np.float32) / 255.0
        x -= np.float32(0.5)
        x /= np.float32(0.5)
        return x.transpose(2, 0, 1)[None].copy(), sizes

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        import torch
        import torch.nn.functional as F

        x, sizes = self.preprocess(image)
        with torch.inference_mode():
            out = self.net.forward_all(torch.from_numpy(x).to(self.device, self.dtype))
            alpha = out["fusion"].float()
            for size in reversed(sizes):
                alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
        a = alpha[0, 0].cpu().numpy().astype(np.float32)
        return MatteResult(alpha=np.clip(a, 0, 1), extras={"net_output": out["fusion"].float().cpu().numpy()})
