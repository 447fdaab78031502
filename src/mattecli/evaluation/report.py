"""Evaluation reports: a rich table (stderr), JSON and CSV, ``--fail-above`` bounds.

JSON layout::

    {"mode": "folders", "units": {...}, "images": [{"name": "x", "sad": .., "mse": .., "grad": .., "conn": ..,
     "seconds": ..}, ...], "mean": {"sad": .., ...}, "count": N, "errors": [{"name": .., "error": ..}],
     "seconds_total": .., "fail_above": {...}, "exceeded": [...]}

Metric values are in the conventional reporting units (SAD/1000, MSE over unknown pixels, Grad/1000, Conn/1000).
NaN (MSE of an image without unknown pixels) is written as null and left out of the mean.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile

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


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def mean_of(rows: list[dict], keys) -> dict:
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
        out[k] = (math.fsum(vals) / len(vals)) if vals else None
    return out


def build(rows: list[dict], errors: list[dict], keys, mode: str, row_key: str = "images", **extra) -> dict:
    rep = {"mode": mode, "units": {k: UNITS[k] for k in keys if k in UNITS}}
    rep[row_key] = [{k: _clean(v) for k, v in r.items()} for r in rows]
    rep["mean"] = mean_of(rows, keys)
    rep["count"] = len(rows)
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
    extra_cols = [c for c in ("frames",) if any(c in r for r in rows)]
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


def print_table(rep: dict, console, max_rows: int = 200) -> None:
    from rich.table import Table

    keys = rep["keys"]
    rows = rep[rep["row_key"]]
    t = Table(title=f"mattecli eval ({rep['mode']})", show_lines=False)
    t.add_column("name", overflow="fold")
    for k in keys:
        t.add_column(k.upper() if k != "messddt" else "MESSDdt", justify="right")
    t.add_column("s", justify="right")
    shown = rows if len(rows) <= max_rows else rows[: max_rows - 1]
    for r in shown:
        t.add_row(str(r["name"]), *[_num(r.get(k)) for k in keys], _num(r.get("seconds"), 3))
    if len(shown) < len(rows):
        t.add_row(f"... {len(rows) - len(shown)} more", *[""] * (len(keys) + 1))
    t.add_section()
    t.add_row(f"mean ({rep['count']})", *[_num(rep["mean"].get(k)) for k in keys], "")
    console.print(t)
    for e in rep["errors"]:
        console.print(f"error: {e['error']}", markup=False, highlight=False)


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
    """stdout when out is None or '-', else an atomic write (temp file in the same folder + os.replace)."""
    import sys

    if out in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(out), dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
