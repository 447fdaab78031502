"""Context-Aware Matting: the demo's inference pipeline (``conmat/demo.py`` ``process_image`` + ``_process_batch``).

The image and trimap are pasted top-left into a canvas of the crop size (grey 127.5, trimap 0 = background), the
4-channel canvas (RGB + trimap, 0..255) is fed to both branches, alpha is forced to 0/1 where the canvas trimap is
0/255, and the result is cropped back. The colour model's foreground is ``clip(color * 255, 0, 255)`` cropped.

Options (official flag names): ``vis_patch_crop_size`` [h, w] (the graph's fixed crop; default None = the smallest
16k+1 per side that holds the image, as in the oracle) and ``vis_comp_crop_size`` (default None = the patch crop;
when it differs, the context image is the canvas resized like ``scipy.misc.imresize``: bytescale to uint8 with the
canvas's own min/max, PIL bilinear per channel). Opt-in extra: ``tile`` (0 = off) runs the network on overlapping
tiles of that size (see :meth:`CAMAdapter._tiled`), for very large images on small machines.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import InputError, UsageError
from ..base import MatteResult, TorchBackend


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


def _size_option(name: str, k: str, v):
    """[h, w], (h, w), "h,w" or "hxw" -> (h, w); None stays None."""
    if v is None:
        return None
    if isinstance(v, str):
        v = v.lower().replace("x", ",").split(",")
    try:
        h, w = (int(x) for x in v)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: option {k} must be HEIGHT,WIDTH (e.g. 2101,2101), got {v!r}") from None
    if h < 17 or w < 17:
        raise UsageError(f"{name}: option {k} must be at least 17,17, got {h},{w}")
    return (h, w)


class CAMAdapter(TorchBackend):
    color = False

    def build_net(self):
        from .net import CAMNet

        for k in ("vis_patch_crop_size", "vis_comp_crop_size"):
            self.options[k] = _size_option(self.entry.name, k, self.options.get(k))
        tile = self.options.get("tile") or 0
        if tile and (int(tile) < 65 or (int(tile) - 1) % 16):
            raise UsageError(f"{self.entry.name}: option tile must be 0 (off) or 16k+1 >= 65, got {tile!r}")
        self.color = "foreground" in self.entry.outputs
        return CAMNet(color=self.color)

    # -- weights ----------------------------------------------------------------------------------------------
    def load_weights(self, weights):
        from ...errors import ConverterError
        from .convert import TAG_DIRS, index_path

        if isinstance(weights, (str, os.PathLike)) and not os.path.isfile(os.fspath(weights)):
            tag = self.weights_set.tag if self.weights_set else "lap"
            idx = index_path(weights, tag)
            if idx is not None:
                weights = idx
            elif os.path.isdir(os.fspath(weights)):
                raise ConverterError(
                    f"{os.fspath(weights)}: no model.ckpt.index here (nor in {TAG_DIRS.get(tag, tag)}/): pass the "
                    "folder holding model.ckpt.index and model.ckpt.data-00000-of-00001, the .index file, or "
                    "the authors' model.tgz", path=os.fspath(weights))
        super().load_weights(weights)

    def read_checkpoint(self, path):
        from .convert import read_checkpoint

        return read_checkpoint(path, self.weights_set.tag if self.weights_set else "lap")

    def convert(self, official):
        from .convert import to_ours

        return to_ours(official, color=self.color)

    @staticmethod
    def convert_file(path, entry=None, wset=None):
        from .convert import convert_file

        return convert_file(path, entry=entry, wset=wset)

    # -- inference --------------------------------------------------------------------------------------------
    def _forward(self, comp: np.ndarray, patch: np.ndarray) -> dict:
        """NHWC float32 canvases (0..255) -> dict of HxW(xC) float32 numpy outputs."""
        import torch

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).to(self.device, self.dtype)

        with torch.no_grad():
            out = self.net(t(comp), t(patch))
        res = {"alpha": out["alpha"][0, 0].float().cpu().numpy(), "mat_logits": out["mat_logits"][0, 0].float().cpu().numpy()}
        if "color" in out:
            res["color"] = out["color"][0].permute(1, 2, 0).float().cpu().numpy()
        return res

    def canvases(self, img: np.ndarray, tri: np.ndarray):
        h, w = tri.shape
        psize = self.options.get("vis_patch_crop_size")
        psize = (auto_crop(h), auto_crop(w)) if psize is None else psize
        if h > psize[0] or w > psize[1]:
            raise InputError(f"image {w}x{h} is larger than vis_patch_crop_size {psize[1]}x{psize[0]} (height, "
                             "width); pass a larger crop size or leave it unset")
        csize = self.options.get("vis_comp_crop_size")
        csize = psize if csize is None else csize
        patch = np.full((1, psize[0], psize[1], 4), 127.5, np.float32)
        patch[..., 3] = 0
        patch[0, :h, :w, :3] = img
        patch[0, :h, :w, 3] = tri
        comp = patch if csize == psize else imresize_like_scipy(patch[0], csize)[None].astype(np.float32)
        return comp, patch

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        img, tri = self.uint8_image_and_trimap(image, trimap)
        h, w = tri.shape
        tile = int(self.options.get("tile") or 0)
        if tile and (h > tile or w > tile):
            out = self._tiled(img, tri, tile)
        else:
            comp, patch = self.canvases(img, tri)
            out = self._forward(comp, patch)
            out = {k: v[:h, :w] for k, v in out.items()}
        alpha = out["alpha"].copy()
        alpha[tri == 0] = 0.0
        alpha[tri == 255] = 1.0
        fg = None
        extras = {"raw_alpha": out["alpha"], "mat_logits": out["mat_logits"]}
        if "color" in out:
            fg = np.clip(out["color"], 0.0, 1.0).astype(np.float32)
            extras["raw_color"] = out["color"]
        return MatteResult(alpha=np.clip(alpha, 0, 1).astype(np.float32), foreground=fg, extras=extras)

    def _tiled(self, img, tri, tile: int, overlap: int | None = None) -> dict:
        """Opt-in tiling: overlapping tile x tile windows (overlap = tile // 4), each run through the full pipeline
        (context branch sees the tile only), blended with linear ramps in the overlaps. Not the authors' method."""
        h, w = tri.shape
        ov = tile // 4 if overlap is None else overlap
        step = tile - ov
        ys = list(range(0, max(h - tile, 0) + 1, step))
        xs = list(range(0, max(w - tile, 0) + 1, step))
        if ys[-1] + tile < h:
            ys.append(h - tile)
        if xs[-1] + tile < w:
            xs.append(w - tile)
        acc: dict = {}
        wsum = np.zeros((h, w), np.float32)
        saved = self.options.get("vis_patch_crop_size"), self.options.get("vis_comp_crop_size")
        self.options["vis_patch_crop_size"] = self.options["vis_comp_crop_size"] = None
        try:
            for y in ys:
                for x in xs:
                    ti, tt = img[y:y + tile, x:x + tile], tri[y:y + tile, x:x + tile]
                    th, tw = tt.shape
                    if not ((tt != 0) & (tt != 255)).any():
                        continue
                    comp, patch = self.canvases(ti, tt)
                    out = self._forward(comp, patch)
                    wy = _ramp(th, ov, y > 0, y + th < h)
                    wx = _ramp(tw, ov, x > 0, x + tw < w)
                    wgt = wy[:, None] * wx[None, :]
                    for k, v in out.items():
                        v = v[:th, :tw]
                        if k not in acc:
                            acc[k] = np.zeros((h, w) + v.shape[2:], np.float32)
                        acc[k][y:y + th, x:x + tw] += v * (wgt[..., None] if v.ndim == 3 else wgt)
                    wsum[y:y + th, x:x + tw] += wgt
        finally:
            self.options["vis_patch_crop_size"], self.options["vis_comp_crop_size"] = saved
        safe = np.maximum(wsum, 1e-8)
        out = {}
        for k, v in acc.items():
            out[k] = v / (safe[..., None] if v.ndim == 3 else safe)
        if "color" in out:  # tiles without unknown pixels were skipped: their colour is the image's
            out["color"][wsum == 0] = img[wsum == 0].astype(np.float32) / 255.0
        if not out:  # no unknown pixels anywhere
            out = {"alpha": np.zeros((h, w), np.float32), "mat_logits": np.zeros((h, w), np.float32)}
            if self.color:
                out["color"] = img.astype(np.float32) / 255.0
        return out


def _ramp(n: int, ov: int, lead: bool, trail: bool) -> np.ndarray:
    r = np.ones(n, np.float32)
    if ov > 0:
        ramp = (np.arange(ov, dtype=np.float32) + 0.5) / ov
        if lead:
            r[:ov] = np.minimum(r[:ov], ramp)
        if trail:
            r[n - ov:] = np.minimum(r[n - ov:], ramp[::-1])
    return r
