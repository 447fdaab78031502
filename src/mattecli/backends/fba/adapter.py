"""FBA Matting backend: the official ``demo.pred`` pipeline (MarcoForte/FBA_Matting@8dd100d), plus opt-in TTA.

Pipeline (official, reproduced exactly):
1. image RGB float64 = uint8 / 255; 2-channel trimap: ch0 = (trimap == 0), ch1 = (trimap == 255), other greys unknown.
2. both resized with cv2 INTER_LANCZOS4 to the next multiple of 8 (ringing is kept: not clipped, not re-binarised).
3. six distance-transform channels from the *resized* trimap, with numpy's float->uint8 wrap-around emulated.
4. ImageNet normalisation; network; (1,7,h8,w8) output.
5. back to the input size with cv2.resize whose 3rd positional argument is ``dst``: effectively INTER_LINEAR.
6. alpha forced on the known regions; F = image where alpha == 1, B = image where alpha == 0.

Opt-in extras: ``tta`` (8 dihedral views averaged, or 'flip'), ``tile=N`` / ``tile_overlap`` (the pipeline on
overlapping N x N crops, linear blending; bounded memory for very large images, slightly different results).
"""
from __future__ import annotations

import numpy as np

from ..base import MatteResult, TorchBackend, as_uint8_trimap
from ...errors import InputError, UsageError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def float_to_uint8_wrap(x: np.ndarray) -> np.ndarray:
    """numpy's ``x.astype(np.uint8)`` for out-of-range floats as on x86-64: truncate toward zero, keep the low
    8 bits (the authors' results were produced this way; made explicit so it is the same on every CPU)."""
    return (np.trunc(x).astype(np.int64) & 0xFF).astype(np.uint8)


def trimap_transform(trimap2: np.ndarray, L: int = 320, skip_empty: bool = False) -> np.ndarray:
    """Official ``trimap_transform``: (H,W,2) trimap -> (6,H,W) float32 Gaussians of the Euclidean distance to the
    definite background (channels 0-2) and foreground (3-5) for sigma = 0.02L, 0.08L, 0.16L.

    skip_empty: SIM's variant (``trimap_to_clks``) leaves a class's three channels at 0 when that class is absent.
    """
    import cv2

    out = np.zeros((6,) + trimap2.shape[:2], np.float32)
    for k in range(2):
        t = trimap2[:, :, k]
        if skip_empty and np.count_nonzero(t) == 0:
            continue
        u = float_to_uint8_wrap((1 - t) * 255)
        d = cv2.distanceTransform(u, cv2.DIST_L2, 0)
        dt_mask = -(d ** 2)
        for j, s in enumerate((0.02, 0.08, 0.16)):
            out[3 * k + j] = np.exp(dt_mask / (2 * ((s * L) ** 2)))
    return out


