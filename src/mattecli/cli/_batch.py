"""Batch semantics shared by every verb (no torch here).

Small API, used by ``trimap``, ``matte``, ``composite``, ``eval`` and ``video``::

    items = expand_inputs(["photos/", "extra/*.jpg", "one.png"])          # -> list[Item]
    pair(items, "trimaps/", "trimap")                                      # item.partners["trimap"] = Path
    plan = OutputPlan(output="out/", template="{relpath}_{type}.{ext}")
    path = plan.path(item, type="alpha", model="closed-form")              # out/sub/img_alpha.png
    check_plan(items, [plan.path(i, type=t) for i in items for t in types]) # collisions, output == input
    runner = BatchRunner(verb="matte", model="closed-form", fail_fast=False, skip_existing=True,
                         report="run.json", json_out=False, quiet=False, verbose=False)
    code = runner.run(items, process, planned=lambda it: [...paths...])   # 0 ok, 1 if any item failed

Rules
-----
* **Inputs**: files (any extension; decoded by content), folders (recursive, image extensions only, hidden files and
  ``*.part`` temp files skipped, sorted by path) and glob patterns (``*``, ``?``, ``[``; ``**`` recurses). A folder or a
  glob keeps each file's path relative to the folder / the glob's fixed prefix (``Item.rel``), so ``{relpath}`` mirrors
  the input tree in the output. A path that does not exist is a usage error (exit 2). The same file given twice is
  processed once.
* **Pairing** (trimaps, masks, alphas, plates): by file stem, never by position. A partner argument is either one file
  (used for every input) or a folder (searched recursively). For an input ``sub/img.png`` the partner is, in order of
  preference: the file with the same relative path stem (``sub/img.*``), the same stem anywhere in the folder
  (``img.*``), or a stem carrying the kind's suffix (``img_trimap.*``, ``img-trimap.*``, ``img.trimap.*``; suffixes per
  kind in :data:`SUFFIXES`). Input stems ending in ``_img``/``_image``/``_rgb``/``_input``/``_comp`` are also tried
  without it (``0001_img.png`` <-> ``0001_back.png``). Two equally good candidates or an input without a partner is a
  usage error that lists the inputs concerned; files used as partners are removed from the inputs (so ``hair.png`` and
  ``hair_trimap.png`` may share a folder).
* **Outputs**: ``-o DIR`` plus a template (fields ``{stem}``, ``{relpath}`` (relative path without extension),
  ``{name}``, ``{model}``, ``{type}``, ``{ext}``), or ``-o`` itself a template containing ``{``, or ``-o FILE.png`` for a
  single input and a single output type. Two inputs mapping to one output, or an output equal to an input, is a usage
  error before anything runs.
* **Re-runs**: a folder or glob never picks up this run's outputs: files under the ``-o`` folder (or an ``-o``
  template's fixed folder) are skipped when that folder lies inside the input folder, and files that are the planned
  outputs of other inputs (``-o`` = the input folder) are dropped (:func:`output_excludes`, :func:`drop_run_outputs`).
  Partner files in the input folder (``hair_alpha.png`` next to ``hair.png`` with ``--alpha`` = that folder) are not
  inputs either (:func:`drop_partner_inputs`).
* **Checks up front** (usage errors, exit 2, before any model loads): ``--report`` path (:func:`check_report`),
  ``--device``/``--precision`` values (:func:`check_device_precision`), ``-o FILE`` vs ``--format``/JPEG
  (:func:`check_single_file`), output collisions with a hint naming the cause (:func:`check_plan`).
* **Running**: keep going past a failing item, exit 1 at the end if any failed; ``--fail-fast`` stops at the first
  failure. Ctrl-C (SIGINT, exit 130) and SIGTERM (exit 143) stop the run and still write the report with
  ``interrupted: true``; inputs never reached are listed with status ``not-run`` and counted in ``total``. A report
  that cannot be written at the end is one error line and exit 1. ``--skip-existing`` skips an item whose outputs
  all exist *and decode*. Progress goes to stderr (rich, on a
  TTY only), data to stdout: the written paths one per line, or with ``--json`` one JSON document (the run report).
  ``--report run.json|run.csv`` writes a per-item report (status, seconds, size, model, weights sha256, error).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import MatteError, UsageError
from ..imaging.io import READ_EXTS, TEMP_SUFFIX, atomic_write_text, image_size, verify_decodes

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".gif")

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

MAX_LISTED = 8


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts) or rel.name.endswith(TEMP_SUFFIX)


@dataclass
class Item:
    """One input file and everything attached to it."""

    path: Path                                 # the input file as given/found
    rel: Path                                  # path relative to its folder/glob root (just the name for a file)
    partners: dict = field(default_factory=dict)  # kind -> Path ("trimap", "bg", "mask", "alpha", ...)
    info: dict = field(default_factory=dict)      # free space for verbs (size, timings...)

    @property
    def stem(self) -> str:
        return self.rel.stem

    @property
    def relstem(self) -> str:
        """Relative path without extension, with forward slashes (``sub/img``)."""
        return self.rel.with_suffix("").as_posix()

    def __str__(self) -> str:
        return str(self.path)


def output_excludes(output: str | os.PathLike | None) -> list[Path]:
    """What a folder/glob expansion must skip so that a run's outputs are never picked up as inputs by the next run:
    the ``-o`` folder, the fixed folder in front of an ``-o`` template's first field, or the ``-o FILE`` itself."""
    if output is None:
        return []
    out = os.fspath(output)
    if "{" in out:
        fixed = []
        for part in Path(out).parts:
            if "{" in part:
                break
            fixed.append(part)
        return [Path(*fixed)] if fixed else [Path(".")]
    return [Path(out)]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def expand_inputs(inputs: Sequence[str | os.PathLike], *, exts: Sequence[str] = READ_EXTS,
                  what: str = "input", exclude: Sequence[str | os.PathLike] | None = None) -> list[Item]:
    """Expand files, folders (recursive) and globs into Items. Raises UsageError (exit 2) for paths that do not exist
    or when nothing is found.

    ``exclude`` (see :func:`output_excludes`): files found by walking a folder or a glob are skipped when they are
    one of these files or lie in one of these folders, unless that folder is the walked folder itself or contains it
    (``-o photos/`` with input ``photos/`` excludes nothing here; ``-o photos/out/`` skips ``photos/out/**``).
    Files named explicitly are never skipped."""
    exts = tuple(e.lower() for e in exts)
    items: list[Item] = []
    seen: set = set()
    missing: list[str] = []
    excl = [os.path.realpath(e) for e in (exclude or [])]

    def add(p: Path, rel: Path, root: Path | None = None) -> None:
        key = os.path.realpath(p)
        if key in seen:
            return
        if root is not None and excl:
            r = os.path.realpath(root)
            if any(_under(key, e) and not _under(r, e) for e in excl):
                return
        seen.add(key)
        items.append(Item(path=p, rel=rel))

    for raw in inputs:
        s = os.fspath(raw)
        p = Path(s)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts
                           and not _hidden(f.relative_to(p)))
            for f in found:
                add(f, f.relative_to(p), p)
        elif p.is_file():
            add(p, Path(p.name))
        elif _is_glob(s):
            matches = sorted(glob.glob(s, recursive=True))
            # the glob's fixed prefix (folder part before the first magic component) is the mirroring root
            parts = Path(s).parts
            fixed = []
            for part in parts:
                if _is_glob(part):
                    break
                fixed.append(part)
            root = Path(*fixed) if fixed and len(fixed) < len(parts) else Path(".")
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                missing.append(s)
            for f in files:
                if f.suffix.lower() not in exts or f.name.startswith(".") or f.name.endswith(TEMP_SUFFIX):
                    continue
                try:
                    rel = f.relative_to(root)
                except ValueError:
                    rel = Path(f.name)
                add(f, rel, root)
        else:
            missing.append(s)
    if missing:
        listed = ", ".join(missing[:MAX_LISTED]) + (f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else "")
        raise UsageError(f"{what} not found: {listed}")
    if not items and excl and not missing:
        raise UsageError(f"no {what} files found in {', '.join(os.fspath(i) for i in inputs)} outside the output "
                         f"folder {', '.join(os.fspath(e) for e in exclude or [])}")
    if not items:
        raise UsageError(f"no {what} files found in {', '.join(os.fspath(i) for i in inputs)} "
                         f"(looked for {', '.join(exts)})")
    return items


