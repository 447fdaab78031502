"""GCA Matting backend: the official ``demo.py`` pipeline (Yaoyi-Li/GCA-Matting@5a999be), on tensors.

1. pad with ``np.pad(mode='reflect')`` semantics (mirror without repeating the edge): 32 px on top/left, up to the
   next multiple of 32 plus 32 px on bottom/right (done as an index gather, exact for any size);
2. RGB uint8 / 255 in float32, ImageNet mean/std; trimap classes on the padded uint8 trimap: < 85 bg, >= 170 fg,
   else unknown; one-hot [bg, unknown, fg];
3. alpha = (tanh + 1) / 2; alpha forced to 1 / 0 where the trimap class is fg / bg; crop.
The official script then writes ``(alpha * 255).astype(uint8)`` (truncation); we return the float alpha and put
that uint8 version in ``extras['alpha_u8']``.

Opt-in ``tile=N``: the pipeline on overlapping N x N crops (``tile_overlap`` px, linear blending) through
``layers.tiling.tiled_batch``. Attention is then local to each tile, so results differ from a full pass; memory
stays bounded.
"""
from __future__ import annotations

import numpy as np

from ..base import Prediction, TorchBackend
from .convert import GCAConverter

PAD = 32


def reflect_index(n: int, before: int, after: int) -> np.ndarray:
    """Source rows of ``np.pad(x, (before, after), mode='reflect')`` for an axis of length ``n``."""
    if n == 1:
        return np.zeros(before + n + after, np.int64)
    return np.pad(np.arange(n), (before, after), mode="reflect")


def padded_size(n: int) -> int:
    """Official target: the next multiple of 32 (the size itself when already one) plus 32 px each side."""
    return 32 * ((n - 1) // 32 + 1) + 2 * PAD


def pad_reflect(t, h: int, w: int):
    """[B,C,h,w] tensor -> [B,C,H',W'] padded as demo.py does (any dtype, on its device)."""
    import torch

    iy = torch.from_numpy(reflect_index(h, PAD, padded_size(h) - h - PAD)).to(t.device)
    ix = torch.from_numpy(reflect_index(w, PAD, padded_size(w) - w - PAD)).to(t.device)
    return t.index_select(-2, iy).index_select(-1, ix)


def trimap_classes(trimap_u8):
    """Official thresholds on uint8 grey levels (numpy array or tensor): < 85 -> 0, >= 170 -> 2, else 1."""
    out = trimap_u8 * 0 + 1
    out[trimap_u8 < 85] = 0
    out[trimap_u8 >= 170] = 2
    return out


class GCAAdapter(TorchBackend):
    converter = GCAConverter()
    runtime_parts = ()
    runtime_note = ("its guided contextual attention convolves the features with kernels cut from the features "
                    "themselves (data as convolution weights), which the ONNX exporter cannot express")

    def build_net(self, state_dict):
        from .net import GCANet

        return GCANet()

    def encode(self, batch):
        import torch.nn.functional as F

        from ..layers.normalize import normalize

        h, w = batch.size
        img = normalize(pad_reflect(batch.uint8_image(), h, w).float().div_(255.0))
        cls = trimap_classes(pad_reflect(batch.trimap, h, w)[:, 0]).long()
        onehot = F.one_hot(cls, num_classes=3).permute(0, 3, 1, 2).float()
        return (img.to(self.dtype), onehot.to(self.dtype)), cls[:, None]

    def forward(self, inputs):
        return self.net(*inputs)[0]

    def decode(self, alpha, batch, cls):
        h, w = batch.size
        alpha = alpha.float()
        alpha[cls == 2] = 1
        alpha[cls == 0] = 0
        alpha = alpha[..., PAD:PAD + h, PAD:PAD + w].contiguous()
        return Prediction(alpha=alpha, extras={"alpha_u8": self.alpha_u8(alpha)})

    @staticmethod
    def alpha_u8(alpha):
        """The official file's values: ``(alpha * 255).astype(uint8)`` (truncation)."""
        import torch

        return (alpha * 255).to(torch.uint8)

    def predict_batch(self, batch):
        tile = self.options["tile"]
        if not tile:
            return super().predict_batch(batch)
        import torch

        from ..layers.tiling import tiled_batch

        batch = batch.to(self.device)
        with torch.inference_mode():
            pred = tiled_batch(self._run, batch, tile, self.options["tile_overlap"])
        pred.extras["alpha_u8"] = self.alpha_u8(pred.alpha)
        return pred

    def _run(self, batch):
        inputs, ctx = self.encode(batch)
        return self.decode(self.forward(inputs), batch, ctx)
