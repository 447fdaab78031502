"""Background Matting v1 pipeline (test_background-matting_image.py + functions.py of senguptaumd/Background-Matting).

Per image, as the official script (image mode):
1. motion cue = 4 copies of ``cv2.cvtColor(image, COLOR_BGR2GRAY)`` applied to the RGB array (so the grey weights
   are swapped: 0.114 R + 0.587 G + 0.299 B);
2. square box around the segmentation mask (+10 % margin, anchored at the mask box's top-left, clamped to
   ``<= R-1 / C-1``), every input cropped to it and resized to 512x512 (bilinear);
3. mask: ``> 0.2`` -> 1, bottom-row trick (rows after 250 without mask pixels removed, replicate border), erode 3x3
   ellipse x10, dilate 5x5 ellipse x5, Gaussian blur 31x31, uint8;
4. all inputs ``2 * x / 255 - 1``; network; fg = image where tanh alpha > 0.95;
5. alpha clipped to [0, 1], largest 8-connected component of ``alpha > 0.05``, uint8; fg masked where alpha > 0.01;
6. uncrop: bilinear resize to the box, pasted into zeros (uint8).
``MatteResult.alpha`` = that uint8 alpha / 255 and ``foreground`` = the uint8 fg / 255 (exact reproduction).

Differences from the authors' setup (documented in the README, "Background Matting v1"):
- segmentation: the authors run DeepLabv3+ (TensorFlow, person class) and save ``*_masksDL.png``. We take
  ``segmentation=`` (HxW, uint8 0/255 or float [0,1]) per call, or run the registry segmenter named by the
  ``segmenter`` option (default BiSeNetV2 COCO-Stuff, person class) and binarise its labels to 0/255;
- motion frames: the official forward computes the motion branch but never uses it (``comb_multi`` takes the
  background features), so the 4 grey frames cannot change the result. ``motion_frames=`` (4 images) is accepted
  for fidelity with the authors' video mode (frames -40, -20, +20, +40, proper grey weights); without it the current
  frame is repeated with the swapped weights, as in their image mode;
- an empty mask returns a zero matte (the official script skips the image); a plate of another size with the same
  aspect ratio is resized to the image.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from ...errors import InputError, MatteError, MissingInput, WeightsUnavailable
from ..base import MatteResult, TorchBackend, as_uint8_image

RESO = 512


def get_bbox(mask: np.ndarray) -> np.ndarray:
    """[row0, col0, height, width] as functions.get_bbox + create_bbox (including the R-1 / C-1 clamp)."""
    R, C = mask.shape[:2]
    where = np.array(np.where(mask))
    x1, y1 = np.amin(where, axis=1)
    x2, y2 = np.amax(where, axis=1)
    w = np.maximum(x2 - x1, y2 - y1)
    r0, c0 = x1 - 0.1 * w, y1 - 0.1 * w
    r1, c1 = x1 + 1.1 * w, y1 + 1.1 * w
    r0, c0 = max(r0, 0), max(c0, 0)
    if r1 >= R:
        r1 = R - 1
    if c1 >= C:
        c1 = C - 1
    return np.around([r0, c0, r1 - r0, c1 - c0]).astype("int")


def _crop_resize(img: np.ndarray, bbox) -> np.ndarray:
    import cv2

    crop = img[bbox[0]:bbox[0] + bbox[2], bbox[1]:bbox[1] + bbox[3]]
    return cv2.resize(crop, (RESO, RESO))


def process_mask(mask_crop_u8: np.ndarray) -> np.ndarray:
    """The script's soft-segmentation preprocessing of the 512x512 cropped mask -> uint8."""
    import cv2

    k_er = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    k_dil = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = mask_crop_u8.astype(np.float32) / 255
    m[m > 0.2] = 1
    K = 25
    zero_id = np.nonzero(np.sum(m, axis=1) == 0)
    del_id = zero_id[0][zero_id[0] > 250]
    if len(del_id) > 0:
        del_id = [del_id[0] - 2, del_id[0] - 1, *del_id]
        m = np.delete(m, del_id, 0)
    m = cv2.copyMakeBorder(m, 0, K + len(del_id), 0, 0, cv2.BORDER_REPLICATE)
    m = cv2.erode(m, k_er, iterations=10)
    m = cv2.dilate(m, k_dil, iterations=5)
    m = cv2.GaussianBlur(m.astype(np.float32), (31, 31), 0)
    m = (255 * m).astype(np.uint8)
    return np.delete(m, range(RESO, RESO + K), 0)