def _strip(stem: str, suffixes: Iterable[str]) -> str | None:
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
        base = _strip(f.stem, SUFFIXES.get(kind, ()))
        if base is not None:
            rel_base = (f.rel.parent / base).as_posix().lower()
            by_suffix.setdefault(base.lower(), []).append(f.path)
            if rel_base != base.lower():
                by_suffix.setdefault(rel_base, []).append(f.path)
    return by_rel, by_stem, by_suffix


def _list(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def pair(items: list[Item], spec: str | os.PathLike | None, kind: str, *, flag: str | None = None,
         exts: Sequence[str] = READ_EXTS, required: bool = True,
         exclude: Sequence[str | os.PathLike] | None = None) -> list[Item]:
    """Attach ``item.partners[kind]`` from ``spec`` (one file for all inputs, or a folder matched by stem).

    Files used as partners are removed from ``items`` (in place) and the list is returned. Raises UsageError naming
    every unpaired input (when ``required``) or every ambiguous match. ``spec`` None does nothing.
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
        base = _strip(it.stem, INPUT_SUFFIXES)
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
    unpaired = [u for u in unpaired if os.path.realpath(u) not in used]
    ambiguous = [f"{p} ({', '.join(str(h) for h in hits[:3])})" for p, hits in ambiguous
                 if os.path.realpath(p) not in used]
    if ambiguous:
        raise UsageError(f"{flag}: several candidate files for {_list(ambiguous)}; keep one per input stem")
    if unpaired and required:
        raise UsageError(
            f"{flag}: no {kind} found in {sp} for {len(unpaired)} input(s): {_list(unpaired)} "
            f"(pairing is by file stem: img.png <-> img.png, img{SUFFIXES.get(kind, ('_' + kind,))[0]}.png)")
    return items


def drop_previous_outputs(items: list[Item], outputs_of: Callable[[Item], Sequence[Path]]) -> list[Item]:
    """Remove (in place) the inputs that are planned outputs of *other* inputs in this run, i.e. the outputs of an
    earlier run found again in the input folder. Returns the removed items."""
    outs: set = set()
    for it in items:
        me = os.path.realpath(it.path)
        outs.update(r for r in (os.path.realpath(o) for o in outputs_of(it)) if r != me)
    dropped = [it for it in items if os.path.realpath(it.path) in outs]
    if dropped:
        items[:] = [it for it in items if os.path.realpath(it.path) not in outs]
    return dropped


def drop_run_outputs(items: list[Item], output: str | os.PathLike, *, template: str, ext: str,
                     types: Sequence[str], model: str = "") -> list[Item]:
    """:func:`drop_previous_outputs` for ``-o``/``--template`` (before pairing, so an earlier run's outputs in the
    input folder neither become inputs nor need partners)."""
    plan = OutputPlan(output, template=template, ext=ext, single_file_ok=True)
    if plan.is_file:
        return []
    return drop_previous_outputs(items, lambda it: [plan.path(it, type=t, model=model) for t in types])


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
            base = _strip(it.stem, SUFFIXES.get(kind, ())) or _strip(it.stem, every)
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


# ------------------------------------------------------------------------------------------------ flag checks
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def check_device_precision(device: str | None = None, precision: str | None = None) -> None:
    """Value check of --device / --precision (no torch import): a usage error for anything but the known forms,
    for every model, classical ones included."""
    import re

    if device is not None and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device.strip().lower()):
        raise UsageError(f"--device {device!r}: use one of {', '.join(DEVICES)}")
    if precision is not None and precision.strip().lower() not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def check_report(report: str | os.PathLike | None) -> None:
    """Validate ``--report`` before any work: a .json/.csv name in a folder that exists (or can be created) and is
    writable, and not an existing folder. Usage error (exit 2) otherwise."""
    if report is None:
        return
    p = Path(os.fspath(report))
    if p.suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"--report {report}: use a .json or .csv file name")
    if p.is_dir():
        raise UsageError(f"--report {report}: is a folder; give a file name such as run.json")
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists():          # the nearest existing ancestor must be a writable folder
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--report {report}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"--report {report}: cannot write there (permission denied); choose another path")
    import tempfile

    try:   # /proc and read-only mounts pass os.access (as root) but refuse to create files
        fd, tmp = tempfile.mkstemp(prefix=".mattecli-report-", suffix=".part", dir=str(probe))
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UsageError(f"--report {report}: cannot create a file in {probe} ({e.strerror or e}); "
                         "choose another path") from None


# --------------------------------------------------------------------------------------------------- outputs
FIELDS = ("stem", "relpath", "name", "model", "type", "ext")


@dataclass
class OutputPlan:
    """Where outputs go. ``output``: a folder, a template containing ``{``, or one file (single input/type)."""

    output: str | os.PathLike
    template: str = "{relpath}_{type}.{ext}"
    ext: str = "png"
    single_file_ok: bool = False   # set by the caller when there is exactly one input and one output type

    def __post_init__(self):
        self.output = os.fspath(self.output)
        self.ext = self.ext.lstrip(".").lower()
        out = self.output
        self.is_template = "{" in out
        self.is_file = (not self.is_template and Path(out).suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg")
                        and not Path(out).is_dir())
        if self.is_file and not self.single_file_ok:
            raise UsageError(f"-o {out}: a single output file needs a single input and a single output type; "
                             "give a folder (or a template with {stem}) instead")
        if not self.is_template and not self.is_file and Path(out).exists() and not Path(out).is_dir():
            raise UsageError(f"-o {out}: exists and is not a folder; give a folder, a template or an image file name")
        tmpl = out if self.is_template else self.template
        try:
            tmpl.format(**{k: "x" for k in FIELDS})
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"output template {tmpl!r}: unknown field {e}; use {', '.join('{' + f + '}' for f in FIELDS)}") from None

    def path(self, item: Item, type: str = "out", model: str = "", ext: str | None = None) -> Path:
        if self.is_file:
            return Path(self.output)
        values = {"stem": item.stem, "relpath": item.relstem, "name": item.path.name, "model": model or "none",
                  "type": type, "ext": (ext or self.ext).lstrip(".")}
        if self.is_template:
            return Path(self.output.format(**values))
        return Path(self.output) / self.template.format(**values)


def check_single_file(plan: "OutputPlan", fmt: str | None, types: Sequence[str]) -> None:
    """Usage errors for ``-o FILE.ext``: an explicit --format that disagrees with the file's extension, or an
    alpha-carrying output (alpha, rgba, trimap) sent to a JPEG file. Checked before any model runs."""
    if not plan.is_file:
        return
    ext = Path(plan.output).suffix.lower().lstrip(".")
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(ext, ext)
    if fmt is not None:
        f = fmt.lower().lstrip(".")
        f = {"jpeg": "jpg", "tiff": "tif"}.get(f, f)
        if f != ext:
            raise UsageError(f"-o {plan.output} and --format {fmt} disagree; drop --format (the file name's "
                             f"extension decides) or name the file .{f}")
    bad = [t for t in types if t in ("alpha", "rgba", "trimap")]
    if ext == "jpg" and bad:
        what = {"rgba": "an RGBA cut-out", "alpha": "an alpha matte", "trimap": "a trimap"}[bad[0]]
        raise UsageError(f"-o {plan.output}: JPEG cannot hold {what} losslessly; name the file .png or .tif")


TEMPLATE_HINTS = ("{relpath}_{type}.{ext}", "{name}_{type}.{ext}", "{relpath}_{name}_{type}.{ext}")


def _collides(items: Sequence[Item], template: str, types: Sequence[str], model: str) -> bool:
    seen: set = set()
    for it in items:
        for t in types:
            key = os.path.normcase(os.path.normpath(OutputPlan("_", template=template).path(it, type=t, model=model)))
            if key in seen:
                return True
            seen.add(key)
    return False


def check_plan(items: Sequence[Item], outputs: Sequence[Path], *, plan: "OutputPlan | None" = None,
               types: Sequence[str] | None = None, model: str = "") -> None:
    """Raise UsageError if two planned outputs collide or one would overwrite an input or a partner file.

    With ``plan`` and ``types`` the message names the real cause: a template without ``{type}`` for several output
    types, or the template field that would tell the colliding inputs apart."""
    seen: dict = {}
    clashes = []
    for p in outputs:
        key = os.path.abspath(p)
        if key in seen:
            clashes.append(str(p))
        seen[key] = True
    if clashes:
        listed = _list(sorted(set(clashes)))
        tmpl = None
        if plan is not None and not plan.is_file:
            tmpl = plan.output if plan.is_template else plan.template
        if tmpl is not None and types and len(types) > 1 and "{type}" not in tmpl:
            raise UsageError(f"the output template {tmpl!r} has no {{type}} field, so the {len(types)} output types "
                             f"({', '.join(types)}) of an input would write the same file ({listed}); add {{type}}"
                             + (" to -o" if plan.is_template else ", e.g. --template '{relpath}_{type}.{ext}'"))
        hint = None
        if tmpl is not None:
            for cand in TEMPLATE_HINTS:
                if cand != tmpl and not _collides(items, cand, list(types or ["out"]), model):
                    hint = cand
                    break
        where = "in -o" if plan is not None and plan.is_template else "--template"
        if hint:
            tail = f"use {where} '{hint}'" if where == "--template" else f"use a pattern like '{hint}' in -o"
        else:
            tail = "use a template with {relpath} or {name}, e.g. --template '{relpath}_{name}_{type}.{ext}'"
        raise UsageError(f"several inputs would write the same output: {listed}; {tail}")
    protected = {}
    for it in items:
        protected[os.path.realpath(it.path)] = it.path
        for p in it.partners.values():
            protected[os.path.realpath(p)] = p
    for p in outputs:
        real = os.path.realpath(p)
        if real in protected:
            raise UsageError(f"output {p} would overwrite the input {protected[real]}; choose another -o folder or template")


# ---------------------------------------------------------------------------------------------------- running
@dataclass
class Record:
    input: str
    status: str = "pending"          # ok | failed | skipped
    outputs: list = field(default_factory=list)
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    model: str | None = None
    weights_sha256: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {"input": self.input, "status": self.status, "outputs": [str(o) for o in self.outputs],
             "seconds": round(self.seconds, 4), "width": self.width, "height": self.height,
             "size": f"{self.width}x{self.height}" if self.width else None,
             "model": self.model, "weights_sha256": self.weights_sha256, "error": self.error}
        d.update(self.extra)
        return d


CSV_COLUMNS = ("input", "status", "outputs", "seconds", "size", "width", "height", "model", "weights_sha256", "error")


class BatchRunner:
    """Runs ``fn(item) -> outputs`` over items with the shared batch semantics and returns the exit code.

    ``fn`` returns a list of written paths (or a dict with ``outputs`` and optional ``width``/``height``/other
    report fields). A :class:`MatteError` from ``fn`` fails that item with its one-line message; any other exception
    fails it with ``TypeName: message`` (the traceback is printed with ``--verbose``). KeyboardInterrupt stops the run;
    the report is still written.
    """

    def __init__(self, *, verb: str, model: str | None = None, weights_sha256: str | None = None,
                 fail_fast: bool = False, skip_existing: bool = False, report: str | os.PathLike | None = None,
                 json_out: bool = False, quiet: bool = False, verbose: bool = False, argv: list | None = None):
        self.verb = verb
        self.model = model
        self.weights_sha256 = weights_sha256
        self.fail_fast = fail_fast
        self.skip_existing = skip_existing
        self.report = Path(report) if report else None
        check_report(self.report)
        self.json_out = json_out
        self.quiet = quiet
        self.verbose = verbose
        self.argv = list(sys.argv if argv is None else argv)
        self.records: list[Record] = []
        self.started = time.time()
        self.interrupted = False
        self.signal_name: str | None = None     # "SIGINT" / "SIGTERM" when interrupted
        self.report_failed = False

    # -- messages (stderr) ------------------------------------------------------------------------------------
    def info(self, msg: str) -> None:
        if not self.quiet:
            print(f"mattecli: {msg}", file=sys.stderr)

    def debug(self, msg: str) -> None:
        if self.verbose:
            print(f"mattecli: {msg}", file=sys.stderr)

    def _fail_line(self, item: Item, msg: str) -> None:
        text = msg if str(item.path) in msg else f"{item.path}: {msg}"
        print(f"mattecli: error: {text}", file=sys.stderr)

    # -- main loop --------------------------------------------------------------------------------------------
    def run(self, items: Sequence[Item], fn: Callable[[Item], object],
            planned: Callable[[Item], Sequence[Path]] | None = None) -> int:
        """Exit code: 0 all done, 1 some input failed (or the report could not be written), 130 interrupted by
        SIGINT (Ctrl-C), 143 terminated by SIGTERM. Interrupted or --fail-fast runs still write the report; the
        inputs never reached are listed with status ``not-run``."""
        import signal
        import threading

        old_term = None
        if threading.current_thread() is threading.main_thread():
            def _on_term(signum, frame):
                raise _Terminated()

            try:
                old_term = signal.signal(signal.SIGTERM, _on_term)
            except (ValueError, OSError):
                old_term = None
        try:
            return self._run(items, fn, planned)
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)

    def _run(self, items, fn, planned) -> int:
        progress = None
        task = None
        if not self.quiet and len(items) > 1:
            from ._common import make_console

            console = make_console(sys.stderr)
            if console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                progress = Progress(TextColumn(f"{self.verb}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), TextColumn("{task.description}"), console=console,
                                    transient=True)
                progress.start()
                task = progress.add_task("", total=len(items))
        try:
            for it in items:
                rec = Record(input=str(it.path), model=self.model, weights_sha256=self.weights_sha256)
                self.records.append(rec)
                if progress is not None:
                    progress.update(task, description=it.path.name)
                t0 = time.perf_counter()
                try:
                    if self.skip_existing and planned is not None:
                        outs = list(planned(it))
                        if outs and all(verify_decodes(p) for p in outs):
                            rec.status, rec.outputs = "skipped", outs
                            self.debug(f"skip {it.path} (outputs exist and decode)")
                            continue
                    res = fn(it)
                    if isinstance(res, dict):
                        rec.outputs = list(res.get("outputs", []))
                        rec.width = res.get("width")
                        rec.height = res.get("height")
                        for k, v in res.items():
                            if k not in ("outputs", "width", "height"):
                                rec.extra[k] = v
                    else:
                        rec.outputs = list(res or [])
                    rec.status = "ok"
                    if not self.json_out:
                        for o in rec.outputs:
                            print(o, file=sys.stdout, flush=True)
                    self.debug(f"{it.path} -> {', '.join(str(o) for o in rec.outputs)} ({time.perf_counter() - t0:.2f} s)")
                except KeyboardInterrupt as e:
                    rec.status, rec.error = "failed", "interrupted"
                    self.interrupted = True
                    self.signal_name = "SIGTERM" if isinstance(e, _Terminated) else "SIGINT"
                    raise
                except MatteError as e:
                    rec.status, rec.error = "failed", str(e)
                    self._fail_line(it, str(e))
                except Exception as e:  # a bug or a library error: report it, keep going
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    rec.status, rec.error = "failed", f"{type(e).__name__}: {first}" if first else type(e).__name__
                    self._fail_line(it, rec.error)
                    if self.verbose:
                        traceback.print_exc(file=sys.stderr)
                finally:
                    rec.seconds = time.perf_counter() - t0
                    if rec.width is None:
                        sz = image_size(it.path)
                        if sz:
                            rec.width, rec.height = sz
                    if progress is not None:
                        progress.advance(task)
                if rec.status == "failed" and self.fail_fast:
                    self.info("stopping at the first failure (--fail-fast)")
                    break
        except KeyboardInterrupt as e:
            self.interrupted = True
            self.signal_name = self.signal_name or ("SIGTERM" if isinstance(e, _Terminated) else "SIGINT")
            print(f"mattecli: interrupted ({self.signal_name})", file=sys.stderr)
        finally:
            if progress is not None:
                progress.stop()
            done = {r.input for r in self.records}
            for it in items:
                if str(it.path) not in done:
                    self.records.append(Record(input=str(it.path), status="not-run", model=self.model,
                                               weights_sha256=self.weights_sha256))
            self.finish()
        if self.interrupted:
            return 143 if self.signal_name == "SIGTERM" else 130
        return 1 if (self.failed or self.report_failed) else 0

    # -- results ----------------------------------------------------------------------------------------------
    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.records)

    def summary(self) -> dict:
        counts = {s: sum(r.status == s for r in self.records) for s in ("ok", "failed", "skipped")}
        counts["not_run"] = sum(r.status == "not-run" for r in self.records)
        return {"verb": self.verb, "model": self.model, "weights_sha256": self.weights_sha256,
                "total": len(self.records), **counts, "seconds": round(time.time() - self.started, 3),
                "interrupted": self.interrupted, "signal": self.signal_name}

    def report_dict(self) -> dict:
        return {"mattecli": _version(), "command": self.argv, "started": _iso(self.started),
                "summary": self.summary(), "items": [r.as_dict() for r in self.records]}

    def finish(self) -> None:
        s = self.summary()
        doc = self.report_dict()
        if self.report is not None:
            try:
                if self.report.suffix.lower() == ".csv":
                    atomic_write_text(self.report, _csv(doc["items"]))
                else:
                    atomic_write_text(self.report, json.dumps(doc, indent=2) + "\n")
            except (MatteError, OSError) as e:
                self.report_failed = True
                print(f"mattecli: error: --report {self.report}: not written ({e})", file=sys.stderr)
        if self.json_out:
            print(json.dumps(doc, indent=2), file=sys.stdout, flush=True)
        parts = [f"{s['ok']} done"]
        if s["skipped"]:
            parts.append(f"{s['skipped']} skipped")
        if s["failed"]:
            parts.append(f"{s['failed']} failed")
        if s["not_run"]:
            parts.append(f"{s['not_run']} not run")
        msg = f"{self.verb}: {', '.join(parts)} in {s['seconds']:.1f} s"
        if self.report is not None and not self.report_failed:
            msg += f"; report: {self.report}"
        if s["failed"] or self.report_failed:
            print(f"mattecli: {msg}", file=sys.stderr)
        else:
            self.info(msg)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run stops like Ctrl-C and still writes its report."""


def _csv(items: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for d in items:
        row = dict(d)
        row["outputs"] = ";".join(d.get("outputs", []))
        w.writerow(row)
    return buf.getvalue()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _version() -> str:
    from .. import __version__

    return __version__
