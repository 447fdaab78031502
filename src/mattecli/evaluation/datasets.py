"""Evaluation inputs: prediction/GT/trimap folders paired by file stem, Composition-1k style composites, video.

Pairing: every file in the ground-truth folder is one item, named by its file stem; its prediction (and trimap,
when a trimap folder is given) is the file with the same stem in the other folder, whatever its extension.
A missing partner, an unreadable file or a size mismatch is a per-item error (the run goes on and exits 1).

Composition-1k style (``pairs_composition``): foregrounds are taken in sorted order; foreground ``i`` is composited
over backgrounds ``i*N .. i*N+N-1`` of the sorted background list (modulo its length), like DIM's
``Composition_code.py`` (``num_bgs = 20`` for the test set). The item name is ``<fg stem>_<background index>``.
Each background is scaled up (bicubic), only when smaller, by ``max(w/bw, h/bh)`` so that it covers the
foreground, then its top-left ``h x w`` is used; the image is ``alpha*F + (1-alpha)*B`` in float32, truncated to
uint8 (DIM's ``composite4``).

Trimap recipe (``trimap_from_alpha``), used when no trimap is given: with an elliptical structuring element of
diameter ``2r+1`` (default r = 10 px), pixels outside ``dilate(alpha > 0)`` are 0, pixels inside
``erode(alpha == 255)`` are 255, everything else is 128 (unknown).

Video: a sequence is a folder of frames (sorted by natural order of their names) or a video file (decoded with
PyAV; the alpha channel when the stream has one, otherwise the first colour channel).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingInput, UsageError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr", ".pgm", ".ppm", ".pbm")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


def natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


@dataclass
class Item:
    """One thing to score. ``error`` set = a per-item failure reported instead of scores."""

    name: str
    pred: str | None = None
    gt: str | None = None
    trimap: str | None = None
    image: str | None = None
    background: str | None = None
    fg: str | None = None
    error: str | None = None


# -- reading ----------------------------------------------------------------------------------------------------

def _imdecode(path: str, flags: int):
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e}); check the path and permissions", path=path) from None
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise InputError(f"{path}: not a readable image; convert it to PNG", path=path)
    return img


def read_alpha(path: str | os.PathLike) -> np.ndarray:
    """An alpha/trimap file -> HxW uint8. Gray as is; 16-bit -> 8-bit (rounded); RGBA -> its alpha; RGB -> R."""
    import cv2

    from .metrics import as_alpha_u8

    path = os.fspath(path)
    img = _imdecode(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., 2]  # OpenCV is BGR: channel 1 in MATLAB's order is R
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., 3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype not in (np.uint8, np.uint16) and not np.issubdtype(img.dtype, np.floating):
        raise InputError(f"{path}: unsupported sample type {img.dtype}; save it as an 8-bit PNG", path=path)
    return as_alpha_u8(img, path)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file -> HxWx3 uint8 RGB (EXIF orientation applied)."""
    import cv2

    path = os.fspath(path)
    img = _imdecode(path, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[..., ::-1])


def read_trimap(path: str | os.PathLike) -> np.ndarray:
    """Trimap file -> HxW uint8 as stored (unknown = exactly 128, as the official code)."""
    return read_alpha(path)


# -- listing and pairing ----------------------------------------------------------------------------------------

