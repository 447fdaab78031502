"""SIM backend: the official ``scripts/main.py`` ``run()`` body (nowsyn/SIM@dc5ed5a), on tensors, per batch.

1. ``preprocess``: pad bottom/right with cv2.BORDER_REFLECT (edge pixel repeated) by ``(n // 8 + 1) * 8 - n``
   (always 1..8 px; an index gather with cv2's own border rule); image / 255 in float64 ("image_scale") and
   ImageNet-normalised in float64 ("image_trans"), both then float32; 2-channel trimap (==0, ==255) and the six click
   maps (distance-transform Gaussians, L = 320, on the host: cv2.distanceTransform; a class absent from the trimap
   leaves its channels at 0).
2. ``extract_semantic_trimap_whole``: classifier CAMs over sliding windows of 320 and 800 px with step/2 stride,
   windows placed with Python slice semantics (a negative start when the image is smaller than the window counts
   from the end), windows without unknown pixels skipped (per item), CAMs bilinearly resized to the window, summed and
   divided by the window count, min-max normalised over each item's whole tensor, masked to the unknown region.
3. network; alpha clamped to [0, 1]; alpha forced to 0 / 1 on the known trimap; crop.

Trimaps are quantised to 0/128/255 (the official code treats any other grey level as neither known nor unknown).
Where the official code would divide by zero (no unknown pixel at all, or constant CAMs), the semantic trimap is set
to 0 instead of NaN; with no unknown pixel the output is fully determined by the trimap anyway.

The classifier is a second file: ``classifier_weights`` (a file; in Python also a mapping in the official layout) or
the cached weight set ``sim.classifier``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ...errors import ConverterError, InputError, UsageError
from ..base import ModelSpec, Prediction, TorchBackend
from ..runtimes.parts import Part
from ..fba.trimap_channels import trimap_transform
from .convert import CLASSIFIER, SIMConverter

WINDOWS = (320, 800)
STRIDE = 8
N_CLASSES = 20


def pad_amount(n: int, stride: int = STRIDE) -> int:
    """Official ``preprocess`` padding: always 1..stride pixels (a full stride when already a multiple)."""
    return (n // stride + 1) * stride - n


def reflect_index(n: int, after: int) -> np.ndarray:
    """Source rows of ``cv2.copyMakeBorder(x, 0, after, ..., cv2.BORDER_REFLECT)`` along an axis of length n."""
    import cv2

    idx = np.arange(n, dtype=np.int32)[None]
    return cv2.copyMakeBorder(idx, 0, 0, 0, after, cv2.BORDER_REFLECT)[0].astype(np.int64)


def pad_bottom_right(t):
    """[..., H, W] tensor -> padded as ``preprocess`` does (exact copies, any dtype, on its device)."""
    import torch

    h, w = t.shape[-2:]
    iy = torch.from_numpy(reflect_index(h, pad_amount(h))).to(t.device)
    ix = torch.from_numpy(reflect_index(w, pad_amount(w))).to(t.device)
    return t.index_select(-2, iy).index_select(-1, ix)


def window_slices(n: int, step: int) -> list:
    """Official window starts ``range(0, n-step, step//2) + [n-step]`` as Python slices [i, i+step) of length n."""
    starts = list(range(0, n - step, step // 2)) + [n - step]
    out = []
    for i in starts:
        a, b, _ = slice(i, i + step).indices(n)
        out.append((a, b))
    return out


class SIMAdapter(TorchBackend):
    converter = SIMConverter()
    runtime_parts = (Part("net"), Part("classifier"))

    def __init__(self, entry, weights_set=None, weights: Any = None, device="cpu", precision="fp32",
                 classifier_weights: Any = None, **options):
        if weights_set is not None and weights_set.tag == CLASSIFIER:
            raise UsageError(f"{entry.name}.classifier is the semantic-trimap classifier that `{entry.name}` uses, not "
                             f"a matting model: load `{entry.name}` (or `{entry.name}.adobe`) and pass "
                             "classifier_weights=FILE, or import the file with "
                             f"`mattecli models import {entry.name}.classifier FILE`")
        if isinstance(classifier_weights, os.PathLike):
            classifier_weights = os.fspath(classifier_weights)
        if not isinstance(classifier_weights, Mapping):   # a file name (or none): the typed option checks it
            options["classifier_weights"] = classifier_weights
        super().__init__(entry, weights_set, weights=weights, device=device, precision=precision, **options)
        given = classifier_weights if isinstance(classifier_weights, Mapping) else self.options["classifier_weights"]
        self.classifier = self._load_classifier(given)
        self.use_runtime(self.runtime.requested)   # the classifier is a part too

    # -- weights ----------------------------------------------------------------------------------------------
    def build_net(self, state_dict):
        from .net import SIMNet

        return SIMNet()

    def networks(self) -> list:
        return [self.net, self.classifier]

    def _load_classifier(self, given):
        from ..checkpoint import check_state_dict, to_tensor_dict
        from .net import SIMClassifier

        spec = ModelSpec(self.entry, self.entry.weight_set(CLASSIFIER), self.options)
        if given is None:
            from ..install import cached_state_dict

            ours = cached_state_dict(self.entry, spec.weights_set, self.converter, spec)[0]
        elif isinstance(given, Mapping):
            ours = self.converter.to_ours(to_tensor_dict(given), spec)
        else:
            ours = self._classifier_file(given, spec)
        clf = SIMClassifier()
        check_state_dict(clf, ours, what=f"{self.entry.name} classifier weights")
        clf.load_state_dict(ours, strict=True)
        clf.eval().to(self.device)
        if self.dtype != self.net_dtype():
            clf.to(self.dtype)
        return clf

    def _classifier_file(self, path: str, spec) -> dict:
        from ...weights import converted
        from ..checkpoint import to_tensor_dict

        if not os.path.isfile(path):
            raise InputError(f"{path}: classifier weights file not found; pass an existing file as "
                             "classifier_weights", path=path)
        try:
            ours, meta = converted.load(path)
        except ConverterError:
            ours = None
        if ours is not None:
            if meta.get("family") not in (None, "sim") or meta.get("tag") not in (None, CLASSIFIER):
                raise ConverterError(f"{path}: converted weights are {meta.get('entry')}.{meta.get('tag')}, "
                                     "not the SIM classifier", path=path)
            return to_tensor_dict(ours)
        try:
            return self.converter.to_ours(self.converter.read(path, spec), spec)
        except ConverterError as e:
            raise ConverterError(str(e) if path in str(e) else f"{path}: {e}", path=path) from None

    # -- pipeline ---------------------------------------------------------------------------------------------
    def semantic_trimap(self, image_trans, trimap):
        """``extract_semantic_trimap_whole`` per item: image_trans (B,3,H,W), trimap (B,1,H,W) float 0..255 ->
        (B,20,H,W) float32."""
        import torch
        import torch.nn.functional as F

        n, _, h, w = image_trans.shape
        cam = torch.zeros((n, N_CLASSES, h, w), dtype=torch.float32, device=image_trans.device)
        weight = torch.zeros((n, 1, h, w), dtype=torch.float32, device=image_trans.device)
        unknown = trimap == 128
        for step in WINDOWS:
            for (y0, y1) in window_slices(h, step):
                for (x0, x1) in window_slices(w, step):
                    has = unknown[:, :, y0:y1, x0:x1].flatten(1).any(1)
                    if not bool(has.any()):
                        continue
                    items = slice(None) if bool(has.all()) else has.nonzero()[:, 0]
                    inp = torch.cat([image_trans[items, :, y0:y1, x0:x1], trimap[items, :, y0:y1, x0:x1] / 255.0], 1)
                    _, c, _ = self.classifier(inp.to(self.dtype))
                    c = F.interpolate(c.float(), (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
                    cam[items, :, y0:y1, x0:x1] += c
                    weight[items, :, y0:y1, x0:x1] += 1
        cam = cam / torch.clamp_min(weight, 1)
        lo = cam.amin(dim=(1, 2, 3), keepdim=True)
        hi = cam.amax(dim=(1, 2, 3), keepdim=True)
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        return torch.where(hi > lo, (cam - lo) / span * unknown.float(), torch.zeros_like(cam))

    def encode(self, batch):
        import torch

        from ..layers.normalize import normalize

        image_scale = pad_bottom_right(batch.uint8_image()).to(torch.float64).div_(255.0)
        image_trans = normalize(image_scale).float()
        image_scale = image_scale.float()
        tri = pad_bottom_right(batch.trimap)
        two = torch.cat([tri == 0, tri == 255], 1).float()
        clks = torch.stack([torch.from_numpy(trimap_transform(np.ascontiguousarray(t.permute(1, 2, 0).cpu().numpy()),
                                                              320, skip_empty=True)) for t in two])
        trimap = tri.float()
        smap = self.semantic_trimap(image_trans, trimap)
        inputs = tuple(x.to(batch.device, self.dtype) for x in (image_scale, two, image_trans, clks, smap))
        return inputs, (trimap, smap)

    def forward(self, inputs):
        return self.net(*inputs)["alpha"]

    def decode(self, alpha, batch, ctx):
        import torch

        trimap, smap = ctx
        h, w = batch.size
        pred = torch.clamp(alpha.float(), 0, 1)
        pred[trimap == 0] = 0
        pred[trimap == 255] = 1
        return Prediction(alpha=pred[..., :h, :w].contiguous(),
                          extras={"semantic_trimap": smap[..., :h, :w].contiguous()})