def _image_f64(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"image must be HxWx3 RGB, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a / 255.0
    if a.dtype == np.uint16:
        return a / 65535.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def two_channel_trimap(trimap_u8: np.ndarray) -> np.ndarray:
    t = trimap_u8 / 255.0
    out = np.zeros(t.shape + (2,))
    out[t == 1, 1] = 1
    out[t == 0, 0] = 1
    return out


class FBAAdapter(TorchBackend):
    def build_net(self):
        from .net import FBANet

        tta = self.options.get("tta", False)
        if tta not in (False, True, None, "flip", "d4", 0, 1):
            raise UsageError(f"model fba: tta must be True/False, 'flip' or 'd4', got {tta!r}")
        tile = self.options.get("tile")
        if tile is not None and int(tile) < 64:
            raise UsageError(f"model fba: tile must be at least 64 pixels, got {tile}")
        return FBANet()

    def convert(self, official):
        from .convert import to_ours

        return to_ours(official)

    def read_checkpoint(self, path):
        from .convert import read_checkpoint

        return read_checkpoint(path)

    def after_load(self):
        # the official demo calls model.eval() once after loading: layers_WS.Conv2d.train() standardises each WS
        # conv weight in place then. TorchBackend calls self.net.eval() right after this hook: that is the one call.
        pass

    # -- network on one prepared sample -----------------------------------------------------------------------
    def run_net(self, image_s: np.ndarray, trimap_s: np.ndarray) -> np.ndarray:
        """image_s (h8,w8,3) float64, trimap_s (h8,w8,2) float64 (already resized) -> (h8,w8,7) float32."""
        import torch

        dev, dt = self.device, self.dtype
        img = torch.from_numpy(image_s).permute(2, 0, 1)[None].float()
        tri = torch.from_numpy(trimap_s).permute(2, 0, 1)[None].float()
        tt = torch.from_numpy(trimap_transform(trimap_s))[None].float()
        mean = torch.from_numpy(IMAGENET_MEAN).float()[None, :, None, None]
        std = torch.from_numpy(IMAGENET_STD).float()[None, :, None, None]
        img_n = (img - mean) / std
        with torch.inference_mode():
            out = self.net(img.to(dev, dt), tri.to(dev, dt), img_n.to(dev, dt), tt.to(dev, dt))
        return out[0].float().cpu().numpy().transpose(1, 2, 0)

    def _predict_once(self, image_np: np.ndarray, trimap_np: np.ndarray):
        import cv2

        h, w = trimap_np.shape[:2]
        h1, w1 = int(np.ceil(h / 8) * 8), int(np.ceil(w / 8) * 8)
        image_s = cv2.resize(image_np, (w1, h1), interpolation=cv2.INTER_LANCZOS4)
        trimap_s = cv2.resize(trimap_np, (w1, h1), interpolation=cv2.INTER_LANCZOS4)
        out = self.run_net(image_s, trimap_s)
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        alpha, fg, bg = out[:, :, 0], out[:, :, 1:4], out[:, :, 4:7]
        alpha[trimap_np[:, :, 0] == 1] = 0
        alpha[trimap_np[:, :, 1] == 1] = 1
        fg[alpha == 1] = image_np[alpha == 1]
        bg[alpha == 0] = image_np[alpha == 0]
        return alpha, fg, bg

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        self.check_inputs(trimap, background)
        image_np = _image_f64(image)
        tri_u8 = as_uint8_trimap(trimap)
        self.check_trimap_size(image_np.shape, tri_u8.shape)
        trimap_np = two_channel_trimap(tri_u8)
        tta = self.options.get("tta", False)
        tile = self.options.get("tile")

        def run(im, tr):
            if not tta:
                return self._predict_once(im, tr)
            return self._predict_tta(im, tr, "flip" if tta == "flip" else "d4")

        if tile:
            from ..layers.tiling import tiled

            def fn(im, tr):
                if not ((tr[:, :, 0] == 0) & (tr[:, :, 1] == 0)).any():   # no unknown pixel: the trimap decides
                    a = tr[:, :, 1].astype(np.float32)
                    return {"alpha": a, "fg": im, "bg": im}  # image colours: exact where they matter
                a, f, b = run(im, tr)
                return {"alpha": a, "fg": f, "bg": b}

            out = tiled(fn, image_np, trimap_np, int(tile), int(self.options.get("tile_overlap") or 0))
            alpha, fg, bg = out["alpha"], out["fg"], out["bg"]
        else:
            alpha, fg, bg = run(image_np, trimap_np)
        return MatteResult(alpha=np.ascontiguousarray(alpha, np.float32),
                           foreground=np.ascontiguousarray(fg, np.float32),
                           background=np.ascontiguousarray(bg, np.float32),
                           extras={"tta": tta or False})

    def _predict_tta(self, image_np, trimap_np, mode: str):
        """Average of the official pipeline over the dihedral group (4 rotations x horizontal flip, 8 passes;
        'flip': identity + horizontal flip). Each pass is inverted before averaging; known regions stay exact."""
        views = [(k, f) for f in (False, True) for k in range(4)] if mode == "d4" else [(0, False), (0, True)]
        acc_a = acc_f = acc_b = None
        for k, flip in views:
            im, tr = image_np, trimap_np
            if flip:
                im, tr = im[:, ::-1], tr[:, ::-1]
            im, tr = np.ascontiguousarray(np.rot90(im, k)), np.ascontiguousarray(np.rot90(tr, k))
            a, f, b = self._predict_once(im, tr)
            a, f, b = np.rot90(a, -k), np.rot90(f, -k), np.rot90(b, -k)
            if flip:
                a, f, b = a[:, ::-1], f[:, ::-1], b[:, ::-1]
            if acc_a is None:
                acc_a, acc_f, acc_b = a.astype(np.float64), f.astype(np.float64), b.astype(np.float64)
            else:
                acc_a += a
                acc_f += f
                acc_b += b
        n = len(views)
        return (acc_a / n).astype(np.float32), (acc_f / n).astype(np.float32), (acc_b / n).astype(np.float32)