def list_by_stem(folder: str | os.PathLike, what: str, exts=IMAGE_EXTS) -> tuple[dict[str, str], list[Item]]:
    """{stem: path} of the files in ``folder`` with an image extension, and errors for duplicate stems."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        if os.path.isfile(folder):
            return {Path(folder).stem: folder}, []
        raise MissingInput(f"{folder}: {what} folder not found; pass an existing folder", path=folder)
    out: dict[str, str] = {}
    errors: list[Item] = []
    for name in sorted(os.listdir(folder), key=natural_key):
        p = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(p) or Path(name).suffix.lower() not in exts:
            continue
        stem = Path(name).stem
        if stem in out:
            errors.append(Item(stem, error=f"{p}: another {what} file has the same name stem ({out[stem]}); "
                                           f"keep one of them"))
            continue
        out[stem] = p
    return out, errors


def pair_folders(pred_dir, gt_dir, trimap_dir=None) -> list[Item]:
    """Pair prediction, ground-truth and (optional) trimap files by stem; missing partners become item errors."""
    gts, errs = list_by_stem(gt_dir, "ground-truth")
    preds, perrs = list_by_stem(pred_dir, "prediction")
    tris, terrs = list_by_stem(trimap_dir, "trimap") if trimap_dir is not None else ({}, [])
    if not gts:
        raise MissingInput(f"{gt_dir}: no ground-truth images found (extensions: {', '.join(IMAGE_EXTS)})", path=gt_dir)
    items = errs + perrs + terrs
    for stem, g in gts.items():
        it = Item(stem, pred=preds.get(stem), gt=g, trimap=tris.get(stem))
        if it.pred is None:
            it.error = f"{g}: no prediction named {stem}.* in {pred_dir}; add it or remove the ground truth"
        elif trimap_dir is not None and it.trimap is None:
            it.error = f"{g}: no trimap named {stem}.* in {trimap_dir}; add it or drop --trimap"
        items.append(it)
    for stem, p in preds.items():
        if stem not in gts:
            items.append(Item(stem, pred=p, error=f"{p}: no ground truth named {stem}.* in {gt_dir}; "
                                                  f"add it or remove the prediction"))
    items.sort(key=lambda it: natural_key(it.name))
    return items


def pair_model_inputs(images_dir, gt_dir, trimaps_dir=None, backgrounds_dir=None) -> list[Item]:
    """Items for ``--model``: image + GT (+ trimap, + background plate) by stem."""
    imgs, errs = list_by_stem(images_dir, "image")
    gts, gerrs = list_by_stem(gt_dir, "ground-truth")
    tris, terrs = list_by_stem(trimaps_dir, "trimap") if trimaps_dir is not None else ({}, [])
    bgs, berrs = list_by_stem(backgrounds_dir, "background") if backgrounds_dir is not None else ({}, [])
    if not imgs:
        raise MissingInput(f"{images_dir}: no images found (extensions: {', '.join(IMAGE_EXTS)})", path=images_dir)
    items = errs + gerrs + terrs + berrs
    for stem, ip in imgs.items():
        it = Item(stem, image=ip, gt=gts.get(stem), trimap=tris.get(stem), background=bgs.get(stem))
        if it.gt is None:
            it.error = f"{ip}: no ground truth named {stem}.* in {gt_dir}; add it or remove the image"
        elif trimaps_dir is not None and it.trimap is None:
            it.error = f"{ip}: no trimap named {stem}.* in {trimaps_dir}; add it or drop --trimaps"
        elif backgrounds_dir is not None and it.background is None:
            it.error = f"{ip}: no background named {stem}.* in {backgrounds_dir}; add it or drop --backgrounds"
        items.append(it)
    for stem, g in gts.items():
        if stem not in imgs:
            items.append(Item(stem, gt=g, error=f"{g}: no image named {stem}.* in {images_dir}; add it or remove "
                                                f"the ground truth"))
    items.sort(key=lambda it: natural_key(it.name))
    return items


def pairs_composition(fg_dir, alpha_dir, bg_dir, per_fg: int) -> list[Item]:
    """Composition-1k pairing: fg i (sorted) x backgrounds i*N .. i*N+N-1 (sorted, modulo their number)."""
    if per_fg < 1:
        raise UsageError(f"--per-fg must be at least 1, got {per_fg}")
    fgs, ferrs = list_by_stem(fg_dir, "foreground")
    alphas, aerrs = list_by_stem(alpha_dir, "alpha")
    bgs, berrs = list_by_stem(bg_dir, "background")
    if not fgs:
        raise MissingInput(f"{fg_dir}: no foreground images found", path=fg_dir)
    if not bgs:
        raise MissingInput(f"{bg_dir}: no background images found", path=bg_dir)
    bg_list = list(bgs.values())
    items = ferrs + aerrs + berrs
    for i, (stem, fp) in enumerate(fgs.items()):
        ap = alphas.get(stem)
        for j in range(per_fg):
            b = i * per_fg + j
            it = Item(f"{stem}_{b}", fg=fp, gt=ap, background=bg_list[b % len(bg_list)])
            if ap is None:
                it.error = f"{fp}: no alpha named {stem}.* in {alpha_dir}; add it or remove the foreground"
            items.append(it)
    return items


# -- compositing and trimaps ------------------------------------------------------------------------------------

def fit_background_cover(bg: np.ndarray, h: int, w: int) -> np.ndarray:
    """DIM rule: upscale (bicubic) by max(w/bw, h/bh) only when the plate is smaller, then take the top-left h x w."""
    import cv2

    bh, bw = bg.shape[:2]
    ratio = max(w / bw, h / bh)
    if ratio > 1:
        nw, nh = int(np.ceil(bw * ratio)), int(np.ceil(bh * ratio))
        bg = cv2.resize(bg, (nw, nh), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(bg[:h, :w])


def composite(fg: np.ndarray, alpha_u8: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """alpha*F + (1-alpha)*B in float32, truncated to uint8 (DIM ``composite4``). bg is fitted to fg first."""
    h, w = alpha_u8.shape
    if fg.shape[:2] != (h, w):
        raise InputError(f"foreground is {fg.shape[1]}x{fg.shape[0]} but alpha is {w}x{h}; they must match")
    b = fit_background_cover(bg, h, w).astype(np.float32)
    a = (alpha_u8.astype(np.float32) / np.float32(255.0))[..., None]
    im = a * fg.astype(np.float32) + (np.float32(1.0) - a) * b
    return np.clip(im, 0, 255).astype(np.uint8)


def trimap_from_alpha(alpha_u8: np.ndarray, radius: int = 10) -> np.ndarray:
    """Documented recipe: 0 outside dilate(alpha>0), 255 inside erode(alpha==255), else 128 (ellipse 2r+1)."""
    import cv2

    a = np.asarray(alpha_u8)
    if radius < 0:
        raise UsageError(f"--trimap-radius must be >= 0, got {radius}")
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg = (a == 255).astype(np.uint8)
    anyfg = (a > 0).astype(np.uint8)
    if radius > 0:
        fg = cv2.erode(fg, k, borderType=cv2.BORDER_REPLICATE)
        anyfg = cv2.dilate(anyfg, k, borderType=cv2.BORDER_REPLICATE)
    tri = np.full(a.shape, 128, np.uint8)
    tri[anyfg == 0] = 0
    tri[fg == 1] = 255
    return tri


# -- video ------------------------------------------------------------------------------------------------------

def is_video_file(path: str) -> bool:
    return os.path.isfile(path) and Path(path).suffix.lower() in VIDEO_EXTS


def list_sequences(path, what: str) -> dict[str, str]:
    """{name: path} of the sequences under ``path``.

    A video file or a folder of frames is one sequence (named by its stem); a folder holding video files and/or
    sub-folders of frames is one sequence per entry.
    """
    path = os.fspath(path)
    if is_video_file(path):
        return {Path(path).stem: path}
    if not os.path.isdir(path):
        raise MissingInput(f"{path}: {what} not found; pass a video file or a folder of frames", path=path)
    entries = sorted(os.listdir(path), key=natural_key)
    frames = [e for e in entries if Path(e).suffix.lower() in IMAGE_EXTS and os.path.isfile(os.path.join(path, e))]
    if frames:
        return {Path(path).name: path}
    out = {}
    for e in entries:
        p = os.path.join(path, e)
        if e.startswith("."):
            continue
        if is_video_file(p):
            out[Path(e).stem] = p
        elif os.path.isdir(p):
            out[e] = p
    if not out:
        raise MissingInput(f"{path}: no frames, video files or sequence folders found in the {what}", path=path)
    return out


def read_sequence(path: str) -> list[np.ndarray]:
    """All frames of a sequence as HxW uint8 alphas."""
    if is_video_file(path):
        return read_video_alpha(path)
    names = sorted((e for e in os.listdir(path) if Path(e).suffix.lower() in IMAGE_EXTS), key=natural_key)
    if not names:
        raise InputError(f"{path}: no frames found; put the frames (PNG) in this folder", path=path)
    return [read_alpha(os.path.join(path, n)) for n in names]


def read_video_alpha(path: str) -> list[np.ndarray]:
    """Decode a video with PyAV: the alpha plane when the pixel format has one, else the first colour channel."""
    import av

    frames = []
    try:
        with av.open(path) as c:
            stream = c.streams.video[0]
            for fr in c.decode(stream):
                fmt = fr.format.name
                has_alpha = any(getattr(ch, "is_alpha", False) for ch in fr.format.components)
                if has_alpha:
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="rgba")[..., 3]))
                elif fmt in ("gray", "gray8", "gray16le", "gray16be"):
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="gray")))
                else:
                    frames.append(np.ascontiguousarray(fr.to_ndarray(format="rgb24")[..., 0]))
    except (av.error.FFmpegError, IndexError) as e:
        raise InputError(f"{path}: cannot decode video ({e}); re-encode it or pass a folder of PNG frames",
                         path=path) from None
    if not frames:
        raise InputError(f"{path}: no video frames decoded", path=path)
    return frames
