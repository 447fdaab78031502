"""Deep Image Matting: the two ports' own inference pipelines, on tensors, per batch.

``dim`` / ``dim.huochaitiantang`` (core/demo.py + core/deploy.py ``inference_img_whole``): resize image and trimap DOWN
to multiples of 32 (``min(max_size, h - h % 32)``, cv2 bilinear on uint8, on the host: OpenCV's fixed-point uint8
arithmetic has no torch equivalent), ``ToTensor`` + ImageNet normalisation, trimap float32 / 255, network, cv2
bilinear resize back (host), known trimap regions forced to 0/1. ``crop_or_resize="resize"`` (fixed ``size_h`` x
``size_w``) and ``"crop"`` (non-overlapping ``size_h`` x ``size_w`` crops, each resized to that size when it is
smaller, crops without unknown pixels skipped, averaged where they meet) are the deploy.py alternatives.

``dim.foamliu`` (eval.py / test.py): ``ToTensor`` + ImageNet normalisation, trimap / 255 in float64 then float32, the
network at the original size (no resize, no padding), known trimap regions forced to 0/1.

``extras['raw_alpha']`` is the network's alpha at the input size before the trimap is applied.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, UsageError
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import FoamliuConverter, HuoConverter


def _resize_each(t, size_hw: tuple):
    """cv2.resize INTER_LINEAR of every item of a [B,C,H,W] tensor on the host, in its dtype (uint8: OpenCV's
    fixed-point bilinear) -> tensor on the same device. The same size is returned as is (cv2 copies then)."""
    import cv2
    import torch

    h, w = size_hw
    if tuple(t.shape[-2:]) == (h, w):
        return t
    out = []
    for item in t:
        r = cv2.resize(np.ascontiguousarray(item.permute(1, 2, 0).cpu().numpy()), (w, h),
                       interpolation=cv2.INTER_LINEAR)
        out.append(torch.from_numpy(r.reshape(h, w, -1).transpose(2, 0, 1).copy()))
    return torch.stack(out).to(t.device)


def clamp_known(raw, trimap):
    """Alpha forced to 1 / 0 on the known trimap regions, clipped to [0, 1]."""
    alpha = raw.clone()
    alpha[trimap == 255] = 1.0
    alpha[trimap == 0] = 0.0
    return alpha.clamp_(0.0, 1.0)


class _DIMBase(TorchBackend):
    runtime_parts = (Part("net"),)
    trimap_in_float64 = False   # the port computes trimap / 255 in float32 (huochaitiantang) or float64 (foamliu)

    def net_input(self, image_u8, trimap_u8):
        """[B,3,h,w] uint8 RGB, [B,1,h,w] uint8 trimap -> [B,4,h,w] (ToTensor + Normalize, trimap / 255)."""
        import torch

        from ..layers.normalize import normalize

        img = normalize(image_u8.float().div_(255.0))
        tri = trimap_u8.to(torch.float64 if self.trimap_in_float64 else torch.float32).div_(255.0).float()
        return torch.cat([img, tri], 1).to(self.dtype)

    def decode(self, out, batch, ctx):
        raw = _resize_each(out.float(), batch.size)
        return Prediction(alpha=clamp_known(raw, batch.trimap), extras={"raw_alpha": raw})


class DIMAdapter(_DIMBase):
    """huochaitiantang/pytorch-deep-image-matting, VGG-16 + skip, stage 1."""

    converter = HuoConverter()

    def build_net(self, state_dict):
        from .net import DIMVGG16

        bad = [f"{k}={self.options[k]}" for k in ("max_size", "size_h", "size_w") if self.options[k] % 32]
        if bad:
            raise UsageError(f"model {self.entry.name}: --option {', '.join(bad)}: the network needs multiples of 32")
        return DIMVGG16()

    def net_size(self, h: int, w: int) -> tuple:
        if self.options["crop_or_resize"] == "whole":
            m = self.options["max_size"]
            size = min(m, h - h % 32), min(m, w - w % 32)
            if 0 in size:
                raise InputError(f"dim needs images of at least 32x32 pixels (got {w}x{h}); upscale the image first")
            return size
        return self.options["size_h"], self.options["size_w"]

    def encode(self, batch):
        size = self.net_size(*batch.size)
        return (self.net_input(_resize_each(batch.uint8_image(), size), _resize_each(batch.trimap, size)),), None

    def predict_batch(self, batch):
        if self.options["crop_or_resize"] != "crop":
            return super().predict_batch(batch)
        import torch

        batch = batch.to(self.device)
        h, w = batch.size
        sh, sw = self.options["size_h"], self.options["size_w"]
        acc = torch.zeros((batch.n, 1, h, w), dtype=torch.float32, device=batch.device)
        marks = torch.zeros_like(acc)
        with torch.inference_mode():
            for y in range(0, h, sh):
                for x in range(0, w, sw):
                    crop = batch.map(lambda t: t[..., y:y + sh, x:x + sw])
                    todo = (crop.trimap == 128).flatten(1).any(1)
                    if not bool(todo.any()):
                        continue
                    items = todo.nonzero()[:, 0]
                    sub = crop.map(lambda t: t[items])
                    inputs, ctx = self.encode(sub)
                    acc[items, :, y:y + sh, x:x + sw] += self.decode(self.forward(inputs), sub, ctx).extras["raw_alpha"]
                    marks[items, :, y:y + sh, x:x + sw] += 1
            raw = acc / marks.clamp_min_(1.0)
        return Prediction(alpha=clamp_known(raw, batch.trimap), extras={"raw_alpha": raw})


class DIMFoamliuAdapter(_DIMBase):
    """foamliu/Deep-Image-Matting-PyTorch DIMModel (SegNet-style)."""

    converter = FoamliuConverter()
    trimap_in_float64 = True   # test.py: x[:, 3] = torch.from_numpy(trimap / 255.)

    def build_net(self, state_dict):
        from .net import DIMSegNet

        return DIMSegNet()

    def encode(self, batch):
        return (self.net_input(batch.uint8_image(), batch.trimap),), None
