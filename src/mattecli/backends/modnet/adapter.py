"""MODNet inference pipeline (demo/image_matting/colab/inference.py of ZHKKKe/MODNet).

Official, per image: ``ToTensor`` (uint8/255), ``Normalize(0.5, 0.5)`` -> [-1, 1]; if the long side is under
``ref_size`` or the short side over it, rescale so the short side is ``ref_size`` (long side ``int(...)``); both sides
floored to a multiple of 32; ``F.interpolate(mode='area')``; ``matte = modnet(im, True)[2]``; area-resize back.
The demo then saves ``(matte * 255).astype('uint8')``; we return the float matte.

Ours: sides are floored to a multiple of 32 but never below 32 (the official script builds an empty tensor for an
image whose short side is under 32 px and ``ref_size`` does not apply).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ..base import MatteResult, TorchBackend, as_float_image
from . import convert


def net_size(h: int, w: int, ref_size: int = 512) -> tuple[int, int]:
    """The official resize rule (inference.py), plus a 32 px floor."""
    if max(h, w) < ref_size or min(h, w) > ref_size:
        if w >= h:
            rh, rw = ref_size, int(w / h * ref_size)
        else:
            rw, rh = ref_size, int(h / w * ref_size)
    else:
        rh, rw = h, w
    rw -= rw % 32
    rh -= rh % 32
    return max(rh, 32), max(rw, 32)


class MODNetAdapter(TorchBackend):
    def parse_options(self, options):
        opts = super().parse_options(options)
        try:
            ref = int(opts["ref_size"])
        except (TypeError, ValueError):
            raise UsageError(f"modnet: ref_size must be an integer, not {opts['ref_size']!r}") from None
        if ref < 32:
            raise UsageError(f"modnet: ref_size must be >= 32, not {ref}")
        opts["ref_size"] = ref
        return opts

    def build_net(self):
        from .net import MODNet

        return MODNet(in_channels=3, hr_channels=32)

    def read_checkpoint(self, path):
        return convert.read_checkpoint(path)

    def convert(self, official):
        return convert.to_ours(official, self.net.state_dict().keys())

    def forward_images(self, images):
        """images: [B,3,H,W] float in [0,1] on self.device -> matte [B,1,H,W] float32 (official pipeline)."""
        import torch
        import torch.nn.functional as F

        h, w = images.shape[-2:]
        x = (images.float() - 0.5) / 0.5
        rh, rw = net_size(h, w, self.options["ref_size"])
        with torch.inference_mode():
            x = F.interpolate(x, size=(rh, rw), mode="area")
            matte = self.net(x.to(self.dtype), True)[2].float()
            return F.interpolate(matte, size=(h, w), mode="area")

    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None, background: np.ndarray | None = None,
                **extra: Any) -> MatteResult:
        import torch

        img = as_float_image(image)
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(self.device)
        matte = self.forward_images(x)
        return MatteResult(alpha=matte[0, 0].cpu().numpy())

    def predict_batch(self, images, trimaps=None, backgrounds=None, **extra) -> dict:
        dev = images.device
        return {"alpha": self.forward_images(images.to(self.device)).to(dev)}
