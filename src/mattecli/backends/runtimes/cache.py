"""The export cache: one folder per export, its files sha256-recorded and checked like every cached file.

Where: next to the converted weights when the model came from the weights cache
(``weights/<entry>/<tag>/runtimes/<key>/``), else ``<home>/runtimes/<entry>/<key>/`` (weights given as a file or
a mapping). ``key`` hashes the exported module's weights (its state dict as loaded: BatchNorm folding, options that
drop layers and the dtype included), the part, the constants baked in, the inputs' dtypes and ranks (and shapes
for static parts) and the exporter (:func:`export.exporter_id`).

A folder holds ``model.onnx`` (+ external data files when an exporter writes them), ``meta.json`` and one
``checked-<runtime>.json`` per engine whose first-call check against torch passed (engine version, output
structure: a later process runs the engine without running torch first); each file has its ``.sha256`` sidecar
(:mod:`mattecli.weights.integrity`). A file that fails its check is refused: the folder is
removed and the export made again (a line on stderr names the file). Exports are written to a temporary folder and
renamed into place, so concurrent processes never see half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ...errors import ChecksumMismatch
from ...weights import integrity

MODEL = "model.onnx"
META = "meta.json"


def weights_digest(module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, values), computed at each first call of a signature
    (weights changed in place, e.g. by FBA's ``eval()``, give another key)."""
    import numpy as np
    import torch

    sd = module.state_dict()
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k].detach()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        if v.dtype == torch.bfloat16:
            v = v.view(torch.int16)
        h.update(np.ascontiguousarray(v.cpu().contiguous().numpy()).tobytes())
    return h.hexdigest()


def export_key(**fields) -> str:
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def root_for(backend) -> Path:
    from ...weights import home
    from ...weights.paths import cache_dir

    wset = getattr(backend, "weights_set", None)
    wpath = getattr(backend, "weights_path", None)
    if wset is not None and wpath:
        d = cache_dir(backend.entry, wset)
        try:
            Path(wpath).resolve().relative_to(d.resolve())
            return d / "runtimes"
        except ValueError:
            pass
    return home() / "runtimes" / backend.entry.name


def _files(folder: Path) -> list[Path]:
    """The export's own files (the per-runtime check records are verified when read)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(integrity.SIDE)
                  and not p.name.startswith(("checked-", ".")))


def check_folder(folder: Path) -> Path:
    """The folder's model file after checking every file against its recorded sha256 (ChecksumMismatch naming the
    file otherwise: a missing record counts as damage)."""
    model = folder / MODEL
    if not model.is_file():
        raise ChecksumMismatch(f"{model}: missing", path=model)
    for f in _files(folder):
        want = integrity.recorded(f)
        if want is None or integrity.file_sha256(f) != want:
            raise ChecksumMismatch(f"{f}: sha256 does not match its record", path=f)
    return model


def load_or_export(root: Path, key: str, export, meta: dict) -> tuple[Path, bool]:
    """(path of the verified model file, True when it was exported now). ``export(path)`` writes the ONNX file.
    Processes that need the same export at once make it once: the others wait on its lock, then read it."""
    from filelock import FileLock

    folder = root / key
    if folder.is_dir():
        found = _verified(folder)
        if found is not None:
            return found, False
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock")):
        found = _verified(folder) if folder.is_dir() else None     # made by another process while we waited
        if found is not None:
            return found, False
        return _export(root, key, export, meta), True


def _verified(folder: Path) -> Path | None:
    """The folder's checked model file, or None after removing a damaged folder (a line on stderr names it)."""
    from ...console import info_line

    try:
        return check_folder(folder)
    except ChecksumMismatch as e:
        info_line(f"refusing a damaged cached ONNX export ({e}); exporting it again")
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _export(root: Path, key: str, export, meta: dict) -> Path:
    folder = root / key
    tmp = root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        export(tmp / MODEL)
        (tmp / META).write_text(json.dumps(meta, sort_keys=True, indent=1, default=str) + "\n")
        for f in _files(tmp):
            integrity.record(f, integrity.file_sha256(f))
        try:
            os.replace(tmp, folder)
        except OSError:   # another process put the same export in place first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check_folder(folder)


def check_name(runtime: str) -> str:
    return f"checked-{runtime}.json"


def record_check(folder: Path, runtime: str, data: dict) -> None:
    """The first-call check passed for ``runtime``: say so next to the export (sha256-recorded like the rest), so
    that later processes run the engine without running torch first."""
    f = folder / check_name(runtime)
    tmp = folder / f".{f.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True, default=str) + "\n")
    os.replace(tmp, f)
    integrity.record(f, integrity.file_sha256(f))


def read_check(folder: Path, runtime: str) -> dict | None:
    """The recorded check for ``runtime``, or None (absent, or its record does not match: then removed)."""
    f = folder / check_name(runtime)
    if not f.is_file():
        return None
    want = integrity.recorded(f)
    if want is None or integrity.file_sha256(f) != want:
        f.unlink(missing_ok=True)
        integrity.forget(f)
        return None
    try:
        return json.loads(f.read_text())
    except ValueError:
        return None
