"""Pairing of partner files (trimaps, masks, alphas, foregrounds, plates) with inputs: by file stem, never by
sorted position.

A partner argument is one file (used for every input) or a folder (searched recursively). For an input
``sub/img.png`` the partner is, in order of preference: the same relative path stem (``sub/img.*``), the same stem
anywhere in the folder (``img.*``), or a stem carrying the kind's suffix (``img_trimap.*``, ``img-trimap.*``,
``img.trimap.*``; :data:`SUFFIXES`). Input stems ending in ``_img``/``_image``/``_rgb``/``_input``/``_comp`` are also
tried without it (``0001_img.png`` <-> ``0001_back.png``). Files used as partners are removed from the inputs.

An input without a partner, or with two equally good candidates, is that item's error (``Item.problem``): the batch
goes on, the report lists it, and the run exits 1 at the end.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import UsageError
from ..formats import IMAGE_EXTS
from .inputs import Item, _is_glob, _under, expand_inputs, listed

#: partner kind -> stem suffixes accepted on partner files (after the input's stem)
SUFFIXES: dict[str, tuple[str, ...]] = {
    "trimap": ("_trimap", "-trimap", ".trimap", "_tri"),
    "mask": ("_mask", "-mask", ".mask", "_seg", "_masksDL"),
    "alpha": ("_alpha", "-alpha", ".alpha", "_matte", "_pha", "_gt"),
    "foreground": ("_foreground", "_fg", "-fg", "_fgr"),
    "bg": ("_back", "_bg", "-bg", "_bgr", "_plate", "_background"),
    "image": ("_image", "_img", "_composite"),
}
#: suffixes stripped from input stems when looking for partners (``0001_img`` -> ``0001``)
INPUT_SUFFIXES = ("_img", "_image", "_rgb", "_input", "_comp")


def strip_suffix(stem: str, suffixes: Iterable[str]) -> str | None:
    low = stem.lower()
    for suf in suffixes:
        if low.endswith(suf.lower()) and len(stem) > len(suf):
            return stem[: -len(suf)]
    return None


def _index_partners(files: list[Item], kind: str) -> tuple[dict, dict, dict]:
    by_rel: dict = {}
    by_stem: dict = {}
    by_suffix: dict = {}
    for f in files:
        by_rel.setdefault(f.relstem.lower(), []).append(f.path)
        by_stem.setdefault(f.stem.lower(), []).append(f.path)
        base = strip_suffix(f.stem, SUFFIXES.get(kind, ()))
        if base is not None:
            rel_base = (f.rel.parent / base).as_posix().lower()
            by_suffix.setdefault(base.lower(), []).append(f.path)
            if rel_base != base.lower():
                by_suffix.setdefault(rel_base, []).append(f.path)
    return by_rel, by_stem, by_suffix


def pair(items: list[Item], spec: str | os.PathLike | None, kind: str, *, flag: str | None = None,
         exts: Sequence[str] = IMAGE_EXTS, required: bool = True,
         exclude: Sequence[str | os.PathLike] | None = None) -> list[Item]:
    """Attach ``item.partners[kind]`` from ``spec`` (one file for all inputs, or a folder matched by stem).

    Files used as partners are removed from ``items`` (in place) and the list is returned. An input without a
    partner (when ``required``) or with several candidates gets ``item.problem`` (that item's error at run time).
    A ``spec`` that does not exist is a usage error. ``spec`` None does nothing.
    """
    if spec is None:
        return items
    flag = flag or f"--{kind}"
    sp = Path(os.fspath(spec))
    if sp.is_file():
        for it in items:
            it.partners[kind] = sp
        _drop_partner_files(items, {os.path.realpath(sp)})
        if not items:
            raise UsageError(f"{flag} {sp} is also the only input")
        return items
    if not sp.is_dir():
        if _is_glob(os.fspath(sp)):
            raise UsageError(f"{flag} takes a file or a folder, not a pattern: {sp}")
        raise UsageError(f"{flag} {sp}: not found")
    cands = expand_inputs([sp], exts=exts, what=f"{flag} file", exclude=exclude)
    by_rel, by_stem, by_suffix = _index_partners(cands, kind)
    used: set = set()
    input_keys = {os.path.realpath(it.path) for it in items}
    unpaired, ambiguous = [], []
    for it in items:
        stems = [it.stem]
        base = strip_suffix(it.stem, INPUT_SUFFIXES)
        if base:
            stems.append(base)
        choice = None
        amb = None
        rel_parent = it.rel.parent.as_posix()
        me = os.path.realpath(it.path)
        for s in stems:
            relkey = (s if rel_parent in ("", ".") else f"{rel_parent}/{s}").lower()
            for table, key in ((by_rel, relkey), (by_stem, s.lower()), (by_suffix, relkey), (by_suffix, s.lower())):
                hits = list(dict.fromkeys(h for h in table.get(key, []) if os.path.realpath(h) != me))
                if len(hits) == 1:
                    choice = hits[0]
                elif len(hits) > 1:  # same stem with several extensions, or in several subfolders
                    amb = hits
                if choice is not None or amb is not None:
                    break
            if choice is not None or amb is not None:
                break
        if amb is not None:
            ambiguous.append((it.path, amb))
            continue
        if choice is None or (os.path.realpath(choice) in input_keys and choice.stem == it.stem):
            unpaired.append(str(it.path))
            continue
        it.partners[kind] = choice
        used.add(os.path.realpath(choice))
    # inputs that are themselves partner files of other inputs are not inputs
    _drop_partner_files(items, used)
    by_path = {str(i.path): i for i in items}
    for p, hits in ambiguous:
        it = by_path.get(str(p))
        if it is not None:
            it.problem = it.problem or (f"{flag}: several candidate files for {p}: "
                                        f"{', '.join(str(h) for h in hits[:3])}; keep one per input stem")
    for u in unpaired:
        it = by_path.get(u)
        if it is not None and required:
            hint = SUFFIXES.get(kind, ("_" + kind,))[0]
            it.problem = it.problem or (f"{flag}: no {kind} for {u} in {sp} (pairing is by file stem: "
                                        f"{Path(u).stem}.png or {Path(u).stem}{hint}.png)")
    return items


def drop_partner_inputs(items: list[Item], specs: dict) -> list[Item]:
    """Partner files found in the input folder are not inputs: for each partner kind in use whose spec is a folder
    (``{"alpha": "data/", "foreground": "data/"}``), drop (in place) the inputs inside that folder whose stem ends
    with a partner suffix (``hair_alpha``, ``hair_fg``; the kind's own suffixes and those of the other partner kinds,
    e.g. ``hair_trimap``, ``hair_bg``) when the base input (``hair``) is also an input in the same folder. Call
    before :func:`pair`. Returns the dropped items."""
    every = tuple(x for k, sufs in SUFFIXES.items() if k != "image" for x in sufs)
    by_place = {(it.rel.parent.as_posix().lower(), it.stem.lower()) for it in items}
    drop: set = set()
    for kind, spec in specs.items():
        if spec is None or not Path(os.fspath(spec)).is_dir():
            continue
        folder = os.path.realpath(spec)
        for it in items:
            real = os.path.realpath(it.path)
            if not _under(real, folder):
                continue
            base = strip_suffix(it.stem, SUFFIXES.get(kind, ())) or strip_suffix(it.stem, every)
            if base and (it.rel.parent.as_posix().lower(), base.lower()) in by_place:
                drop.add(real)
    dropped = [it for it in items if os.path.realpath(it.path) in drop]
    if dropped:
        items[:] = [it for it in items if os.path.realpath(it.path) not in drop]
    return dropped


def _drop_partner_files(items: list[Item], used: set) -> list[Item]:
    keep = [it for it in items if os.path.realpath(it.path) not in used]
    dropped = [it for it in items if os.path.realpath(it.path) in used]
    items[:] = keep
    return dropped
