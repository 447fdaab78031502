"""The per-run report: one :class:`Record` per input, written as JSON or CSV (``--report``), or printed (``--json``)."""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field

STATUSES = ("ok", "failed", "skipped", "not-run")
CSV_COLUMNS = ("input", "status", "outputs", "seconds", "size", "width", "height", "model", "weights_sha256", "error")


@dataclass
class Record:
    input: str
    status: str = "pending"          # ok | failed | skipped | not-run
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


def to_csv(items: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for d in items:
        row = dict(d)
        row["outputs"] = ";".join(d.get("outputs", []))
        w.writerow(row)
    return buf.getvalue()


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def version() -> str:
    from .. import __version__

    return __version__
