"""Which files ``eval`` scores together, as :class:`mattecli.batch.Item` lists (one item = one row of the report).

Folders are expanded by the batch layer (:func:`mattecli.batch.expand_inputs`: recursive, natural order, hidden and
``*.part`` files skipped, :data:`mattecli.formats.IMAGE_EXTS`), and every item is named by its relative stem
(``Item.relstem``: ``GT01``, ``sub/GT01``). Suffixes are the batch layer's (:data:`mattecli.batch.SUFFIXES`).

* ``--pred/--gt`` (:func:`pair_folders`): every ground-truth file is one item, named by its stem without an alpha
  suffix (``GT01_alpha.png``/``GT01_gt.png`` -> ``GT01``). Its prediction is ``GT01.*`` or ``GT01_alpha.*``/
  ``GT01_matte.*``/... (what ``matte`` writes), its trimap ``GT01.*`` or ``GT01_trimap.*`` (what ``trimap`` writes),
  whatever the extension. Unlike the other verbs' pairing (which prefers the exact stem), every candidate is equally
  good here: two candidates for one item is that item's error, so a score never silently comes from the wrong file.
  A prediction without ground truth is an error too; ``matte``'s other outputs (``_foreground``, ``_rgba``...) in
  the prediction folder are ignored.
* ``--model --images`` (:func:`pair_model_inputs`): the images are inputs paired with ``--gt``, ``--trimap`` and
  ``--bg`` exactly as ``matte`` pairs its partners (:func:`mattecli.batch.pair`); ground truths that no image
  used are errors.
* ``--foreground/--alpha/--backgrounds`` (:func:`pairs_composition`): foreground ``i`` (natural order) is composited over backgrounds
  ``i*N .. i*N+N-1`` of the background list (modulo its length), as DIM's ``Composition_code.py`` (``num_bgs = 20``
  for the test set). The item is named ``<fg stem>_<background index>``; its trimap, when a folder is given, is
  named after the item or after the foreground.

A missing partner, two candidates or a duplicate name is that item's ``problem`` (the run goes on and exits 1). A
missing or empty folder is a usage error (exit 2).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..batch import SUFFIXES, Item, drop_partner_inputs, expand_inputs, listed, natural_key, pair, strip_suffix
from ..errors import UsageError
from ..formats import IMAGE_EXTS

#: prediction and ground-truth files may carry an alpha suffix (``STEM_alpha.*``, ``STEM_gt.*``...)
ALPHA_SUFFIXES = SUFFIXES["alpha"]
TRIMAP_SUFFIXES = SUFFIXES["trimap"]
FG_SUFFIXES = SUFFIXES["foreground"]
#: other outputs of ``matte`` that may sit next to its alphas; in a prediction folder they are not predictions
OTHER_OUTPUT_SUFFIXES = SUFFIXES["foreground"] + ("_rgba", "_composite")


def list_files(folder, what: str, flag: str, exclude: Sequence | None = None) -> list[Item]:
    """The image files under ``folder`` (or the one file given) as Items; usage errors name the flag."""
    p = Path(os.fspath(folder))
    if not p.exists():
        raise UsageError(f"{flag} {folder}: {what} folder not found; pass an existing folder", path=folder)
    try:
        return expand_inputs([p], what=f"{flag} {what}", exclude=exclude)
    except UsageError:
        raise UsageError(f"{flag} {folder}: no {what} images found (extensions: {', '.join(IMAGE_EXTS)})",
                         path=folder) from None


def _rel_base(f: Item, suffixes) -> str:
    """``sub/GT01`` for ``sub/GT01_alpha.png``: the relative stem without a suffix."""
    base = strip_suffix(f.stem, suffixes) or f.stem
    return (f.rel.parent / base).as_posix()


def _renamed(f: Item, name: str) -> Path:
    """``f.rel`` renamed so that ``relstem`` is ``name`` (the item's name in the report and in ``--save-pred``)."""
    return Path(name + f.rel.suffix)


class StemIndex:
    """Files of one folder, looked up by relative stem (``sub/NAME``), else by bare stem anywhere, each with or
    without a suffix (case-insensitive)."""

    def __init__(self, files: list[Item], what: str, folder):
        self.what = what
        self.folder = os.fspath(folder)
        self.tables: tuple[dict, dict] = ({}, {})
        for f in files:
            self.tables[0].setdefault(f.relstem.lower(), []).append(f.path)
            self.tables[1].setdefault(f.stem.lower(), []).append(f.path)

    def candidates(self, names, suffixes=()) -> list[Path]:
        for level, table in enumerate(self.tables):
            hits: list[Path] = []
            for n in dict.fromkeys(names):
                for key in (n, *(n + s for s in suffixes)):
                    hits.extend(table.get((key if level == 0 else key.rsplit("/", 1)[-1]).lower(), []))
            if hits:
                return list(dict.fromkeys(hits))
        return []

    def find(self, names, suffixes, owner, hint: str) -> tuple[Path | None, str | None]:
        """(path, None) for exactly one candidate; (None, error) for none or several."""
        names = list(dict.fromkeys(names))
        hits = self.candidates(names, suffixes)
        if len(hits) == 1:
            return hits[0], None
        if not hits:
            pats = " or ".join(f"{n}.*" for n in names)
            sfx = f" or {names[-1]}{suffixes[0]}.*" if suffixes else ""
            return None, f"{owner}: no {self.what} named {pats}{sfx} in {self.folder}; {hint}"
        return None, (f"{owner}: {len(hits)} {self.what} files match ({listed([str(h) for h in hits])}); "
                      f"keep one per name stem")


def _attach(it: Item, kind: str, found: tuple) -> None:
    """Record a :meth:`StemIndex.find` result on ``it``: the partner, or the item's problem."""
    path, err = found
    if path is not None:
        it.partners[kind] = path
    it.problem = it.problem or err


def _same_folder(a, b) -> bool:
    return a is not None and b is not None and os.path.isdir(a) and os.path.realpath(a) == os.path.realpath(b)


def _unique_names(files: list[Item], name_of, what: str) -> tuple[list[tuple[str, Item]], list[Item]]:
    """[(name, file)] with the first file of each name; later files with a name already taken become error items."""
    first: dict[str, Item] = {}
    out, errors = [], []
    for f in files:
        name = name_of(f)
        if name.lower() in first:
            errors.append(Item(f.path, _renamed(f, name), problem=f"{f.path}: another {what} file has the same name "
                                                                   f"({first[name.lower()].path}); keep one of them"))
            continue
        first[name.lower()] = f
        out.append((name, f))
    return out, errors


def pair_folders(pred_dir, gt_dir, trimap_dir=None) -> list[Item]:
    """Items for ``--pred/--gt [--trimap]``: ``partners`` has ``gt``, ``pred`` (the item's path when found) and
    ``trimap``; ground truths without a prediction and predictions without ground truth are items with a problem."""
    if _same_folder(pred_dir, gt_dir):
        raise UsageError(f"--pred and --gt are the same folder ({gt_dir}); keep predictions and ground truth apart")
    gt_files = list_files(gt_dir, "ground-truth", "--gt")
    pred_files = list_files(pred_dir, "prediction", "--pred")
    tris = None
    if trimap_dir is not None:
        tri_files = list_files(trimap_dir, "trimap", "--trimap")
        if _same_folder(trimap_dir, gt_dir):  # one folder holding STEM.png and STEM_trimap.png
            gt_files = [f for f in gt_files if strip_suffix(f.stem, TRIMAP_SUFFIXES) is None]
            tri_files = [f for f in tri_files if strip_suffix(f.stem, TRIMAP_SUFFIXES) is not None]
        tris = StemIndex(tri_files, "trimap", trimap_dir)
    gts, items = _unique_names(gt_files, lambda f: _rel_base(f, ALPHA_SUFFIXES), "ground-truth")
    preds = StemIndex(pred_files, "prediction", pred_dir)
    used: set = set()
    for name, g in gts:
        names = [g.relstem, name]
        used.update(preds.candidates(names, ALPHA_SUFFIXES))
        p, err = preds.find(names, ALPHA_SUFFIXES, g.path, "add it or remove the ground truth")
        it = Item(p or g.path, _renamed(g, name), partners={"gt": g.path}, problem=err)
        if p is not None:
            it.partners["pred"] = p
            if tris is not None:
                _attach(it, "trimap", tris.find(names, TRIMAP_SUFFIXES, p, "add it or drop --trimap"))
        items.append(it)
    for f in pred_files:
        if f.path in used or strip_suffix(f.stem, OTHER_OUTPUT_SUFFIXES) is not None:
            continue  # paired, or another output of `matte` (foreground, rgba, composite) next to the alphas
        name = _rel_base(f, ALPHA_SUFFIXES)
        items.append(Item(f.path, _renamed(f, name), problem=f"{f.path}: no ground truth named {name}.* in {gt_dir}; "
                                                             f"add it or remove the prediction"))
    items.sort(key=lambda it: natural_key(it.relstem))
    return items


def pair_model_inputs(images_dir, gt_dir, trimaps_dir=None, backgrounds_dir=None,
                      exclude: Sequence | None = None) -> list[Item]:
    """Items for ``--model --images``: the image is the item's path; ``partners`` has ``alpha`` (the ground truth),
    ``trimap`` and ``bg``, paired as ``matte`` pairs them. ``exclude``: folders never listed (``--save-pred``)."""
    images = list_files(images_dir, "input", "--images", exclude)
    gt_files = list_files(gt_dir, "ground-truth", "--gt", exclude)
    specs = {"alpha": gt_dir, "trimap": trimaps_dir, "bg": backgrounds_dir}
    drop_partner_inputs(images, specs)
    for kind, flag in (("alpha", "--gt"), ("trimap", "--trimap"), ("bg", "--bg")):
        if specs[kind] is not None:
            list_files(specs[kind], {"trimap": "trimap", "bg": "background"}.get(kind, "ground-truth"), flag, exclude)
            pair(images, specs[kind], kind, flag=flag, exclude=exclude)
    named, items = _unique_names(images, lambda f: f.relstem, "input image")
    items += [f for _, f in named]
    if not (_same_folder(gt_dir, images_dir) or _same_folder(gt_dir, trimaps_dir)):
        used = {os.path.realpath(it.partners["alpha"]) for it in images if "alpha" in it.partners}
        for g in gt_files:
            if os.path.realpath(g.path) not in used:
                name = _rel_base(g, ALPHA_SUFFIXES)
                items.append(Item(g.path, _renamed(g, name), problem=f"{g.path}: no image named {name}.* in "
                                                                     f"{images_dir}; add it or remove the ground truth"))
    items.sort(key=lambda it: natural_key(it.relstem))
    return items


def pairs_composition(fg_dir, alpha_dir, bg_dir, per_fg: int, trimap_dir=None) -> list[Item]:
    """Composition-1k items: the foreground is the item's path; ``partners`` has ``alpha``, ``bg`` and ``trimap``."""
    if per_fg < 1:
        raise UsageError(f"--per-fg must be at least 1, got {per_fg}")
    fg_files = list_files(fg_dir, "foreground", "--foreground")
    alphas = StemIndex(list_files(alpha_dir, "alpha", "--alpha"), "alpha", alpha_dir)
    bgs = [f.path for f in list_files(bg_dir, "background", "--backgrounds")]
    tris = StemIndex(list_files(trimap_dir, "trimap", "--trimap"), "trimap", trimap_dir) if trimap_dir else None
    fgs, items = _unique_names(fg_files, lambda f: f.relstem, "foreground")
    for i, (_, f) in enumerate(fgs):
        ap, err = alphas.find([f.relstem, _rel_base(f, FG_SUFFIXES)], ALPHA_SUFFIXES, f.path,
                              "add it or remove the foreground")
        for j in range(per_fg):
            b = i * per_fg + j
            name = f"{f.relstem}_{b}"
            it = Item(f.path, _renamed(f, name), partners={"bg": bgs[b % len(bgs)]})
            _attach(it, "alpha", (ap, err))
            if err is None and tris is not None:
                _attach(it, "trimap", tris.find([name, f.relstem], TRIMAP_SUFFIXES, f.path, "add it or drop --trimap"))
            items.append(it)
    return items
