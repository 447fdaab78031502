"""SIM backend: the official ``scripts/main.py`` ``run()`` body for one image (nowsyn/SIM@dc5ed5a).

1. ``preprocess``: pad bottom/right with cv2.BORDER_REFLECT (edge pixel repeated) by ``(n // 8 + 1) * 8 - n``
   (always 1..8 px); image / 255 ("image_scale") and ImageNet-normalised ("image_trans"); 2-channel trimap
   (==0, ==255) and the six click maps (distance-transform Gaussians, L = 320; a class absent from the trimap
   leaves its channels at 0).
2. ``extract_semantic_trimap_whole``: classifier CAMs over sliding windows of 320 and 800 px with step/2 stride,
   windows placed with Python slice semantics (a negative start when the image is smaller than the window counts
   from the end), windows without unknown pixels skipped, CAMs bilinearly resized to the window, summed and divided
   by the window count, min-max normalised over the whole tensor, masked to the unknown region (20 channels).
3. network; alpha clamped to [0, 1]; alpha forced to 0 / 1 on the known trimap; crop.

Trimap: values are quantised to 0/128/255 first (the official code treats any other grey level as neither known nor
unknown). Where the official code would divide by zero (no unknown pixel at all, or constant CAMs), the semantic
trimap is set to 0 instead of NaN; with no unknown pixel the output is fully determined by the trimap anyway.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ..base import MatteResult, TorchBackend, as_float_trimap, as_uint8_image
from ...errors import ConverterError, InputError, UsageError

MEAN = np.array([[[0.485, 0.456, 0.406]]])
STD = np.array([[[0.229, 0.224, 0.225]]])
WINDOWS = (320, 800)


def pad_bottom_right(a: np.ndarray, stride: int = 8) -> np.ndarray:
    import cv2

    h, w = a.shape[:2]
    ph = (h // stride + 1) * stride - h
    pw = (w // stride + 1) * stride - w
    return cv2.copyMakeBorder(a, 0, ph, 0, pw, cv2.BORDER_REFLECT)


def window_slices(n: int, step: int) -> list:
    """Official window starts ``range(0, n-step, step//2) + [n-step]`` as Python slices [i, i+step) of length n."""
    starts = list(range(0, n - step, step // 2)) + [n - step]
    out = []
    for i in starts:
        a, b, _ = slice(i, i + step).indices(n)
        out.append((a, b))
    return out


def quantize_trimap(trimap) -> np.ndarray:
    f = as_float_trimap(trimap)
    out = np.full(f.shape, 128, np.uint8)
    out[f == 0] = 0
    out[f == 1] = 255
    return out


class SIMAdapter(TorchBackend):
    def __init__(self, entry, weights_set=None, weights: Any = None, device="cpu", precision="fp32", **options):
        if weights_set is not None and weights_set.tag == "classifier":
            raise UsageError(f"{entry.name}.classifier is the semantic-trimap classifier that `{entry.name}` uses, not "
                             f"a matting model: load `{entry.name}` (or `{entry.name}.adobe`) and pass "
                             "classifier_weights=FILE, or import the file with "
                             f"`mattecli models import {entry.name}.classifier FILE`")
        super().__init__(entry, weights_set, weights=weights, device=device, precision=precision, **options)
        self.classifier = self._load_classifier(self.options.get("classifier_weights"))

    # -- weights ----------------------------------------------------------------------------------------------
    def build_net(self):
        from .net import SIMNet

        return SIMNet()

    def convert(self, official):
        from .convert import to_ours

        return to_ours(official)

    def read_checkpoint(self, path):
        from .convert import read_checkpoint

        return read_checkpoint(path)

    def _load_classifier(self, w):
        from ..checkpoint import check_state_dict, is_ours, safe_torch_load, to_tensor_dict
        from .convert import classifier_to_ours, read_classifier_checkpoint
        from .net import SIMClassifier

        if w is None:
            from ...weights import require

            w = require(self.entry, self.entry.weight_set("classifier"))
        if isinstance(w, Mapping):
            ours = classifier_to_ours(to_tensor_dict(w))
        else:
            path = os.fspath(w)
            if not os.path.isfile(path):
                raise InputError(f"{path}: classifier weights file not found; pass an existing file as "
                                 "classifier_weights", path=path)
            obj = safe_torch_load(path)
            if is_ours(obj):
                meta = obj["mattecli"]
                if meta.get("family") not in (None, "sim") or meta.get("tag") not in (None, "classifier"):
                    raise ConverterError(f"{path}: converted weights are {meta.get('entry')}.{meta.get('tag')}, "
                                         "not the SIM classifier", path=path)
                ours = to_tensor_dict(obj["state_dict"])
            else:
                ours = classifier_to_ours(read_classifier_checkpoint(path))
        clf = SIMClassifier()
        check_state_dict(clf, ours, what=f"{self.entry.name} classifier weights")
        clf.load_state_dict(ours, strict=True)
        clf.eval().to(self.device)
        if self.dtype != self.net_dtype_default():
            clf.to(self.dtype)
        return clf

    # -- pipeline ---------------------------------------------------------------------------------------------
    def semantic_trimap(self, image_trans, trimap):
        """``extract_semantic_trimap_whole``: image_trans (1,3,H,W), trimap (1,1,H,W) float 0..255 -> (1,20,H,W)."""
        import torch
        import torch.nn.functional as F

        n, _, h, w = image_trans.shape
        cam = torch.zeros((n, 20, h, w), dtype=torch.float32, device=image_trans.device)
        weight = torch.zeros_like(cam)
        unknown = trimap == 128
        for step in WINDOWS:
            for (y0, y1) in window_slices(h, step):
                for (x0, x1) in window_slices(w, step):
                    if not bool(unknown[:, :, y0:y1, x0:x1].any()):
                        continue
                    inp = torch.cat([image_trans[:, :, y0:y1, x0:x1], trimap[:, :, y0:y1, x0:x1] / 255.0], dim=1)
                    _, c, _ = self.classifier(inp.to(self.dtype))
                    c = F.interpolate(c.float(), (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
                    cam[:, :, y0:y1, x0:x1] += c
                    weight[:, :, y0:y1, x0:x1] += 1
        cam = cam / torch.clamp_min(weight, 1)
        lo, hi = cam.min(), cam.max()
        if not bool(hi > lo):
            return torch.zeros_like(cam)
        return (cam - lo) / (hi - lo) * unknown.float()

    def prepare(self, image_u8: np.ndarray, trimap_u8: np.ndarray) -> dict:
        import torch

        from ..fba.adapter import trimap_transform

        img = pad_bottom_right(image_u8)
        tri = pad_bottom_right(trimap_u8)
        scale = img / 255.0
        trans = (scale - MEAN) / STD
        two = np.zeros(tri.shape + (2,), np.float32)
        two[:, :, 0] = tri == 0
        two[:, :, 1] = tri == 255
        clks = trimap_transform(two, 320, skip_empty=True)

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()

        return {"image_scale": t(scale), "image_trans": t(trans), "trimap_2chn": t(two),
                "trimap_clks": torch.from_numpy(clks)[None].float(),
                "trimap": torch.from_numpy(tri.astype(np.float32))[None, None]}

    def predict(self, image, trimap=None, background=None) -> MatteResult:
        import torch

        self.check_inputs(trimap, background)
        img = as_uint8_image(image)
        tri = quantize_trimap(trimap)
        self.check_trimap_size(img.shape, tri.shape)
        h, w = tri.shape
        inp = self.prepare(img, tri)
        dev, dt = self.device, self.dtype
        with torch.inference_mode():
            trimap_t = inp["trimap"].to(dev)
            smap = self.semantic_trimap(inp["image_trans"].to(dev), trimap_t)
            out = self.net(inp["image_scale"].to(dev, dt), inp["trimap_2chn"].to(dev, dt),
                           inp["image_trans"].to(dev, dt), inp["trimap_clks"].to(dev, dt), smap.to(dt))
            pred = torch.clamp(out["alpha"].float(), 0, 1)
            pred[trimap_t == 0] = 0
            pred[trimap_t == 255] = 1
        alpha = np.ascontiguousarray(pred[0, 0, :h, :w].cpu().numpy(), np.float32)
        return MatteResult(alpha=alpha, extras={"semantic_trimap": smap[0, :, :h, :w].cpu().numpy()})
