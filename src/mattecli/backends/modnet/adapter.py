"""MODNet inference pipeline (demo/image_matting/colab/inference.py of ZHKKKe/MODNet).

Official, per image: ``ToTensor`` (uint8/255), ``Normalize(0.5, 0.5)`` -> [-1, 1]; if the long side is under
``ref_size`` or the short side over it, rescale so the short side is ``ref_size`` (long side ``int(...)``); both sides
floored to a multiple of 32; ``F.interpolate(mode='area')``; ``matte = modnet(im, True)[2]``; area-resize back.
The demo then saves ``(matte * 255).astype('uint8')``; we return the float matte.

Ours: sides are floored to a multiple of 32 but never below 32 (the official script builds an empty tensor for an
image whose short side is under 32 px and ``ref_size`` does not apply). Batches of equal-size frames run as one.
"""
from __future__ import annotations

from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import MODNetConverter


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
    converter = MODNetConverter()
    runtime_parts = (Part("net"),)

    def build_net(self, state_dict):
        from .net import MODNet

        return MODNet(in_channels=3, hr_channels=32)

    def encode(self, batch):
        import torch.nn.functional as F

        h, w = batch.size
        x = (batch.float_image() - 0.5) / 0.5
        x = F.interpolate(x, size=net_size(h, w, self.options["ref_size"]), mode="area")
        return (x.to(self.dtype), True), (h, w)

    def forward(self, inputs):
        return self.net(*inputs)[2]

    def decode(self, matte, batch, size):
        import torch.nn.functional as F

        return Prediction(alpha=F.interpolate(matte.float(), size=size, mode="area"))
