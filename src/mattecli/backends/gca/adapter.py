"""GCA Matting backend: the official ``demo.py`` pipeline (Yaoyi-Li/GCA-Matting@5a999be).

1. pad with ``np.pad(mode='reflect')``: 32 px on top/left, up to the next multiple of 32 plus 32 px on bottom/right;
2. RGB / 255, ImageNet mean/std; trimap classes on the padded uint8 trimap: < 85 bg, >= 170 fg, else unknown;
   one-hot [bg, unknown, fg];
3. alpha = (tanh + 1) / 2; alpha forced to 1 / 0 where the trimap class is fg / bg; crop.
The official script then writes ``(alpha * 255).astype(uint8)`` (truncation); ``predict`` returns the float alpha
and puts that uint8 version in ``extras['alpha_u8']``.

Opt-in ``tile=N``: run the pipeline on overlapping N x N crops (``tile_overlap`` px, linear blending). Attention is
then local to each tile, so results differ from a full pass (see docs); memory stays bounded.
"""
from __future__ import annotations

import numpy as np

from ..base import MatteResult, TorchBackend
from ...errors import UsageError

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def pad_reflect(image_u8: np.ndarray, trimap_u8: np.ndarray):
    h, w = trimap_u8.shape
    th, tw = 32 * ((h - 1) // 32 + 1), 32 * ((w - 1) // 32 + 1)
    pads = ((32, th - h + 32), (32, tw - w + 32))
    return np.pad(image_u8, pads + ((0, 0),), mode="reflect"), np.pad(trimap_u8, pads, mode="reflect")


def trimap_classes(trimap_u8: np.ndarray) -> np.ndarray:
    t = trimap_u8.copy()
    t[t < 85] = 0
    t[t >= 170] = 2
    t[t >= 85] = 1
    return t


class GCAAdapter(TorchBackend):
    def build_net(self):
        from .net import GCANet

        tile = self.options.get("tile")
        if tile is not None and (int(tile) < 64):
            raise UsageError(f"model gca: tile must be at least 64 pixels, got {tile}")
        return GCANet()

    def convert(self, official):
        from .convert import to_ours

        return to_ours(official)

    def read_checkpoint(self, path):
        from .convert import read_checkpoint

        return read_checkpoint(path)

    def prepare(self, image_u8: np.ndarray, trimap_u8: np.ndarray):
        import torch

        img_p, tri_p = pad_reflect(image_u8, trimap_u8)
        img = torch.from_numpy(np.ascontiguousarray(img_p.transpose(2, 0, 1)).astype(np.float32) / 255.0)
        img = (img - torch.from_numpy(MEAN).view(3, 1, 1)) / torch.from_numpy(STD).view(3, 1, 1)
        cls = torch.from_numpy(trimap_classes(tri_p)).long()
        onehot = torch.nn.functional.one_hot(cls, num_classes=3).permute(2, 0, 1).float()
        return img[None], onehot[None]

    def _alpha(self, image_u8: np.ndarray, trimap_u8: np.ndarray) -> np.ndarray:
        import torch

        h, w = trimap_u8.shape
        img, tri = self.prepare(image_u8, trimap_u8)
        with torch.inference_mode():
            alpha, _ = self.net(img.to(self.device, self.dtype), tri.to(self.device, self.dtype))
            alpha = alpha.float()
            am = tri.argmax(dim=1, keepdim=True).to(alpha.device)
            alpha[am == 2] = 1
            alpha[am == 0] = 0
        return alpha[0, 0].cpu().numpy()[32:h + 32, 32:w + 32]

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        img, tri = self.uint8_image_and_trimap(image, trimap)
        tile = self.options.get("tile")
        if tile:
            from ..layers.tiling import tiled

            def fn(i, t):
                cls = trimap_classes(t)
                if not (cls == 1).any():
                    return {"alpha": (cls == 2).astype(np.float32)}
                return {"alpha": self._alpha(i, t)}

            alpha = tiled(fn, img, tri, int(tile), int(self.options.get("tile_overlap") or 0))["alpha"]
        else:
            alpha = self._alpha(img, tri)
        alpha = np.ascontiguousarray(alpha, np.float32)
        return MatteResult(alpha=alpha, extras={"alpha_u8": (alpha * 255).astype(np.uint8)})
