"""Plate alignment for hand-held shots: feature matching + homography (ours, robust).

BGMv2's ``inference_utils.HomographicAlignment`` (``--preprocess-alignment`` of inference_images.py /
inference_video.py) does: ORB (500 features) on image and plate, brute-force matching with the L2 norm, keep the best
15 % of matches, ``cv2.findHomography(RANSAC)``, warp the plate onto the image, and copy image pixels where the
warped plate does not cover the frame. It crashes (or warps to garbage) when matching fails.

:func:`align_plate` keeps that recipe but is robust: ORB with more features and the Hamming norm, Lowe's ratio test,
RANSAC with a reprojection threshold, and sanity checks on the result (enough inliers, a well-conditioned
homography that keeps the frame roughly in place). Any failure returns the plate unchanged with ``ok=False`` and a
reason, and emits a :class:`PlateAlignmentWarning` (one line); matting then runs without alignment.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


class PlateAlignmentWarning(UserWarning):
    """Plate alignment failed; the unaligned plate is used."""


@dataclass
class AlignResult:
    plate: np.ndarray             # HxWx3, same dtype as the input plate, aligned (or unchanged when ok is False)
    ok: bool
    reason: str = ""
    homography: np.ndarray | None = None
    matches: int = 0
    inliers: int = 0


def _to_u8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    return (np.clip(a.astype(np.float32), 0, 1) * 255.0 + 0.5).astype(np.uint8)


def _fail(plate, reason, warn, matches=0, inliers=0) -> AlignResult:
    if warn:
        warnings.warn(f"plate alignment failed ({reason}); using the plate unaligned", PlateAlignmentWarning,
                      stacklevel=3)
    return AlignResult(plate=plate, ok=False, reason=reason, matches=matches, inliers=inliers)


def estimate_homography(image_u8: np.ndarray, plate_u8: np.ndarray, *, max_features: int = 4000,
                        ratio: float = 0.75, min_inliers: int = 15, ransac_threshold: float = 3.0):
    """Homography mapping plate pixels onto image pixels. Returns (H or None, matches, inliers, reason)."""
    import cv2

    g1 = cv2.cvtColor(image_u8, cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(plate_u8, cv2.COLOR_RGB2GRAY)
    orb = cv2.ORB_create(nfeatures=max_features)
    k1, d1 = orb.detectAndCompute(g1, None)
    k2, d2 = orb.detectAndCompute(g2, None)
    if d1 is None or d2 is None or len(k1) < 4 or len(k2) < 4:
        return None, 0, 0, "too few features (flat or tiny images)"
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(d2, d1, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < min_inliers:
        return None, len(good), 0, f"only {len(good)} distinctive matches (need {min_inliers})"
    src = np.float32([k2[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([k1[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    H, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_threshold)
    if H is None or mask is None:
        return None, len(good), 0, "no homography found"
    inl = int(mask.sum())
    if inl < min_inliers:
        return None, len(good), inl, f"only {inl} RANSAC inliers (need {min_inliers})"
    return H, len(good), inl, ""


def _plausible(H: np.ndarray, w: int, h: int, max_shift: float) -> str:
    """Empty string if H is a sane plate-to-frame warp, else the reason."""
    if not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return "degenerate homography"
    Hn = H / H[2, 2]
    det = np.linalg.det(Hn[:2, :2])
    if not 0.5 < det < 2.0:
        return f"implausible scale change (area factor {det:.2f})"
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    c = np.concatenate([corners, np.ones((4, 1), np.float32)], axis=1) @ Hn.T
    if np.any(c[:, 2] <= 1e-6):
        return "homography folds the frame"
    moved = c[:, :2] / c[:, 2:3]
    shift = np.abs(moved - corners).max() / max(w, h)
    if shift > max_shift:
        return f"corners move by {shift:.0%} of the frame (limit {max_shift:.0%})"
    return ""


def align_plate(image: np.ndarray, plate: np.ndarray, *, warn: bool = True, max_shift: float = 0.35,
                min_inliers: int = 15) -> AlignResult:
    """Warp ``plate`` onto ``image`` (both HxWx3 RGB, uint8 or float in [0,1]).

    As in BGMv2's HomographicAlignment, frame areas the warped plate does not cover are filled from the image.
    On any failure the plate is returned unchanged (ok=False) and a PlateAlignmentWarning is emitted.
    """
    import cv2

    image = np.asarray(image)
    plate = np.asarray(plate)
    if image.ndim != 3 or plate.ndim != 3:
        return _fail(plate, "inputs must be HxWx3 images", warn)
    h, w = image.shape[:2]
    img_u8, plate_u8 = _to_u8(image), _to_u8(plate)
    if plate_u8.shape[:2] != (h, w):
        plate_u8 = cv2.resize(plate_u8, (w, h), interpolation=cv2.INTER_AREA)
    try:
        H, n_match, n_inl, reason = estimate_homography(img_u8, plate_u8, min_inliers=min_inliers)
    except cv2.error as e:  # pragma: no cover - OpenCV internal failure
        return _fail(plate, f"OpenCV error: {str(e).strip().splitlines()[-1]}", warn)
    if H is None:
        return _fail(plate, reason, warn, n_match, n_inl)
    reason = _plausible(H, w, h, max_shift)
    if reason:
        return _fail(plate, reason, warn, n_match, n_inl)
    src = plate if plate.shape[:2] == (h, w) else cv2.resize(plate, (w, h), interpolation=cv2.INTER_AREA)
    src = np.ascontiguousarray(src)
    warped = cv2.warpPerspective(src, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpPerspective(np.ones((h, w), np.float32), H, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    hole = cover < 0.999
    if image.dtype == warped.dtype:
        fill = image
    else:
        fill = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
        fill = fill.astype(warped.dtype) if warped.dtype != np.uint8 else _to_u8(fill)
    warped[hole] = fill[hole]
    return AlignResult(plate=warped, ok=True, homography=H, matches=n_match, inliers=n_inl)
