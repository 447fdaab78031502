"""Background Matting v1 pipeline (test_background-matting_image.py + functions.py of senguptaumd/Background-Matting).

Per image, as the official script (image mode), the OpenCV steps on the host (:mod:`.preprocess`), the generator on
the device for the whole batch (every item is cropped and resized to 512x512, so items of any size batch together):
1. motion cue, square box around the person mask, crops resized to 512x512, soft segmentation (see .preprocess);
2. all inputs ``2 * x / 255 - 1``; network; fg = image where tanh alpha > 0.95;
3. alpha clipped to [0, 1], largest 8-connected component of ``alpha > 0.05``, uint8; fg masked where alpha > 0.01;
4. uncrop: bilinear resize to the box, pasted into zeros (uint8).
``alpha`` = that uint8 alpha / 255 and ``foreground`` = the uint8 fg / 255 (exact reproduction).

Differences from the authors' setup (documented in the README, "Background Matting v1"):
- segmentation: the authors run DeepLabv3+ (TensorFlow, person class) and save ``*_masksDL.png``. We take
  ``predict_batch(batch, segmentation=masks)`` (per item HxW, uint8 0/255 or float [0,1]), or run the registry
  segmenter named by the ``segmenter`` option (default BiSeNetV2 COCO-Stuff, person class; loaded at the first image
  that needs it) and binarise its labels to 0/255;
- motion frames: the official forward computes the motion branch but never uses it (``comb_multi`` takes the
  background features), so the 4 grey frames cannot change the result. ``predict_batch(..., motion_frames=[4
  images])`` is accepted for fidelity with the authors' video mode (frames -40, -20, +20, +40, proper grey weights);
  without it the current frame is repeated with the swapped weights, as in their image mode;
- an empty mask returns a zero matte with a warning (the official script skips the image); a plate of another size
  with the same aspect ratio is resized to the image.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from ...errors import InputError, MatteError, MissingInput, UsageError, WeightsUnavailable
from ..base import Prediction, TorchBackend
from ..runtimes.parts import Part
from . import preprocess as P
from .convert import BGMConverter


def check_segmenter(name: str | None) -> None:
    """The ``segmenter`` option names a registry model that needs only the image (at construction, before any
    image)."""
    if not name:
        return
    from ...registry import resolve

    entry, _ = resolve(name)
    if entry.requires:
        raise UsageError(f"model bgm: option segmenter={name}: {entry.name} needs "
                         f"{', '.join(sorted(entry.requires))}; use a segmenter or a trimap-free matting model")


def _as_list(x, n: int, shape, what: str) -> list:
    """Per-item HxW[xC] numpy arrays from a tensor [B,C,H,W] / [C,H,W] / [B,H,W], a numpy array HxW[xC] (one item)
    or [B,H,W(,C)], or a sequence of per-item arrays."""
    if hasattr(x, "detach"):
        a = x.detach().cpu().numpy()
        if a.ndim == 4:
            return list(a.transpose(0, 2, 3, 1))
        if a.ndim == 3 and tuple(a.shape[1:]) == tuple(shape):
            return list(a)
        return [a.transpose(1, 2, 0) if a.ndim == 3 else a]
    if isinstance(x, np.ndarray):
        if x.ndim == 2 or tuple(x.shape[:2]) == tuple(shape):
            items = [x]
        else:
            items = list(x)
    else:
        items = list(x)
    if len(items) != n:
        raise InputError(f"{what}: {len(items)} given for {n} images")
    return [np.asarray(i) for i in items]


class BGMAdapter(TorchBackend):
    converter = BGMConverter()
    runtime_parts = (Part("net"),)
    reso = P.RESO   # the network's input size (the official 512)

    def __init__(self, entry, weights_set=None, **kwargs):
        self._segmenter = None
        options = {k: v for k, v in kwargs.items() if k not in ("weights", "device", "precision", "runtime")}
        check_segmenter(entry.validate_options(options)["segmenter"])
        super().__init__(entry, weights_set, **kwargs)

    def build_net(self, state_dict):
        from .net import ResnetConditionHR

        return ResnetConditionHR(input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7, n_blocks2=3)

    # -- segmentation -------------------------------------------------------------------------------------------
    def segmenter(self):
        """The registry segmenter named by the ``segmenter`` option (loaded once, at the first image needing it)."""
        name = self.options.get("segmenter")
        if not name:
            raise MissingInput("model bgm needs a person segmentation: pass segmentation= (HxW masks) to "
                               "predict_batch or set the option segmenter=NAME (e.g. bisenetv2.cocostuff)")
        if self._segmenter is None:
            from ...api import load_model

            try:
                self._segmenter = load_model(name, device=str(self.device))
            except WeightsUnavailable as e:
                raise WeightsUnavailable(
                    f"model bgm needs a person segmentation from the segmenter {name}, whose weights are missing "
                    f"({e}); or pass segmentation= (masks) to predict_batch") from None
            except MatteError as e:
                raise MatteError(f"model bgm: segmenter {name} could not be loaded ({e}); pass segmentation= "
                                 "(masks) to predict_batch or choose another segmenter option") from None
        return self._segmenter

    def segment(self, batch) -> list:
        """Person masks 0/255 (uint8 HxW per item) from the segmenter."""
        import torch

        p = self.segmenter().predict_batch(batch)
        labels, ids = p.extras.get("labels"), p.extras.get("class_ids")
        if labels is not None and ids is not None:
            sel = torch.isin(labels, torch.as_tensor(list(ids), device=labels.device))
        else:   # a trimap-free matting model: its alpha thresholded
            sel = p.alpha > 0.5
        return list((sel.to(torch.uint8) * 255).reshape(batch.n, *batch.size).cpu().numpy())

    # -- pipeline -----------------------------------------------------------------------------------------------
    def predict_batch(self, batch, segmentation: Any = None, motion_frames: Sequence | None = None) -> Prediction:
        """The batch with optional person masks (``segmentation``: per item HxW, else the segmenter runs) and the
        4 motion frames of the authors' video mode (never reach the result, see the module docstring)."""
        import torch

        batch = batch.to(self.device)
        with torch.inference_mode():
            inputs, ctx = self.encode(batch, segmentation, motion_frames)
            return self.decode(self.forward(inputs), batch, ctx)

    def encode(self, batch, segmentation: Any = None, motion_frames: Sequence | None = None):
        import torch

        from ...imaging.arrays import to_uint8

        if batch.background is None:
            self.check_inputs(None, None)
        n, (R, C) = batch.n, batch.size
        images = list(batch.uint8_image().permute(0, 2, 3, 1).cpu().numpy())
        plates = [P.plate_u8(to_uint8(b), R, C) for b in batch.background.permute(0, 2, 3, 1).cpu().numpy()]
        plates = plates * n if len(plates) == 1 else plates
        if segmentation is None:
            masks = self.segment(batch)
        else:
            masks = [P.mask_u8(s, (R, C)) for s in _as_list(segmentation, n, (R, C), "segmentation")]
        if motion_frames is None:
            multi = [np.repeat(P.grey_swapped(im)[..., None], 4, axis=2).astype(np.float64) for im in images]
        else:
            frames = list(motion_frames)
            if len(frames) != 4:
                raise InputError(f"motion_frames must be 4 images (frames -40, -20, +20, +40), got {len(frames)}")
            per = [_as_list(f, n, (R, C), "motion frames") for f in frames]
            multi = []
            for i in range(n):
                m = np.zeros((R, C, 4))
                for t in range(4):
                    fr = to_uint8(per[t][i])
                    if fr.shape[:2] != (R, C):
                        raise InputError("motion frames must have the image's size")
                    m[..., t] = P.grey(fr)
                multi.append(m)
        items, crops = [], []
        for i in range(n):
            info: dict = {"segmentation": masks[i], "bbox": None, "net_seg_u8": None, "alpha_crop_u8": None}
            if not np.any(masks[i]):
                warnings.warn("bgm: the person segmentation is empty; returning an empty matte", stacklevel=3)
            else:
                bbox = P.get_bbox(masks[i])
                if bbox[2] > 0 and bbox[3] > 0:
                    info["bbox"] = bbox
                    info["net_seg_u8"] = P.process_mask(P.crop_resize(masks[i], bbox, self.reso), self.reso)
                    crops.append((P.crop_resize(images[i], bbox, self.reso),
                                  P.crop_resize(plates[i], bbox, self.reso), info["net_seg_u8"],
                                  P.crop_resize(multi[i], bbox, self.reso)))
            items.append(info)
        if not crops:
            return None, items

        def t(arrays):
            a = np.stack([x if x.ndim == 3 else x[..., None] for x in arrays])
            return (2 * torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255) - 1).to(self.device, self.dtype)

        return tuple(t([c[k] for c in crops]) for k in range(4)), items

    def forward(self, inputs):
        """(alpha, fg, image) in float32 at least (post-processing never runs in half precision)."""
        import torch

        if inputs is None:
            return None
        alpha, fg = self.net(*inputs)
        dt = torch.promote_types(alpha.dtype, torch.float32)
        return alpha.to(dt), fg.to(dt), inputs[0].to(dt)

    def decode(self, outputs, batch, items) -> Prediction:
        import torch

        n, (R, C) = batch.n, batch.size
        alpha = np.zeros((n, R, C), np.float32)
        fgr = np.zeros((n, R, C, 3), np.float32)
        if outputs is not None:
            alpha_pred, fg_tmp, x_img = outputs
            al_mask = (alpha_pred > 0.95).float()
            fg_pred = (x_img * al_mask + fg_tmp * (1 - al_mask)).cpu().numpy()
            alpha_pred = alpha_pred.cpu().numpy()
            k = 0
            for i, info in enumerate(items):
                if info["bbox"] is None:
                    continue
                a = np.clip((alpha_pred[k].transpose(1, 2, 0) + 1) / 2, 0, 1)
                f = np.clip((fg_pred[k].transpose(1, 2, 0) + 1) / 2, 0, 1)
                k += 1
                cc = P.largest_component(a[..., 0] > 0.05)
                if cc is None:
                    info["bbox"] = None
                    continue
                alpha_u8 = (255 * (a[..., 0] * cc)).astype(np.uint8)
                f = f * np.expand_dims((alpha_u8.astype(float) / 255 > 0.01).astype(float), axis=2)
                info["alpha_crop_u8"] = alpha_u8
                alpha[i] = P.uncrop(alpha_u8, info["bbox"], (R, C)).astype(np.float32) / 255.0
                fgr[i] = P.uncrop((255 * f).astype(np.uint8), info["bbox"], (R, C)).astype(np.float32) / 255.0
        extras = {k: [info[k] for info in items] for k in ("bbox", "segmentation", "net_seg_u8", "alpha_crop_u8")}
        extras["empty"] = [info["bbox"] is None for info in items]
        dev = batch.device
        return Prediction(alpha=torch.from_numpy(alpha)[:, None].to(dev),
                          foreground=torch.from_numpy(fgr).permute(0, 3, 1, 2).contiguous().to(dev), extras=extras)
