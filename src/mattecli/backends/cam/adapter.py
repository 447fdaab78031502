"""Context-Aware Matting: the demo's inference pipeline (``conmat/demo.py`` ``process_image`` + ``_process_batch``).

The image and trimap are pasted top-left into a canvas of the crop size (grey 127.5, trimap 0 = background), the
4-channel canvas (RGB + trimap, 0..255) is fed to both branches, alpha is forced to 0/1 where the canvas trimap is
0/255, and the result is cropped back. The colour model's foreground is the colour output clipped to [0, 1] and
cropped (the demo writes ``clip(color * 255, 0, 255)``).

Options (official flag names): ``vis_patch_crop_size`` "H,W" (the graph's fixed crop; default None = the smallest
16k+1 per side that holds the image, as in the oracle) and ``vis_comp_crop_size`` (default None = the patch crop;
when it differs, the context image is the canvas resized like ``scipy.misc.imresize``: bytescale to uint8 with the
canvas's own min/max, PIL bilinear per channel, on the host for each image). Opt-in extra: ``tile`` (0 = off) runs
the pipeline on overlapping tiles of that size (16k+1, overlap tile // 4, blended by ``layers.tiling``), for very
large images on small machines; not the authors' method.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import ConverterError, InputError, UsageError
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from .convert import TAG_DIRS, CAMConverter, index_path, tag_of


def auto_crop(n: int) -> int:
    """Smallest 16k+1 >= n."""
    return max(17, ((n - 1 + 15) // 16) * 16 + 1)


def imresize_like_scipy(arr: np.ndarray, size) -> np.ndarray:
    """``scipy.misc.imresize(arr, size)`` for a float HxWx4 array: bytescale, then PIL bilinear per channel."""
    from PIL import Image

    a = np.asarray(arr, dtype=np.float64)
    cmin, cmax = a.min(), a.max()
    scale = 255.0 / ((cmax - cmin) or 1.0)
    u8 = (((a - cmin) * scale).clip(0, 255) + 0.5).astype(np.uint8)
    h, w = int(size[0]), int(size[1])
    bands = [np.asarray(Image.fromarray(u8[..., c]).resize((w, h), Image.BILINEAR)) for c in range(u8.shape[2])]
    return np.stack(bands, -1)


def crop_size(name: str, key: str, value):
    """The option's "H,W" (or "HxW") text -> (h, w) ints >= 17; None stays None. UsageError otherwise."""
    if value is None:
        return None
    parts = value.lower().replace("x", ",").split(",") if isinstance(value, str) else value
    try:
        h, w = (int(x) for x in parts)
    except (TypeError, ValueError):
        raise UsageError(f"model {name}: --option {key}={value}: must be HEIGHT,WIDTH (e.g. 2101,2101)") from None
    if h < 17 or w < 17:
        raise UsageError(f"model {name}: --option {key}={value}: must be at least 17,17")
    return (h, w)


def check_tile(name: str, tile: int) -> None:
    if tile and (tile < 65 or (tile - 1) % 16):
        raise UsageError(f"model {name}: --option tile={tile}: must be 0 (off) or 16k+1 >= 65 (65, 81, 97, ...)")


