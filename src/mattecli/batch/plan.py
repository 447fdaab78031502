"""Output planning: where each input's outputs go, checked before any work.

``-o DIR`` plus a template (fields ``{stem}``, ``{relpath}``, ``{name}``, ``{model}``, ``{type}``, ``{ext}``), ``-o``
itself a template containing ``{``, ``-o FILE.png`` for one input and one output type, or ``-o -`` (one PNG on
stdout). Without ``-o``, outputs go beside their input (``photo.jpg`` -> ``photo_alpha.png``), and the inputs found
in a folder (or under a glob's folder) go to a sibling folder named after it and the verb (``photos/`` ->
``photos_matte/``, mirroring sub-folders). Two inputs writing one file, or an output equal to an input, is a usage
error before anything runs. A folder or glob never picks up this run's outputs (:func:`drop_run_outputs`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UsageError
from .inputs import Item, listed


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


def drop_run_outputs(items: list[Item], output: str | os.PathLike | None, *, template: str, ext: str,
                     types: Sequence[str], model: str = "", verb: str = "") -> list[Item]:
    """:func:`drop_previous_outputs` for ``-o``/``--template`` (before pairing, so an earlier run's outputs in the
    input folder neither become inputs nor need partners)."""
    plan = OutputPlan(output, template=template, ext=ext, single_file_ok=True, verb=verb)
    if plan.is_file or plan.is_stdout:
        return []
    return drop_previous_outputs(items, lambda it: [plan.path(it, type=t, model=model) for t in types])


FIELDS = ("stem", "relpath", "name", "model", "type", "ext")


STDOUT = "-"


def default_folder(root: Path, verb: str) -> Path:
    """The sibling folder a folder's outputs go to without ``-o``: ``photos/`` -> ``photos_matte/``."""
    name = root.resolve().name or "out"
    return root.resolve().parent / f"{name}_{verb}"


@dataclass
class OutputPlan:
    """Where outputs go. ``output``: a folder, a template containing ``{``, one file (single input/type), ``-``
    (stdout, one PNG) or None (beside the inputs; see the module doc; ``verb`` names the sibling folders)."""

    output: str | os.PathLike | None
    template: str = "{relpath}_{type}.{ext}"
    ext: str = "png"
    single_file_ok: bool = False   # set by the caller when there is exactly one input and one output type
    verb: str = "out"

    def __post_init__(self):
        self.is_default = self.output is None
        self.is_stdout = os.fspath(self.output) == STDOUT if self.output is not None else False
        self.output = "" if self.output is None else os.fspath(self.output)
        self.ext = self.ext.lstrip(".").lower()
        out = self.output
        self.is_template = "{" in out
        if self.is_default or self.is_stdout:
            self.is_file = False
            self._check_template(self.template)
            return
        self.is_file = (not self.is_template and Path(out).suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg")
                        and not Path(out).is_dir() and not out.endswith(("/", os.sep)))   # res.png/ is a folder
        if self.is_file and not self.single_file_ok:
            raise UsageError(f"-o {out}: a single output file needs a single input and a single output type; "
                             "give a folder (or a template with {stem}) instead")
        if not self.is_template and not self.is_file and Path(out).exists() and not Path(out).is_dir():
            raise UsageError(f"-o {out}: exists and is not a folder; give a folder, a template or an image file name")
        self._check_template(out if self.is_template else self.template)

    @staticmethod
    def _check_template(tmpl: str) -> None:
        try:
            tmpl.format(**{k: "x" for k in FIELDS})
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"output template {tmpl!r}: unknown field {e}; use {', '.join('{' + f + '}' for f in FIELDS)}") from None

    def folder_of(self, item: Item) -> Path:
        """Without ``-o``: the folder ``item``'s outputs go to."""
        if item.root is None or item.is_stdin:
            return item.path.parent
        if os.path.realpath(item.root) == os.path.realpath("."):
            return Path(".")
        return default_folder(item.root, self.verb)

    def path(self, item: Item, type: str = "out", model: str = "", ext: str | None = None) -> Path:
        if self.is_file or self.is_stdout:
            return Path(self.output)
        values = {"stem": item.stem, "relpath": item.relstem, "name": item.path.name, "model": model or "none",
                  "type": type, "ext": (ext or self.ext).lstrip(".")}
        if self.is_template:
            return Path(self.output.format(**values))
        if self.is_default:
            if item.root is None:   # a file named on the command line: beside it, named by its stem
                values["relpath"] = item.stem
            return self.folder_of(item) / self.template.format(**values)
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


