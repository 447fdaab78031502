"""FBA Matting backend: the official ``demo.pred`` pipeline (MarcoForte/FBA_Matting@8dd100d), plus opt-in TTA and
tiling.

Pipeline (official, reproduced exactly):
1. image RGB float64 = uint8 / 255; 2-channel trimap: ch0 = (trimap == 0), ch1 = (trimap == 255).
2. both resized with cv2 INTER_LANCZOS4 in float64 to the next multiple of 8 (ringing is kept: not clipped, not
   re-binarised); cv2 copies when the size is already a multiple of 8, so that case skips the resize.
3. six distance-transform channels from the *resized* trimap, with numpy's float->uint8 wrap-around emulated.
4. ``.float()``, ImageNet normalisation in float32; network; (B,7,h8,w8) output.
5. back to the input size with cv2.resize whose 3rd positional argument is ``dst``: effectively INTER_LINEAR.
6. alpha forced on the known regions; F = image where alpha == 1, B = image where alpha == 0.
Steps 2, 3 and 5 are cv2 operations torch cannot reproduce bit for bit: they run on the host, per item; the rest
runs on the batch's device.

Opt-in extras: ``tta`` (true/d4: the 8 dihedral views of the batch, each through the pipeline, inverted and
averaged; flip: identity + horizontal flip), ``tile=N`` / ``tile_overlap`` (the pipeline, TTA included, on
overlapping N x N crops with linear blending: bounded memory for very large images, slightly different results).
"""
from __future__ import annotations

import numpy as np

from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import FBAConverter
from .trimap_channels import trimap_transform

D4 = tuple((k, flip) for flip in (False, True) for k in range(4))
FLIP = ((0, False), (0, True))


def multiple_of_8(n: int) -> int:
    return -(-n // 8) * 8


def _hwc(t) -> np.ndarray:
    return np.ascontiguousarray(t.permute(1, 2, 0).cpu().numpy())


def _resize_each(t, size_hw: tuple, interpolation):
    """cv2.resize of every item of a [B,C,H,W] tensor (on the host, in its dtype) -> tensor on the same device."""
    import cv2
    import torch

    h, w = size_hw
    out = []
    for item in t:
        r = cv2.resize(_hwc(item), (w, h), interpolation=interpolation)
        if r.ndim == 2:
            r = r[:, :, None]
        out.append(torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1))))
    return torch.stack(out).to(t.device)


def view(t, k: int, flip: bool):
    """One dihedral view of a [..., H, W] tensor: horizontal flip, then ``k`` quarter turns (np.rot90's sense)."""
    import torch

    if flip:
        t = t.flip(-1)
    return torch.rot90(t, k, dims=(-2, -1)) if k else t


def unview(t, k: int, flip: bool):
    import torch

    if k:
        t = torch.rot90(t, -k, dims=(-2, -1))
    return t.flip(-1) if flip else t


class FBAAdapter(TorchBackend):
    """``eval()`` after the strict load standardises every WS conv weight once (``layers.ws_conv.WSConv2d``), as the
    official demo's one ``model.eval()`` does; ``TorchBackend`` makes exactly that one call."""

    converter = FBAConverter()
    runtime_parts = (Part("net"),)

    def build_net(self, state_dict):
        from .net import FBANet

        return FBANet()

    # -- official pipeline ----------------------------------------------------------------------------------------
    def encode(self, batch):
        import cv2
        import torch

        from ..layers.normalize import normalize

        h, w = batch.size
        size8 = multiple_of_8(h), multiple_of_8(w)
        image64 = batch.float_image(torch.float64)
        two = torch.cat([batch.trimap == 0, batch.trimap == 255], 1).to(torch.float64)
        if size8 != (h, w):
            image_s = _resize_each(image64, size8, cv2.INTER_LANCZOS4)
            two_s = _resize_each(two, size8, cv2.INTER_LANCZOS4)
        else:
            image_s, two_s = image64, two
        tt = torch.stack([torch.from_numpy(trimap_transform(_hwc(t))) for t in two_s]).to(batch.device)
        img, tri = image_s.float(), two_s.float()
        inputs = tuple(x.to(self.dtype) for x in (img, tri, normalize(img), tt))
        return inputs, image64.float()

    def decode(self, out, batch, image):
        import cv2
        import torch

        h, w = batch.size
        out = out.float()
        if tuple(out.shape[-2:]) != (h, w):
            out = _resize_each(out, (h, w), cv2.INTER_LINEAR)
        alpha, fg, bg = out[:, 0:1].clone(), out[:, 1:4], out[:, 4:7]
        alpha[batch.trimap == 0] = 0
        alpha[batch.trimap == 255] = 1
        fg = torch.where(alpha == 1, image, fg)
        bg = torch.where(alpha == 0, image, bg)
        return Prediction(alpha=alpha, foreground=fg, background=bg)

    # -- opt-in extras --------------------------------------------------------------------------------------------
    def predict_batch(self, batch):
        import torch

        tta, tile = self.options["tta"], self.options["tile"]
        batch = batch.to(self.device)
        with torch.inference_mode():
            if tile:
                from ..layers.tiling import tiled_batch

                pred = tiled_batch(self._views, batch, tile, self.options["tile_overlap"])
            else:
                pred = self._views(batch)
        pred.extras["tta"] = tta
        return pred

    def _run(self, batch) -> Prediction:
        inputs, ctx = self.encode(batch)
        return self.decode(self.forward(inputs), batch, ctx)

    def _views(self, batch) -> Prediction:
        """The pipeline on the TTA views of ``batch`` (one view without TTA), inverted and averaged in float64.
        Known regions stay exact: every view forces them."""
        tta = self.options["tta"]
        if not tta:
            return self._run(batch)
        views = FLIP if tta == "flip" else D4
        acc = None
        for k, flip in views:
            p = self._run(batch.map(lambda t: view(t, k, flip)))
            parts = [unview(x, k, flip).double() for x in (p.alpha, p.foreground, p.background)]
            acc = parts if acc is None else [a + b for a, b in zip(acc, parts)]
        a, f, b = (x.div(len(views)).float() for x in acc)
        return Prediction(alpha=a, foreground=f, background=b)
