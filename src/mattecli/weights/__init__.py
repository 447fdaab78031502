"""Weights subsystem: the cache, lookup, fetch/import/verify (overview in :mod:`.store`).

Public surface used by the backends and the CLI (keep these names stable):

- ``home()``: cache root (MATTECLI_HOME, else $XDG_CACHE_HOME/mattecli, else ~/.cache/mattecli)
- ``cache_dir(entry, wset)``, ``converted_name(wset)``, ``display_name(entry, wset)``
- ``cached_path(entry, wset)``: the cached file to load, or None
- ``require(entry, wset)``: cached path, or raise WeightsUnavailable with the file name, sources, licence and the
  exact ``mattecli models fetch`` / ``mattecli models import`` command
- ``file_sha256(path)``: the package's one file-hashing function

``fetch``, ``import_file``, ``verify``, ``license_notice`` ... are re-exported lazily from :mod:`.store`. Nothing here
imports torch, and nothing in this package imports ``mattecli.backends`` or ``mattecli.api``.
"""
from __future__ import annotations

from .integrity import file_sha256
from .lookup import is_cached, missing_message, require
from .paths import cache_dir, cached_path, converted_name, display_name, home

_LAZY = {
    "fetch": "fetching", "manual_instructions": "fetching", "import_file": "importing", "verify": "verifying",
    "verify_set": "verifying", "license_notice": "licences", "license_flags": "licences", "is_offline": "sources",
}

__all__ = ["cache_dir", "cached_path", "converted_name", "display_name", "file_sha256", "home", "is_cached",
           "missing_message", "require", *_LAZY]


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