def largest_component(binary: np.ndarray) -> np.ndarray | None:
    """Mask of the largest 8-connected component (ties -> first in raster order, as skimage label numbering)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = np.flatnonzero(areas == areas.max()) + 1
    if len(best) > 1:
        flat = labels.ravel()
        first = [int(np.argmax(flat == b)) for b in best]
        best = [best[int(np.argmin(first))]]
    return labels == best[0]


def _grey_swapped(rgb_u8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb_u8, cv2.COLOR_BGR2GRAY)  # on RGB data, as the image-mode script does


def _grey(rgb_u8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY)


def _mask_u8(seg: np.ndarray, shape) -> np.ndarray:
    s = np.asarray(seg)
    if s.ndim == 3:
        s = s[..., 0]
    if s.shape != tuple(shape):
        raise InputError(f"segmentation is {s.shape[1]}x{s.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if s.dtype == np.uint8:
        return s
    if s.dtype == bool:
        return s.astype(np.uint8) * 255
    return (np.clip(s.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


class BGMAdapter(TorchBackend):
    _segmenter = None

    def build_net(self):
        from .net import ResnetConditionHR

        return ResnetConditionHR(input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7, n_blocks2=3)

    def read_checkpoint(self, path):
        from . import convert

        return convert.read_checkpoint(path)

    def convert(self, official):
        from . import convert

        return convert.to_ours(official, self.net.state_dict().keys())

    # -- segmentation -------------------------------------------------------------------------------------------
    def segment(self, image_u8: np.ndarray) -> np.ndarray:
        """Person mask 0/255 from the registry segmenter named by the ``segmenter`` option (loaded once)."""
        name = self.options.get("segmenter")
        if not name:
            raise MissingInput("model bgm needs a person segmentation: pass segmentation= (HxW mask) or set the "
                               "option segmenter=NAME (e.g. bisenetv2.cocostuff)")
        if self._segmenter is None:
            from ...api import load_model

            try:
                self._segmenter = load_model(name, device=str(self.device))
            except WeightsUnavailable as e:
                raise WeightsUnavailable(
                    f"model bgm needs a person segmentation from the segmenter {name}, whose weights are missing "
                    f"({e}); or pass segmentation= (a mask) to predict()") from None
            except MatteError as e:
                raise MatteError(f"model bgm: segmenter {name} could not be loaded ({e}); pass segmentation= "
                                 "(a mask) to predict() or choose another segmenter option") from None
        r = self._segmenter.predict(image_u8)
        labels, ids = r.extras.get("labels"), r.extras.get("class_ids")
        if labels is not None and ids is not None:
            return np.isin(labels, ids).astype(np.uint8) * 255
        return (r.alpha > 0.5).astype(np.uint8) * 255

    # -- pipeline -----------------------------------------------------------------------------------------------
    def _plate(self, background, h, w) -> np.ndarray:
        bg = as_uint8_image(background, "background plate")
        if bg.shape[:2] == (h, w):
            return bg
        ph, pw = bg.shape[:2]
        if abs(ph / pw - h / w) > 0.02 * (h / w):
            raise InputError(f"background plate is {pw}x{ph} but the image is {w}x{h} (different aspect ratio); "
                             "pass a plate shot with the same framing")
        import cv2

        return cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA if ph * pw > h * w else cv2.INTER_LINEAR)

    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None, background: np.ndarray | None = None,
                segmentation: np.ndarray | None = None, motion_frames: Sequence[np.ndarray] | None = None,
                **extra: Any) -> MatteResult:
        import torch

        self.check_inputs(trimap, background)
        img = as_uint8_image(image)
        R, C = img.shape[:2]
        back = self._plate(background, R, C)
        mask = self.segment(img) if segmentation is None else _mask_u8(segmentation, (R, C))

        multi = np.zeros((R, C, 4))
        if motion_frames is None:
            multi[...] = _grey_swapped(img)[..., None]
        else:
            frames = list(motion_frames)
            if len(frames) != 4:
                raise InputError(f"motion_frames must be 4 images (frames -40, -20, +20, +40), got {len(frames)}")
            for t, fr in enumerate(frames):
                fr = as_uint8_image(fr, "motion frame")
                if fr.shape[:2] != (R, C):
                    raise InputError("motion frames must have the image's size")
                multi[..., t] = _grey(fr)

        empty = MatteResult(alpha=np.zeros((R, C), np.float32), foreground=np.zeros((R, C, 3), np.float32),
                            extras={"empty": True})
        if not np.any(mask):
            warnings.warn("bgm: the person segmentation is empty; returning an empty matte", stacklevel=2)
            return empty
        bbox = get_bbox(mask)
        if bbox[2] <= 0 or bbox[3] <= 0:
            return empty
        img_c = _crop_resize(img, bbox)
        back_c = _crop_resize(back, bbox)
        mask_c = _crop_resize(mask, bbox)
        multi_c = _crop_resize(multi, bbox)
        seg = process_mask(mask_c)

        def t(a):
            a = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))[None]
            return (2 * a.float().div(255) - 1).to(self.device, self.dtype)

        with torch.inference_mode():
            x_img = t(img_c)
            alpha_pred, fg_tmp = self.net(x_img, t(back_c), t(seg), t(multi_c))
            alpha_pred, fg_tmp, x_img = alpha_pred.float(), fg_tmp.float(), x_img.float()
            al_mask = (alpha_pred > 0.95).float()
            fg_pred = x_img * al_mask + fg_tmp * (1 - al_mask)
        alpha = np.clip((alpha_pred[0].cpu().numpy().transpose(1, 2, 0) + 1) / 2, 0, 1)
        cc = largest_component(alpha[..., 0] > 0.05)
        if cc is None:
            return empty
        alpha_u8 = (255 * (alpha[..., 0] * cc)).astype(np.uint8)
        fg = np.clip((fg_pred[0].cpu().numpy().transpose(1, 2, 0) + 1) / 2, 0, 1)
        fg = fg * np.expand_dims((alpha_u8.astype(float) / 255 > 0.01).astype(float), axis=2)
        fg_u8 = (255 * fg).astype(np.uint8)

        import cv2

        a_full = np.zeros((R, C), np.uint8)
        f_full = np.zeros((R, C, 3), np.uint8)
        a_full[bbox[0]:bbox[0] + bbox[2], bbox[1]:bbox[1] + bbox[3]] = cv2.resize(alpha_u8, (bbox[3], bbox[2]))
        f_full[bbox[0]:bbox[0] + bbox[2], bbox[1]:bbox[1] + bbox[3]] = cv2.resize(fg_u8, (bbox[3], bbox[2]))
        return MatteResult(
            alpha=a_full.astype(np.float32) / 255.0,
            foreground=f_full.astype(np.float32) / 255.0,
            extras={"bbox": bbox, "segmentation": mask, "net_seg_u8": seg, "alpha_crop_u8": alpha_u8},
        )
