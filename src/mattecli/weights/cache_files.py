"""Writing into the cache: folders, putting a verified file in place with its sha256 recorded, removing files.

Only verified files are ever renamed into a weights folder; every one gets its ``<file>.sha256`` (:mod:`.integrity`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import WeightsUnavailable
from . import integrity
from .paths import cache_dir, converted_path, lock_path


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
