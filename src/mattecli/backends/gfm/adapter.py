"""GFM inference pipeline as ``core/test.py`` (``test_samples`` + ``inference_img_gfm``) runs it.

0. If the short side exceeds ``shorter_path_limitation`` (1080), the image is first resized with cv2 INTER_LINEAR so
   the short side is 1080 and the long side ``int(1080 * long / short)``; the official script then writes the alpha
   at that reduced size, ``predict`` resizes it back to the input size (our addition, bilinear).
1. A pass at ratio r: ``new = min(max_size, int(side*r) - int(side*r) % 32)`` per side, the image resized with
   scikit-image's ``resize`` (reproduced in :func:`sk_resize` with SciPy: Gaussian anti-aliasing when shrinking, then
   ``ndimage.zoom(order=1, grid_mode=True, mode='mirror')``, clipped to the input range) and multiplied by 255: the
   network sees RGB in 0..255, not normalised. Sides under 32 px after flooring are raised to 32 (the official code
   would crash on them).
2. Glance -> argmax over channels of the sigmoid maps -> uint8 trimap (TT: 0/128/255; FT/BT: 0/255), resized to the
   image size (uint8 -> [0,1] float, bilinear) times 255; focus and fused maps resized as floats.
3. ``test_choice='HYBRID'`` (default): glance from a 1/3 pass, focus from a 1/2 pass; TT fusion takes the glance
   value where it is exactly 0 or 255 and the focus elsewhere (so the interpolated ring around hard regions takes
   the focus value); BT ``glance/255 - focus`` floored at 0; FT ``glance/255 + focus`` capped at 1.
   ``'RESIZE'``: one 1/2 pass, the network's own fusion resized. RIM: one ``h/3`` pass, the TT/FT/BT/RIM fusions
   resized; ``pred_choice`` picks one (4 = RIM, default).
``MatteResult.alpha`` is the chosen map clipped to [0,1] (the official script writes ``(x*255).astype(uint8)``);
``extras`` carries the glance map (0..255), the focus map and the raw fused maps.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, UsageError
from ..base import MatteResult, TorchBackend
from . import convert


def sk_resize(image: np.ndarray, output_hw) -> np.ndarray:
    """``skimage.transform.resize(image, output_hw)`` with its defaults (scikit-image >= 0.19), via SciPy.

    uint8 -> float64 ``x * (1/255)``; float32 stays float32, float64 stays float64. Anti-aliasing (Gaussian,
    sigma = max(0, (in/out - 1)/2) per axis, mode 'mirror', truncate 4) when any axis shrinks; then bilinear zoom with
    half-pixel centres and mirror edges; clipped to the input's value range.
    """
    from scipy import ndimage as ndi

    a = np.asarray(image)
    if a.dtype == np.uint8:
        x = np.multiply(a, 1.0 / 255.0, dtype=np.float64)
    elif a.dtype == np.float16:
        x = a.astype(np.float32)
    elif a.dtype in (np.float32, np.float64):
        x = a
    else:
        x = a.astype(np.float64)
    out_shape = tuple(int(s) for s in output_hw) + tuple(x.shape[2:])
    lo, hi = x.min(), x.max()
    factors = np.divide(x.shape, out_shape)
    if any(o < i for o, i in zip(out_shape, x.shape)):
        sigma = np.maximum(0, (factors - 1) / 2)
        x = ndi.gaussian_filter(x, sigma, cval=0, mode="mirror")
    zoom = [1 / f for f in factors]
    out = ndi.zoom(x, zoom, order=1, mode="mirror", cval=0, grid_mode=True)
    np.clip(out, lo, hi, out=out)
    return out


def scaled_size(h: int, w: int, max_size: int = 1600, ratio: float | None = None, div: int | None = None) -> tuple:
    """``min(max_size, s - s % 32)`` per side with ``s = int(side * ratio)`` (HYBRID) or ``int(side / div)`` (RESIZE,
    RIM), as the official code computes them; at least 32."""
    out = []
    for side in (h, w):
        s = int(side * ratio) if div is None else int(side / div)
        out.append(max(32, min(max_size, s - s % 32)))
    return tuple(out)


class GFMAdapter(TorchBackend):
    def build_net(self):
        from .net import GFM

        tag = self.weights_set.tag if self.weights_set is not None else "r34-tt"
        self.backbone, self.rosta = convert.variant_of_tag(tag)
        choice = str(self.options.get("test_choice") or "HYBRID").upper()
        if choice not in ("HYBRID", "RESIZE"):
            raise UsageError(f"{self.entry.name}: test_choice must be 'HYBRID' or 'RESIZE', got {choice!r}")
        self.test_choice = choice
        pred = self.options.get("pred_choice")
        pred = (4 if self.rosta == "RIM" else 3) if pred is None else int(pred)
        if pred not in ((1, 2, 3, 4) if self.rosta == "RIM" else (1, 2, 3)):
            raise UsageError(f"{self.entry.name}: pred_choice must be 1 (glance), 2 (focus) or 3 (fusion)"
                             f"{'; RIM: 1 TT, 2 FT, 3 BT, 4 RIM' if self.rosta == 'RIM' else ''}; got {pred}")
        self.pred_choice = pred
        import torch

        with torch.device("meta"):  # no random init: every tensor is overwritten by the strict load that follows
            net = GFM(self.backbone, self.rosta)
        return net.to_empty(device="cpu")

    def read_checkpoint(self, path):
        return convert.read_checkpoint(path)

    def convert(self, official):
        return convert.to_ours(official, self.backbone, self.rosta)

    @staticmethod
    def convert_file(path, entry=None, wset=None):
        return convert.convert_file(path, entry=entry, wset=wset)

    # -- pieces of the pipeline -------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Input image -> the HxWx3 array the official code resizes, after the short-side rule: uint8 RGB as PIL
        reads it (uint16 reduced to 8 bits), or float in [0,1] (resized like uint8 / 255)."""
        import cv2

        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] < 3:
            raise InputError(f"image must be HxWx3 RGB, got shape {a.shape}")
        a = a[:, :, :3]
        if a.dtype == np.uint16:
            a = (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        elif a.dtype != np.uint8:
            a = np.clip(a.astype(np.float64), 0.0, 1.0)
        h, w = a.shape[:2]
        limit = self.options.get("shorter_path_limitation")
        if limit and min(h, w) > int(limit):
            limit = int(limit)
            size = (limit, int(limit * h / w)) if h >= w else (int(limit * w / h), limit)  # cv2 (w, h)
            src = a if a.dtype == np.uint8 else a.astype(np.float32)
            a = cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)
        return a

    def net_input(self, img: np.ndarray, ratio: float | None = None, div: int | None = None) -> np.ndarray:
        h, w = img.shape[:2]
        size = scaled_size(h, w, int(self.options.get("max_size") or 1600), ratio=ratio, div=div)
        scaled = sk_resize(img, size) * 255.0
        return scaled.astype(np.float32).transpose(2, 0, 1)[None].copy()

    def run_net(self, x: np.ndarray) -> dict:
        import torch

        with torch.inference_mode():
            out = self.net(torch.from_numpy(x).to(self.device, self.dtype))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    def glance_map(self, glance: np.ndarray) -> np.ndarray:
        """[1,C,h,w] sigmoid maps -> uint8 map (gen_trimap_from_segmap_e2e / gen_bw_from_segmap_e2e)."""
        idx = np.argmax(glance, axis=1)[0]
        lut = np.array([0, 128, 255] if glance.shape[1] == 3 else [0, 255], np.uint8)
        return lut[idx]

    def infer(self, img: np.ndarray, test_choice: str | None = None) -> dict:
        """``inference_img_gfm`` on the prepared image: maps at the image size plus the network inputs.

        ``test_choice`` overrides the model option for this call ('HYBRID' or 'RESIZE'; ignored by RIM).
        """
        h, w = img.shape[:2]
        choice = (test_choice or self.test_choice).upper()
        if self.rosta == "RIM":
            x = self._input_exact(img, 3)
            o = self.run_net(x)
            res = {f"{r}_fusion": sk_resize(o[f"fusion_{r}"][0, 0], (h, w)) for r in ("tt", "ft", "bt", "rim")}
            res["net_input"] = x
            return res
        if choice == "RESIZE":
            x = self._input_exact(img, 2)
            o = self.run_net(x)
            res = {"glance": sk_resize(self.glance_map(o["glance"]), (h, w)) * 255.0,
                   "focus": sk_resize(o["focus"][0, 0], (h, w)),
                   "fusion": sk_resize(o["fusion"][0, 0], (h, w)), "net_input": x}
        else:
            xa = self.net_input(img, ratio=1 / 3)  # int(h * (1/3)), as the official global_ratio
            oa = self.run_net(xa)
            glance = sk_resize(self.glance_map(oa["glance"]), (h, w)) * 255.0
            xb = self.net_input(img, ratio=1 / 2)
            ob = self.run_net(xb)
            focus = sk_resize(ob["focus"][0, 0], (h, w))
            if self.rosta == "TT":
                wgt = np.ones(glance.shape)
                wgt[glance == 255] = 0
                wgt[glance == 0] = 0
                fusion = glance * (1.0 - wgt) / 255 + focus * wgt
            elif self.rosta == "BT":
                fusion = glance / 255.0 - focus
                fusion[fusion < 0] = 0
            else:
                fusion = glance / 255.0 + focus
                fusion[fusion > 1] = 1
            res = {"glance": glance, "focus": focus, "fusion": fusion, "net_input": xa, "net_input_focus": xb}
        return res

    def select(self, res: dict, pred_choice: int | None = None) -> np.ndarray:
        """The map ``pred_choice`` picks from ``infer``'s result, as an alpha in [0,1] (glance map / 255)."""
        pred = self.pred_choice if pred_choice is None else int(pred_choice)
        if self.rosta == "RIM":
            return res[("tt_fusion", "ft_fusion", "bt_fusion", "rim_fusion")[pred - 1]]
        return (res["glance"] / 255.0, res["focus"], res["fusion"])[pred - 1]

    def _input_exact(self, img, div: int) -> np.ndarray:
        """RESIZE and RIM passes size the input with ``int(side / div)`` (HYBRID uses ``int(side * ratio)``)."""
        return self.net_input(img, div=div)

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        h, w = np.asarray(image).shape[:2]
        img = self.prepare(image)
        res = self.infer(img)
        alpha = np.asarray(self.select(res), np.float64)
        if alpha.shape != (h, w):
            alpha = sk_resize(alpha, (h, w))
        extras = {k: np.asarray(v, np.float32) for k, v in res.items() if not k.startswith("net_input")}
        return MatteResult(alpha=np.clip(alpha, 0.0, 1.0).astype(np.float32), extras=extras)

