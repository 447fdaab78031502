"""Deep Image Matting: the two ports' own inference pipelines.

``dim`` / ``dim.huochaitiantang`` (core/demo.py + core/deploy.py ``inference_img_whole``): resize image and trimap DOWN to
multiples of 32 (``min(max_size, h - h % 32)``, cv2 bilinear on uint8), ImageNet normalisation, trimap/255, network,
bilinear resize back, known trimap regions forced to 0/1. ``crop_or_resize="resize"`` (fixed ``size_h`` x ``size_w``)
and ``"crop"`` (non-overlapping ``size_h`` x ``size_w`` tiles) are the deploy.py alternatives.

``dim.foamliu`` (eval.py / test.py): the network at the original size, no resize or padding.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, UsageError
from ..base import MatteResult, TorchBackend

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _inputs(image_u8: np.ndarray, trimap_u8: np.ndarray, device, dtype):
    """ToTensor + Normalize(ImageNet) on the RGB image, trimap / 255 -> [1,4,H,W] (float32 maths, then dtype)."""
    import torch

    img = torch.from_numpy(np.ascontiguousarray(image_u8)).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(_STD, dtype=torch.float32)[:, None, None]
    img = img.sub(mean).div(std)
    tri = torch.from_numpy(trimap_u8.astype(np.float32))[None] / 255.0
    return torch.cat([img, tri], 0)[None].to(device=device, dtype=dtype)


class _DIMBase(TorchBackend):
    def _prepare(self, image, trimap):
        return self.uint8_image_and_trimap(image, trimap)

    def _run(self, img_u8, tri_u8) -> np.ndarray:
        import torch

        x = _inputs(img_u8, tri_u8, self.device, self.dtype)
        with torch.no_grad():
            out = self.net(x)
        return out.float().reshape(out.shape[-2], out.shape[-1]).cpu().numpy()

    @staticmethod
    def _clamp_known(pred: np.ndarray, tri_u8: np.ndarray) -> np.ndarray:
        pred = pred.astype(np.float32, copy=True)
        pred[tri_u8 == 255] = 1.0
        pred[tri_u8 == 0] = 0.0
        return np.clip(pred, 0.0, 1.0)


class DIMAdapter(_DIMBase):
    """huochaitiantang/pytorch-deep-image-matting, VGG-16 + skip, stage 1."""

    def build_net(self):
        from .net import DIMVGG16

        mode = self.options.get("crop_or_resize", "whole")
        if mode not in ("whole", "resize", "crop"):
            raise UsageError(f"dim: crop_or_resize must be whole, resize or crop, not {mode!r}")
        for k in ("max_size", "size_h", "size_w"):
            v = self.options.get(k)
            if not isinstance(v, int) or v < 32 or v % 32:
                raise UsageError(f"dim: option {k} must be a positive multiple of 32, got {v!r}")
        return DIMVGG16()

    def read_checkpoint(self, path):
        from .convert import read_checkpoint

        return read_checkpoint(path)

    def convert(self, official):
        from .convert import to_ours

        return to_ours(official)

    @staticmethod
    def convert_file(path):
        from .convert import convert_file

        return convert_file(path)

    def _whole(self, img, tri):
        import cv2

        h, w = tri.shape
        max_size = int(self.options["max_size"])
        new_h, new_w = min(max_size, h - h % 32), min(max_size, w - w % 32)
        if new_h == 0 or new_w == 0:
            raise InputError(f"dim needs images of at least 32x32 pixels (got {w}x{h}); upscale the image first")
        s_img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        s_tri = cv2.resize(tri, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        pred = self._run(s_img, s_tri)
        return cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR)

    def _resize(self, img, tri):
        import cv2

        h, w = tri.shape
        sh, sw = int(self.options["size_h"]), int(self.options["size_w"])
        pred = self._run(cv2.resize(img, (sw, sh), interpolation=cv2.INTER_LINEAR),
                         cv2.resize(tri, (sw, sh), interpolation=cv2.INTER_LINEAR))
        return cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR)

    def _crop(self, img, tri):
        import cv2

        h, w = tri.shape
        sh, sw = int(self.options["size_h"]), int(self.options["size_w"])
        acc = np.zeros((h, w), np.float32)
        marks = np.zeros((h, w), np.float32)
        for y in range(0, h, sh):
            for x in range(0, w, sw):
                c_img, c_tri = img[y:y + sh, x:x + sw], tri[y:y + sh, x:x + sw]
                ch, cw = c_tri.shape
                if not (c_tri == 128).any():
                    continue
                if (ch, cw) != (sh, sw):
                    c_img = cv2.resize(c_img, (sw, sh), interpolation=cv2.INTER_LINEAR)
                    c_tri = cv2.resize(c_tri, (sw, sh), interpolation=cv2.INTER_LINEAR)
                p = self._run(c_img, c_tri)
                if (ch, cw) != (sh, sw):
                    p = cv2.resize(p, (cw, ch), interpolation=cv2.INTER_LINEAR)
                acc[y:y + sh, x:x + sw] += p
                marks[y:y + sh, x:x + sw] += 1
        marks[marks <= 0] = 1.0
        return acc / marks

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        img, tri = self._prepare(image, trimap)
        mode = self.options.get("crop_or_resize", "whole")
        pred = {"whole": self._whole, "resize": self._resize, "crop": self._crop}[mode](img, tri)
        return MatteResult(alpha=self._clamp_known(pred, tri), extras={"raw_alpha": pred})


class DIMFoamliuAdapter(_DIMBase):
    """foamliu/Deep-Image-Matting-PyTorch DIMModel (SegNet-style)."""

    def build_net(self):
        from .net import DIMSegNet

        return DIMSegNet()

    def read_checkpoint(self, path):
        from .convert import read_checkpoint_foamliu

        return read_checkpoint_foamliu(path)

    def convert(self, official):
        from .convert import to_ours_foamliu

        return to_ours_foamliu(official)

    @staticmethod
    def convert_file(path):
        from .convert import convert_file_foamliu

        return convert_file_foamliu(path)

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        img, tri = self._prepare(image, trimap)
        pred = self._run(img, tri)
        return MatteResult(alpha=self._clamp_known(pred, tri), extras={"raw_alpha": pred})
