"""Evaluation reports: a rich table (stderr), JSON and CSV, ``--fail-above`` bounds.

JSON layout::

    {"mode": "folders", "units": {...}, "images": [{"name": "x", "sad": .., "mse": .., "grad": .., "conn": ..,
     "seconds": ..}, ...], "mean": {"sad": .., ...}, "count": N, "errors": [{"name": .., "error": ..}],
     "seconds_total": .., "fail_above": {...}, "exceeded": [...]}

Metric values are in the conventional reporting units (SAD/1000, MSE, Grad/1000, Conn/1000), over the unknown
pixels with a trimap, over every pixel without one, over whole frames in video mode (``units`` says which).
An image whose trimap has no unknown pixel has nothing to score: its row has null values and ``"left_out"``, it is
left out of every mean (SAD, MSE, Grad and Conn alike), and ``left_out`` at the top counts such rows.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

from ..errors import UsageError

UNITS = {
    "sad": "sum |p-g| over unknown pixels / 1000 (alpha in [0,1])",
    "mse": "mean (p-g)^2 over unknown pixels (papers often print x1000)",
    "grad": "official gradient error / 1000",
    "conn": "official connectivity error / 1000",
    "dtssd": "RVM dtSSD: sqrt(mean over pixels of squared temporal-derivative error) x 100, mean over frames (frame 0 = 0)",
    "messddt": "mean over pixels of |E_t^2 - E_{t+1}(x+v)^2| x 1000 (GT Farneback flow), mean over frame pairs",
}

KNOWN_BOUNDS = ("sad", "mse", "grad", "conn", "dtssd", "messddt")

_IMAGE_UNITS = {
    "sad": "sum |p-g| over {where} / 1000 (alpha in [0,1]){per}",
    "mse": "mean (p-g)^2 over {where} (papers often print x1000){per}",
    "grad": "official gradient error, summed over {where}, / 1000{per}",
    "conn": "official connectivity error, summed over {where}, / 1000{per}",
}


def units_for(keys, region: str | None = None, video: bool = False) -> dict:
    """The ``units`` block: what each number means for this run's region (unknown pixels, whole image, video)."""
    if video:
        where, per = "the whole frame", ", mean over frames"
    elif region and region.startswith("whole"):
        where, per = "all pixels (whole image)", ""
    else:
        region = (region or "trimap == 128").split(" (")[0]
        where, per = f"unknown pixels ({region})", ""
    out = {}
    for k in keys:
        if k in _IMAGE_UNITS:
            out[k] = _IMAGE_UNITS[k].format(where=where, per=per)
        elif k in UNITS:
            out[k] = UNITS[k]
    return out


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def mean_of(rows: list[dict], keys) -> dict:
    """Per metric, the mean over the rows that have a value (rows ``left_out`` never count)."""
    rows = [r for r in rows if not r.get("left_out")]
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
        out[k] = (math.fsum(vals) / len(vals)) if vals else None
    return out


def build(rows: list[dict], errors: list[dict], keys, mode: str, row_key: str = "images", **extra) -> dict:
    rep = {"mode": mode, "units": units_for(keys, extra.get("region"), video=mode == "video")}
    rep[row_key] = [{k: _clean(v) for k, v in r.items()} for r in rows]
    rep["mean"] = mean_of(rows, keys)
    rep["count"] = len(rows)
    rep["left_out"] = sum(1 for r in rows if r.get("left_out"))
    rep["errors"] = errors
    rep["row_key"] = row_key
    rep["keys"] = list(keys)
    rep.update(extra)
    return rep


def to_json(rep: dict) -> str:
    body = {k: v for k, v in rep.items() if k not in ("row_key", "keys")}
    return json.dumps(body, indent=2, allow_nan=False, default=_clean) + "\n"


def to_csv(rep: dict) -> str:
    keys = rep["keys"]
    rows = rep[rep["row_key"]]
    extra_cols = [c for c in ("frames", "left_out") if any(c in r for r in rows)]
    cols = ["name", *keys, *extra_cols, "seconds", "error"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in cols])
    for e in rep["errors"]:
        w.writerow([e["name"]] + [""] * (len(cols) - 2) + [e["error"]])
    w.writerow(["mean"] + [_fmt(rep["mean"].get(k)) for k in keys] + [""] * (len(cols) - 1 - len(keys)))
    return buf.getvalue()


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def print_table(rep: dict, stream, max_rows: int = 200) -> None:
    """The human-readable table on ``stream`` (stderr): rich on a terminal (no ANSI escapes at all under NO_COLOR),
    a plain fixed-width table otherwise (logs, pipes): numbers are never truncated."""
    keys = rep["keys"]
    rows = rep[rep["row_key"]]
    title = f"mattecli eval ({rep['mode']})"
    header = ["name", *[k.upper() if k != "messddt" else "MESSDdt" for k in keys], "s"]
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    body = [[str(r["name"]), *[_num(r.get(k)) for k in keys], _num(r.get("seconds"), 3)] for r in shown]
    if len(shown) < len(rows):
        body.append([f"... {len(rows) - len(shown)} more", *[""] * (len(keys) + 1)])
    left = rep.get("left_out") or 0
    mean = [f"mean ({rep['count'] - left})", *[_num(rep["mean"].get(k)) for k in keys], ""]
    note = left_out_note(rep)
    if not (hasattr(stream, "isatty") and stream.isatty()):
        stream.write(plain_table(title, header, body, mean) + (note + "\n" if note else ""))
        stream.flush()
        return
    from rich.console import Console
    from rich.table import Table

    no_color = bool(os.environ.get("NO_COLOR"))
    # NO_COLOR: no colour *and* no bold/italic/dim (rich's no_color=True still emits those)
    console = Console(file=stream, color_system=None if no_color else "auto", highlight=False)
    t = Table(title=title, show_lines=False)
    t.add_column(header[0], overflow="fold")
    for j, h in enumerate(header[1:], start=1):
        width = max(len(h), *(len(b[j]) for b in [*body, mean]))
        t.add_column(h, justify="right", no_wrap=True, min_width=width)
    for b in body:
        t.add_row(*b)
    t.add_section()
    t.add_row(*mean)
    console.print(t)
    if note:
        console.print(note, markup=False)