class CAMAdapter(TorchBackend):
    converter = CAMConverter()
    #: tolerance 1e-2: the network amplifies float32 rounding (with the synthetic test weights torch fp32 itself is
    #: off fp64 by more than 2e-3 on 1 % of the alpha values; onnxruntime on 0.5 %)
    runtime_parts = (Part("net", tolerance=1e-2),)

    @property
    def color(self) -> bool:
        return "foreground" in self.entry.outputs

    # -- options and weights ---------------------------------------------------------------------------------
    def check_options(self) -> None:
        """The checks an Option cannot express; at construction, before the weights and any image."""
        for k in ("vis_patch_crop_size", "vis_comp_crop_size"):
            crop_size(self.entry.name, k, self.options[k])
        check_tile(self.entry.name, self.options["tile"])

    def load_state_dict(self, weights):
        self.check_options()
        if isinstance(weights, (str, os.PathLike)) and not os.path.isfile(os.fspath(weights)):
            tag = tag_of(self.spec)
            idx = index_path(weights, tag)
            if idx is not None:   # a model/ folder, a checkpoint folder or a model.ckpt prefix
                weights = idx
            elif os.path.isdir(os.fspath(weights)):
                raise ConverterError(
                    f"{os.fspath(weights)}: no model.ckpt.index here (nor in {TAG_DIRS.get(tag, tag)}/): pass the "
                    "folder holding model.ckpt.index and model.ckpt.data-00000-of-00001, the .index file, or "
                    "the authors' model.tgz", path=os.fspath(weights))
        return super().load_state_dict(weights)

    def build_net(self, state_dict):
        from .net import CAMNet

        return CAMNet(color=self.color)

    # -- pipeline --------------------------------------------------------------------------------------------
    def crop_sizes(self, h: int, w: int) -> tuple:
        """(patch crop, comp crop) for an h x w image under the options."""
        name = self.entry.name
        psize = crop_size(name, "vis_patch_crop_size", self.options["vis_patch_crop_size"])
        psize = (auto_crop(h), auto_crop(w)) if psize is None else psize
        if h > psize[0] or w > psize[1]:
            raise InputError(f"image {w}x{h} is larger than vis_patch_crop_size {psize[1]}x{psize[0]} (height, "
                             "width); pass a larger crop size or leave it unset")
        csize = crop_size(name, "vis_comp_crop_size", self.options["vis_comp_crop_size"])
        return psize, (psize if csize is None else csize)

    def canvases(self, batch, psize, csize):
        """(comp, patch) float32 [B,4,*crop] canvases, 0..255, on the batch's device (``process_image``)."""
        import torch

        h, w = batch.size
        patch = torch.full((batch.n, 4) + tuple(psize), 127.5, dtype=torch.float32, device=batch.device)
        patch[:, 3] = 0.0
        patch[:, :3, :h, :w] = batch.uint8_image().float()
        patch[:, 3:, :h, :w] = batch.trimap.float()
        if tuple(csize) == tuple(psize):
            return patch, patch
        comp = [torch.from_numpy(imresize_like_scipy(p.permute(1, 2, 0).cpu().numpy(), csize)) for p in patch]
        return torch.stack(comp).permute(0, 3, 1, 2).to(patch.device, torch.float32), patch

    def encode(self, batch, crops=None):
        """-> ((comp, patch), (h, w)); ``crops`` = (patch crop, comp crop) overrides the options (tiles)."""
        self.check_inputs(batch.trimap, None)
        psize, csize = crops or self.crop_sizes(*batch.size)
        comp, patch = self.canvases(batch, psize, csize)
        return (comp.to(self.dtype), patch.to(self.dtype)), batch.size

    def decode(self, out, batch, size):
        h, w = size
        raw = out["alpha"][..., :h, :w].float()
        tri = batch.trimap
        alpha = raw.masked_fill(tri == 0, 0.0).masked_fill(tri == 255, 1.0).clamp_(0.0, 1.0)
        extras = {"raw_alpha": raw, "mat_logits": out["mat_logits"][..., :h, :w].float()}
        fg = None
        if "color" in out:
            extras["raw_color"] = out["color"][..., :h, :w].float()
            fg = extras["raw_color"].clamp(0.0, 1.0)
        return Prediction(alpha=alpha, foreground=fg, extras=extras)

    def predict_batch(self, batch):
        h, w = batch.size
        tile = self.options["tile"]
        if not tile or (h <= tile and w <= tile):
            return super().predict_batch(batch)
        import torch

        from ..layers.tiling import tiled_batch

        def run(sub):   # each tile through the whole pipeline, its canvas the smallest 16k+1 that holds it
            sh, sw = sub.size
            crop = (auto_crop(sh), auto_crop(sw))
            inputs, ctx = self.encode(sub, (crop, crop))
            return self.decode(self.forward(inputs), sub, ctx)

        batch = batch.to(self.device)
        with torch.inference_mode():
            p = tiled_batch(run, batch, tile, tile // 4)
        return Prediction(alpha=p.alpha, foreground=p.foreground if self.color else None)
