"""PP-Matting inference pipeline as PaddleSeg's ``Matting/tools/predict.py`` runs it (no trimap).

1. ``LimitShort(max_short)``: only when the short side exceeds ``max_short`` (512 for the ``hrnet_w18`` weights,
   1024 for ``hrnet_w18-1024``), resize (cv2 INTER_LINEAR, on uint8) so the short side equals it, long side
   ``round(long * scale)``;
2. ``ResizeToIntMult(32)``: cv2 INTER_LINEAR DOWN to multiples of 32 (``h - h % 32``; images under 32 px are
   resized up to 32, where the official code would fail);
3. normalise ``(x / 255 - 0.5) / 0.5``; network (eval output = fused alpha);
4. undo the resizes in reverse order with bilinear interpolation (half-pixel centres).
The official tool then writes ``(alpha * 255).astype(uint8)``; we return the float alpha before that.

The cv2 resizes (steps 1-2) run on the host for each image (torch has no bit-exact twin of cv2's fixed-point
INTER_LINEAR); a resize to the same size is a copy in cv2, so an image already at a multiple of 32 stays on the
device. Everything else runs on the batch's device.
"""
from __future__ import annotations

from ...imaging.arrays import tensor_to_float
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import PPMattingConverter


def net_sizes(h: int, w: int, max_short: int) -> tuple:
    """([(h, w) before LimitShort, (h, w) before ResizeToIntMult]  (the official ``trans_info``), network size)."""
    sizes = [(h, w)]
    if min(h, w) > max_short:
        scale = float(max_short) / float(min(h, w))
        h, w = int(round(h * scale)), int(round(w * scale))
    sizes.append((h, w))
    return sizes, (max(h - h % 32, 32), max(w - w % 32, 32))


def _cv2_resize_batch(image, sizes):
    """uint8 [B,3,H,W] tensor -> uint8 [B,3,h,w] after cv2 INTER_LINEAR resizes to each of ``sizes`` in turn."""
    import cv2
    import numpy as np
    import torch

    out = []
    for i in range(image.shape[0]):
        a = np.ascontiguousarray(image[i].permute(1, 2, 0).cpu().numpy())
        for h, w in sizes:
            if a.shape[:2] != (h, w):
                a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))))
    return torch.stack(out).to(image.device)


class PPMattingAdapter(TorchBackend):
    converter = PPMattingConverter()
    runtime_parts = (Part("net", "forward_all"),)

    def build_net(self, state_dict):
        from .net import PPMatting

        return PPMatting()

    @property
    def max_short(self) -> int:
        if self.options.get("max_short"):
            return int(self.options["max_short"])
        tag = self.weights_set.tag if self.weights_set is not None else "hrnet_w18"
        return 1024 if tag.endswith("1024") else 512

    def encode(self, batch):
        """-> ((normalised network input,), the official trans_info sizes to undo)."""
        sizes, net_hw = net_sizes(*batch.size, self.max_short)
        img = batch.uint8_image()
        if tuple(img.shape[-2:]) != net_hw:
            img = _cv2_resize_batch(img, [sizes[1], net_hw])
        x = (tensor_to_float(img) - 0.5) / 0.5   # uint8 / 255 in float32, as the official numpy code
        return (x.to(self.dtype),), sizes

    def forward(self, inputs):
        return self.net.forward_all(*inputs)

    def decode(self, out, batch, sizes):
        import torch.nn.functional as F

        fusion = out["fusion"].float()
        alpha = fusion
        for size in reversed(sizes):
            alpha = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
        return Prediction(alpha=alpha.clamp(0, 1), extras={"net_output": fusion})