def left_out_note(rep: dict) -> str | None:
    """``2 of 7 images left out of every mean: no unknown pixels (trimap == 128)``, or None."""
    left = rep.get("left_out") or 0
    if not left:
        return None
    region = (rep.get("region") or "trimap == 128").split(" (")[0]
    return f"{left} of {rep['count']} {rep['row_key']} left out of every mean: no unknown pixels ({region})"


def plain_table(title: str, header: list, body: list, footer: list) -> str:
    """Fixed-width text table: first column left-aligned, the others right-aligned, never truncated."""
    allrows = [header, *body, footer]
    widths = [max(len(r[j]) for r in allrows) for j in range(len(header))]

    def line(r):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [title, line(header), rule, *(line(r) for r in body), rule, line(footer)]
    return "\n".join(out) + "\n"


def _num(v, digits: int = 6):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def parse_fail_above(spec: str | None) -> dict:
    """``"sad=40,mse=0.01"`` -> {"sad": 40.0, "mse": 0.01}."""
    out: dict = {}
    if not spec:
        return out
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise UsageError(f"--fail-above {spec!r}: expected METRIC=BOUND[,METRIC=BOUND], e.g. sad=40,mse=0.01")
        k, v = (s.strip() for s in part.split("=", 1))
        k = k.lower()
        if k not in KNOWN_BOUNDS:
            raise UsageError(f"--fail-above: unknown metric {k!r}; use one of {', '.join(KNOWN_BOUNDS)}")
        try:
            out[k] = float(v)
        except ValueError:
            raise UsageError(f"--fail-above: {k}={v!r} is not a number") from None
    return out


def exceeded(mean: dict, bounds: dict) -> list[str]:
    """Human-readable violations: a bounded metric whose mean is above its bound (or missing)."""
    bad = []
    for k, b in bounds.items():
        v = mean.get(k)
        if v is None:
            if k in mean:
                bad.append(f"mean {k} is undefined (bound {b:g})")
            continue
        if v > b:
            bad.append(f"mean {k} = {v:.6g} > {b:g}")
    return bad


def write_text(text: str, out: str | None) -> None:
    """stdout when out is None or '-', else an atomic write (imaging.io: temp file in the same folder + rename)."""
    import sys

    if out in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..imaging.io import atomic_write_text

    atomic_write_text(os.fspath(out), text)

# -- where the report (and --save-pred) go: checked before anything is computed ----------------------------------

def stdout_format(json_out: bool, csv_out: bool) -> str | None:
    """What goes to stdout: ``json`` (``--json``), ``csv`` (``--csv``) or None (nothing; the table is on stderr)."""
    if json_out and csv_out:
        raise UsageError("--json and --csv are exclusive; run twice or pick one (or write a file with --report)")
    return "json" if json_out else ("csv" if csv_out else None)


def file_format(report) -> str | None:
    """``--report FILE``: ``json`` or ``csv`` from the file's suffix (None without --report)."""
    if report is None:
        return None
    suf = os.path.splitext(os.fspath(report))[1].lower()
    if suf in (".json", ".csv"):
        return suf[1:]
    raise UsageError(f"--report {report}: use a .json or .csv file name")


def _probe(folder: str, flag: str, target) -> None:
    """Raise UsageError unless files can be created in ``folder`` (or, if it does not exist yet, in the nearest
    existing folder above it, where it will be created). Leaves nothing behind."""
    import tempfile

    anc = folder
    while not os.path.exists(anc):
        parent = os.path.dirname(anc)
        if parent == anc:
            break
        anc = parent
    if not os.path.isdir(anc):
        raise UsageError(f"{flag} {target}: {anc} is not a folder; choose another path")
    try:
        if anc == folder:
            fd, tmp = tempfile.mkstemp(prefix=".mattecli-probe-", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".mattecli-probe-", dir=anc))
    except OSError as e:
        raise UsageError(f"{flag} {target}: cannot write in {anc} ({e.strerror or e}); choose another path") from None


def check_out_file(out, flag: str = "--report") -> None:
    """``--report FILE``: a regular file (new or existing) in a writable folder; ``-`` or None is stdout."""
    if out is None or os.fspath(out) == "-":
        return
    p = os.fspath(out)
    if os.path.isdir(p) or p.endswith(("/", os.sep)):
        raise UsageError(f"{flag} {p}: is a folder; give a file name, e.g. {os.path.join(p, 'scores.json')}")
    if os.path.lexists(p) and not os.path.isfile(p):
        raise UsageError(f"{flag} {p}: exists and is not a regular file; give a file name (or - for stdout)")
    _probe(os.path.dirname(os.path.abspath(p)), flag, p)


def check_out_folder(folder, flag: str) -> None:
    """A folder that exists or can be created, and is writable (``--save-pred``)."""
    p = os.fspath(folder)
    if os.path.exists(p) and not os.path.isdir(p):
        raise UsageError(f"{flag} {p}: exists and is not a folder; give a folder")
    _probe(os.path.abspath(p), flag, p)