def mark_output_folder(plan: "OutputPlan", items: Sequence[Item]) -> None:
    """An ``-o`` folder inside an input folder gets a marker file (:data:`.inputs.OUTPUT_MARK`), so that later runs
    walking the input folder, with this or another ``-o``, never read its outputs as inputs."""
    from .inputs import OUTPUT_MARK

    if plan.is_default or plan.is_file or plan.is_stdout:
        return
    folder = Path(plan.output) if not plan.is_template else Path(*[p for p in Path(plan.output).parts
                                                                   if "{" not in p][:1] or ["."])
    out = os.path.realpath(folder)
    roots = {os.path.realpath(it.root) for it in items if it.root is not None}
    if not any(out != r and out.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTPUT_MARK).touch(exist_ok=True)
    except OSError:
        pass    # an unwritable output folder is reported when the outputs are written


def check_plan(items: Sequence[Item], outputs: Sequence[Path], *, plan: "OutputPlan | None" = None,
               types: Sequence[str] | None = None, model: str = "") -> None:
    """Raise UsageError if two planned outputs collide or one would overwrite an input or a partner file.

    With ``plan`` and ``types`` the message names the real cause: a template without ``{type}`` for several output
    types, or the template field that would tell the colliding inputs apart."""
    if plan is not None and plan.is_stdout:
        return
    if plan is not None:
        mark_output_folder(plan, items)
    seen: dict = {}
    clashes = []
    for p in outputs:
        key = os.path.abspath(p)
        if key in seen:
            clashes.append(str(p))
        seen[key] = True
    if clashes:
        names = listed(sorted(set(clashes)))
        tmpl = None
        if plan is not None and not plan.is_file:
            tmpl = plan.output if plan.is_template else plan.template
        if tmpl is not None and types and len(types) > 1 and "{type}" not in tmpl:
            raise UsageError(f"the output template {tmpl!r} has no {{type}} field, so the {len(types)} output types "
                             f"({', '.join(types)}) of an input would write the same file ({names}); add {{type}}"
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
        raise UsageError(f"several inputs would write the same output: {names}; {tail}")
    from .checks import check_output_folders

    check_output_folders(outputs)
    protected = {}
    for it in items:
        protected[os.path.realpath(it.path)] = it.path
        for p in it.partners.values():
            protected[os.path.realpath(p)] = p
    for p in outputs:
        real = os.path.realpath(p)
        if real in protected:
            raise UsageError(f"output {p} would overwrite the input {protected[real]}; choose another -o folder or template")




def check_stdout(plan: "OutputPlan", items: Sequence[Item], types: Sequence[str], json_out: bool) -> list[str]:
    """``-o -``: one input, one PNG on stdout (the first output type; the others are not written), no ``--json``
    (the report can go to ``--report FILE``). Returns the output types to write."""
    if not plan.is_stdout:
        return list(types)
    if len(items) != 1:
        raise UsageError(f"-o - writes one image to standard output, but there are {len(items)} inputs; give one "
                         "input (or a folder / template for -o)")
    if json_out:
        raise UsageError("-o - writes the image to standard output: drop --json (write the report with --report "
                         "run.json instead)")
    if len(types) > 1:
        from ..console import warn_line

        warn_line(f"-o -: only the first output type ({types[0]}) is written to standard output")
    return list(types[:1])
