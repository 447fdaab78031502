"""Writing into the cache: folders, putting a verified file in place with its sha256 recorded, removing files, and
sweeping what a killed run left behind (:func:`tidy`).

Only verified files are ever renamed into a weights folder; every one gets its ``<file>.sha256`` (:mod:`.integrity`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import WeightsUnavailable
from . import integrity
from .download import stray_parts
from .paths import cache_dir, converted_path, lock_path, part_path


def prepare_dirs(entry, wset) -> Path:
    """Create the weight set's folder and its lock folder; a clear error when the cache is not writable."""
    d = cache_dir(entry, wset)
    for folder in (d, lock_path(entry, wset).parent):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WeightsUnavailable(f"cannot create the cache folder {folder}: {e.strerror or e}; point "
                                     "MATTECLI_HOME at a writable folder", path=folder) from None
    return d


def store_official(part: Path, target: Path, sha: str) -> None:
    """Rename a verified ``.part`` into place and record its sha256 (trust on first use where the registry has
    none)."""
    integrity.forget(target)
    os.replace(part, target)
    integrity.record(target, sha)


def remove(p: Path) -> None:
    """Delete a cached file and its recorded sha256 (absent files are fine)."""
    for q in (p, integrity.sidecar(p)):
        try:
            q.unlink()
        except FileNotFoundError:
            pass


def drop_converted(entry, wset) -> None:
    remove(converted_path(entry, wset))


def clear(entry, wset) -> None:
    """Remove a weight set's cache folder."""
    shutil.rmtree(cache_dir(entry, wset), ignore_errors=True)


def _older(p: Path, since: float) -> bool:
    try:
        return p.lstat().st_mtime <= since
    except OSError:
        return False


def tidy(entry, wset, since: float) -> list[str]:
    """Remove the litter of killed runs from the weight set's folder; called by fetch and import while they hold the
    set's lock (every writer of the folder holds it), ``since`` = when the lock was taken. Returns the names removed.

    - hidden temporaries of atomic writes (``.NAME.*.tmp``, ``.NAME.*.part``, ``.convert-*`` folders) older than the
      lock: their writer is gone;
    - gdown's temporary ``<file>.part????????.part``: the newest becomes ``<file>.part`` (resumed by this fetch) when
      there is none, the others go;
    - other download ``.part`` files (and ``.part.json`` sidecars without their ``.part``) older than the lock.
    The set's own ``<file>.part`` stays: the next source resumes it where it can.
    """
    d = cache_dir(entry, wset)
    part = part_path(entry, wset)
    removed: list[str] = []
    strays = sorted(stray_parts(part), key=lambda p: p.lstat().st_mtime)
    if strays and not part.exists():
        os.replace(strays.pop(), part)
    for p in strays:
        p.unlink(missing_ok=True)
        removed.append(p.name)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        name = p.name
        hidden = name.startswith(".") and (name.endswith((".tmp", ".part")) or name.startswith(".convert-"))
        own = p == part or p.name == part.name + ".json"
        stale_part = not own and not hidden and name.endswith((".part", ".part.json"))
        orphan_json = p.name == part.name + ".json" and not part.exists()
        if not (hidden or stale_part or orphan_json) or not _older(p, since):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(name)
    return removed
