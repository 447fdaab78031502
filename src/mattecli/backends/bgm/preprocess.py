"""The host-side steps of Background Matting v1's image-mode script (test_background-matting_image.py and
functions.py of senguptaumd/Background-Matting), on numpy arrays with OpenCV as the authors do:

1. motion cue = 4 copies of ``cv2.cvtColor(image, COLOR_BGR2GRAY)`` applied to the RGB array (so the grey weights
   are swapped: 0.114 R + 0.587 G + 0.299 B);
2. square box around the segmentation mask (+10 % margin, anchored at the mask box's top-left, clamped to
   ``<= R-1 / C-1``), every input cropped to it and resized to 512x512 (bilinear);
3. mask: ``> 0.2`` -> 1, bottom-row trick (rows after 250 without mask pixels removed, replicate border), erode 3x3
   ellipse x10, dilate 5x5 ellipse x5, Gaussian blur 31x31, uint8;
4. after the network: largest 8-connected component of ``alpha > 0.05``; uncrop by a bilinear resize to the box.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError

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


def crop_resize(img: np.ndarray, bbox, reso: int = RESO) -> np.ndarray:
    import cv2

    crop = img[bbox[0]:bbox[0] + bbox[2], bbox[1]:bbox[1] + bbox[3]]
    return cv2.resize(crop, (reso, reso))


def uncrop(crop: np.ndarray, bbox, shape) -> np.ndarray:
    """Bilinear resize of a crop back to its box, pasted into zeros of ``shape`` (same dtype)."""
    import cv2

    out = np.zeros(tuple(shape) + crop.shape[2:], crop.dtype)
    out[bbox[0]:bbox[0] + bbox[2], bbox[1]:bbox[1] + bbox[3]] = cv2.resize(crop, (int(bbox[3]), int(bbox[2])))
    return out


def process_mask(mask_crop_u8: np.ndarray, reso: int = RESO) -> np.ndarray:
    """The script's soft-segmentation preprocessing of the cropped (reso x reso) mask -> uint8."""
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
    return np.delete(m, range(reso, reso + K), 0)


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


def grey_swapped(rgb_u8: np.ndarray) -> np.ndarray:
    """The image-mode script's motion cue: BGR2GRAY applied to RGB data."""
    import cv2

    return cv2.cvtColor(rgb_u8, cv2.COLOR_BGR2GRAY)


def grey(rgb_u8: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2GRAY)


def mask_u8(seg: np.ndarray, shape) -> np.ndarray:
    """A segmentation (HxW or HxWx1; uint8 0..255, bool, or float in [0,1]) -> uint8 HxW."""
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


def plate_u8(bg: np.ndarray, h: int, w: int) -> np.ndarray:
    """The captured background at the image size: a plate of another size with the same framing (aspect ratio
    within 2 %) is resized (area when shrinking, bilinear when enlarging)."""
    if bg.shape[:2] == (h, w):
        return bg
    ph, pw = bg.shape[:2]
    if abs(ph / pw - h / w) > 0.02 * (h / w):
        raise InputError(f"background plate is {pw}x{ph} but the image is {w}x{h} (different aspect ratio); "
                         "pass a plate shot with the same framing")
    import cv2

    return cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA if ph * pw > h * w else cv2.INTER_LINEAR)
