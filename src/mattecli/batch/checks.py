"""Flag checks shared by the verbs, done before any work (usage errors, exit 2; no torch import)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

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


def check_output_folders(paths, flag: str = "-o") -> None:
    """Every output's folder exists or can be created, and can be written: a usage error (exit 2) before any model
    runs, naming the folder and what is in the way."""
    seen: set = set()
    for p in paths:
        if str(p) == "-":
            continue
        parent = Path(os.fspath(p)).parent
        parent = parent if str(parent) else Path(".")
        if parent in seen:
            continue
        seen.add(parent)
        probe = parent
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"{flag}: cannot create the output folder {parent}: {probe} is a file, not a folder; "
                             f"choose another {flag}")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UsageError(f"{flag}: cannot write in {probe} (permission denied); choose another {flag}")
