"""Evaluation inputs: prediction/GT/trimap folders paired by file stem, Composition-1k style composites, video.

Pairing: every file in the ground-truth folder is one item, named by its file stem (without a ``_alpha``/``_gt``
suffix); its prediction is ``STEM.*`` or ``STEM_alpha.*``/``STEM_matte.*`` (what ``matte`` writes) and its trimap,
when a trimap folder is given, ``STEM.*`` or ``STEM_trimap.*`` (what ``trimap`` writes), whatever the extension.
A missing partner, two candidate partners, an unreadable file or a size mismatch is a per-item error (the run goes
on and exits 1). A missing or empty folder is a usage error (exit 2).

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

from ..errors import InputError, UsageError

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
    if not data.size:
        raise InputError(f"{path}: empty file (0 bytes); write it again (an interrupted export?)", path=path)
    img = cv2.imdecode(data, flags)
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
#
# Same stem-suffix rules as the other verbs (``cli/_batch.py``, replicated here so that eval does not depend on the
# batch module): ``matte`` writes ``STEM_alpha.png``, ``trimap`` writes ``STEM_trimap.png``. Suffixes are matched
# case-insensitively; every candidate is equally good, so two candidates for one item is an error for that item.

#: prediction files: ``STEM_alpha.*`` (``matte``'s default), ``STEM_matte.*``, ``STEM_pha.*`` ...
PRED_SUFFIXES = ("_alpha", "-alpha", ".alpha", "_matte", "-matte", "_pha")
#: ground-truth files may also be named ``STEM_alpha.*`` or ``STEM_gt.*`` (the item is then named ``STEM``)
GT_SUFFIXES = PRED_SUFFIXES + ("_gt", "-gt")
#: trimap files: ``STEM_trimap.*`` (``trimap``'s default) ...
TRIMAP_SUFFIXES = ("_trimap", "-trimap", ".trimap", "_tri")
#: clean background plates
BG_SUFFIXES = ("_back", "_bg", "-bg", "_bgr", "_plate", "_background")
#: input-image stems are also tried without these (``0001_img`` <-> ``0001_trimap``)
IMAGE_SUFFIXES = ("_img", "_image", "_rgb", "_input", "_comp")
#: other outputs of ``matte`` that may sit next to its alphas; in a prediction folder they are not predictions
OTHER_OUTPUT_SUFFIXES = ("_foreground", "_fg", "_fgr", "_rgba", "_composite")


def strip_suffix(stem: str, suffixes) -> str:
    """``stem`` without the first matching suffix (case-insensitive), or ``stem`` itself."""
    low = stem.lower()
    for suf in suffixes:
        if low.endswith(suf.lower()) and len(stem) > len(suf):
            return stem[: -len(suf)]
    return stem


def list_files(folder: str | os.PathLike, what: str, flag: str, exts=IMAGE_EXTS) -> list[tuple[str, str]]:
    """[(stem, path)] of the image files directly in ``folder`` (natural order), or the one file given.

    A missing folder, or one without any image, is a usage error (exit 2), as for the other verbs.
    """
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        return [(Path(folder).stem, folder)]
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {folder}: {what} folder not found; pass an existing folder", path=folder)
    out = []
    for name in sorted(os.listdir(folder), key=natural_key):
        p = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(p) or Path(name).suffix.lower() not in exts:
            continue
        out.append((Path(name).stem, p))
    if not out:
        raise UsageError(f"{flag} {folder}: no {what} images found (extensions: {', '.join(IMAGE_EXTS)})",
                         path=folder)
    return out


class StemIndex:
    """Files of one folder, looked up by ``NAME`` or ``NAME + suffix`` (case-insensitive)."""

    def __init__(self, files: list[tuple[str, str]], what: str, folder):
        self.what = what
        self.folder = os.fspath(folder)
        self.by_stem: dict[str, list[str]] = {}
        for stem, p in files:
            self.by_stem.setdefault(stem.lower(), []).append(p)

    def candidates(self, names, suffixes=()) -> list[str]:
        hits: list[str] = []
        for n in dict.fromkeys(names):
            for key in (n, *(n + s for s in suffixes)):
                hits.extend(self.by_stem.get(key.lower(), []))
        return list(dict.fromkeys(hits))

    def find(self, names, suffixes, owner: str, hint: str) -> tuple[str | None, str | None]:
        """(path, None) for exactly one candidate; (None, error) for none or several."""
        names = list(dict.fromkeys(names))
        hits = self.candidates(names, suffixes)
        if len(hits) == 1:
            return hits[0], None
        if not hits:
            pats = " or ".join(f"{n}.*" for n in names)
            sfx = f" or {names[-1]}{suffixes[0]}.*" if suffixes else ""
            return None, f"{owner}: no {self.what} named {pats}{sfx} in {self.folder}; {hint}"
        shown = ", ".join(hits[:4]) + (f" and {len(hits) - 4} more" if len(hits) > 4 else "")
        return None, f"{owner}: {len(hits)} {self.what} files match ({shown}); keep one per name stem"


def _group_by_base(files: list[tuple[str, str]], suffixes, what: str) -> tuple[dict[str, tuple[str, str]], list[Item]]:
    """{base: (stem, path)} with ``base`` = stem without a suffix; a second file with the same base is an error."""
    out: dict[str, tuple[str, str]] = {}
    keys: dict[str, str] = {}
    errors: list[Item] = []
    for stem, p in files:
        base = strip_suffix(stem, suffixes)
        k = base.lower()
        if k in keys:
            errors.append(Item(stem, error=f"{p}: another {what} file has the same name ({out[keys[k]][1]}); "
                                           f"keep one of them"))
            continue
        keys[k] = base
        out[base] = (stem, p)
    return out, errors


def _same_folder(a, b) -> bool:
    return a is not None and b is not None and os.path.isdir(a) and os.path.realpath(a) == os.path.realpath(b)


def pair_folders(pred_dir, gt_dir, trimap_dir=None) -> list[Item]:
    """Pair prediction, ground-truth and (optional) trimap files by stem; missing partners become item errors.

    For a ground truth ``STEM.*`` (or ``STEM_alpha.*``/``STEM_gt.*``) the prediction is ``STEM.*`` or
    ``STEM_alpha.*``/``STEM_matte.*``/...; the trimap is ``STEM.*`` or ``STEM_trimap.*``. The item is named ``STEM``.
    """
    if _same_folder(pred_dir, gt_dir):
        raise UsageError(f"--pred and --gt are the same folder ({gt_dir}); keep predictions and ground truth apart")
    gt_files = list_files(gt_dir, "ground-truth", "--gt")
    pred_files = list_files(pred_dir, "prediction", "--pred")
    if trimap_dir is not None:
        tri_files = list_files(trimap_dir, "trimap", "--trimap")
        if _same_folder(trimap_dir, gt_dir):  # one folder holding STEM.png and STEM_trimap.png
            gt_files = [(s, p) for s, p in gt_files if strip_suffix(s, TRIMAP_SUFFIXES) == s]
            tri_files = [(s, p) for s, p in tri_files if strip_suffix(s, TRIMAP_SUFFIXES) != s]
        tris = StemIndex(tri_files, "trimap", trimap_dir)
    gts, items = _group_by_base(gt_files, GT_SUFFIXES, "ground-truth")
    preds = StemIndex(pred_files, "prediction", pred_dir)
    used: set[str] = set()
    for base, (stem, g) in gts.items():
        it = Item(base, gt=g)
        names = [stem, base]
        cands = preds.candidates(names, PRED_SUFFIXES)
        used.update(cands)
        it.pred, it.error = preds.find(names, PRED_SUFFIXES, g, "add it or remove the ground truth")
        if it.error is None and trimap_dir is not None:
            it.trimap, it.error = tris.find(names, TRIMAP_SUFFIXES, g, "add it or drop --trimap")
        items.append(it)
    for stem, p in pred_files:
        if p in used or strip_suffix(stem, OTHER_OUTPUT_SUFFIXES) != stem:
            continue  # paired, or another output of `matte` (foreground, rgba, composite) next to the alphas
        base = strip_suffix(stem, PRED_SUFFIXES)
        items.append(Item(base, pred=p, error=f"{p}: no ground truth named {base}.* in {gt_dir}; "
                                              f"add it or remove the prediction"))
    items.sort(key=lambda it: natural_key(it.name))
    return items


def pair_model_inputs(images_dir, gt_dir, trimaps_dir=None, backgrounds_dir=None) -> list[Item]:
    """Items for ``--model``: image + GT (+ trimap, + background plate) by stem, with the suffix rules above."""
    img_files = list_files(images_dir, "input", "--images")
    gt_files = list_files(gt_dir, "ground-truth", "--gt")
    tris = (StemIndex(list_files(trimaps_dir, "trimap", "--trimaps"), "trimap", trimaps_dir)
            if trimaps_dir is not None else None)
    bgs = (StemIndex(list_files(backgrounds_dir, "background", "--backgrounds"), "background", backgrounds_dir)
           if backgrounds_dir is not None else None)
    gts = StemIndex(gt_files, "ground truth", gt_dir)
    partners = {os.path.realpath(p) for idx in (tris, bgs, gts) if idx is not None
                for ps in idx.by_stem.values() for p in ps}
    items: list[Item] = []
    seen: dict[str, str] = {}
    used: set[str] = set()
    shared = any(_same_folder(images_dir, d) for d in (gt_dir, trimaps_dir, backgrounds_dir))
    for stem, ip in img_files:
        if shared and os.path.realpath(ip) in partners:
            continue  # a partner file sharing the images' folder
        if stem.lower() in seen:
            items.append(Item(stem, image=ip, error=f"{ip}: another input image has the same name stem "
                                                    f"({seen[stem.lower()]}); keep one of them"))
            continue
        seen[stem.lower()] = ip
        names = [stem, strip_suffix(stem, IMAGE_SUFFIXES)]
        it = Item(stem, image=ip)
        used.update(gts.candidates(names, GT_SUFFIXES))
        it.gt, it.error = gts.find(names, GT_SUFFIXES, ip, "add it or remove the image")
        if it.error is None and tris is not None:
            it.trimap, it.error = tris.find(names, TRIMAP_SUFFIXES, ip, "add it or drop --trimaps")
        if it.error is None and bgs is not None:
            it.background, it.error = bgs.find(names, BG_SUFFIXES, ip, "add it or drop --backgrounds")
        items.append(it)
    for stem, g in gt_files:
        if g not in used and not (_same_folder(gt_dir, images_dir) or _same_folder(gt_dir, trimaps_dir)):
            base = strip_suffix(stem, GT_SUFFIXES)
            items.append(Item(base, gt=g, error=f"{g}: no image named {base}.* in {images_dir}; add it or remove "
                                                f"the ground truth"))
    items.sort(key=lambda it: natural_key(it.name))
    return items


def pairs_composition(fg_dir, alpha_dir, bg_dir, per_fg: int) -> list[Item]:
    """Composition-1k pairing: fg i (sorted) x backgrounds i*N .. i*N+N-1 (sorted, modulo their number)."""
    if per_fg < 1:
        raise UsageError(f"--per-fg must be at least 1, got {per_fg}")
    fg_files = list_files(fg_dir, "foreground", "--fg")
    alphas = StemIndex(list_files(alpha_dir, "alpha", "--alpha"), "alpha", alpha_dir)
    bg_list = [p for _, p in list_files(bg_dir, "background", "--bg")]
    items: list[Item] = []
    seen: dict[str, str] = {}
    for stem, fp in fg_files:
        if stem.lower() in seen:
            items.append(Item(stem, fg=fp, error=f"{fp}: another foreground file has the same name stem "
                                                 f"({seen[stem.lower()]}); keep one of them"))
            continue
        seen[stem.lower()] = fp
    fgs = [(s, p) for s, p in fg_files if seen.get(s.lower()) == p]
    for i, (stem, fp) in enumerate(fgs):
        names = [stem, strip_suffix(stem, ("_foreground", "_fg", "-fg", "_fgr"))]
        ap, err = alphas.find(names, GT_SUFFIXES, fp, "add it or remove the foreground")
        for j in range(per_fg):
            b = i * per_fg + j
            items.append(Item(f"{stem}_{b}", fg=fp, gt=ap, background=bg_list[b % len(bg_list)], error=err))
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


def list_sequences(path, what: str, flag: str = "--pred") -> dict[str, str]:
    """{name: path} of the sequences under ``path``.

    A video file or a folder of frames is one sequence (named by its stem); a folder holding video files and/or
    sub-folders of frames is one sequence per entry.
    """
    path = os.fspath(path)
    if is_video_file(path):
        return {Path(path).stem: path}
    if not os.path.isdir(path):
        raise UsageError(f"{flag} {path}: {what} not found; pass a video file or a folder of frames", path=path)
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
        raise UsageError(f"{flag} {path}: no frames, video files or sequence folders found in the {what}", path=path)
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
