"""The weights store in one place: fetch, import, verify and the cache's names (each lives in its own module).

=====================  ==================================================================
:mod:`.paths`          cache layout and names (``home``, ``cache_dir``, ``display_name`` ...)
:mod:`.lookup`         ``cached_path`` / ``require`` and the "not cached" message
:mod:`.integrity`      ``file_sha256`` and the recorded ``<file>.sha256`` checked before every load
:mod:`.fetching`       ``fetch`` from the registry's sources (:mod:`.sources`: :mod:`.download`, :mod:`.wheel`,
                       :mod:`.gdrive`)
:mod:`.importing`      ``import_file`` of a file downloaded by hand
:mod:`.verifying`      ``verify`` / ``verify_set`` (``mattecli models verify``)
:mod:`.licences`       licence notices and flags
:mod:`.conversion`     running the caller's converter; :mod:`.converted` our ``.mattecli.pt`` format
:mod:`.cache_files`    writing into the cache; ``tidy`` sweeps what killed runs left
=====================  ==================================================================

Conversion: ``fetch`` and ``import_file`` take ``convert(path) -> (our state dict, meta)`` from the caller (the family's
converter, passed by ``mattecli.backends.install``; this package never imports the backends).
"""
from __future__ import annotations

from .cache_files import clear
from .fetching import fetch, manual_instructions
from .importing import import_file
from .integrity import file_sha256
from .licences import license_flags, license_notice
from .lookup import is_cached, missing_message, require
from .paths import (cache_dir, cached_path, converted_name, display_name, home, lock_path, part_path,
                    refetch_command)
from .sources import describe, is_offline
from .verifying import VerifyRow, verify, verify_set

__all__ = [
    "VerifyRow", "cache_dir", "cached_path", "clear", "converted_name", "describe_sources", "display_name", "fetch",
    "file_sha256", "home", "import_file", "is_cached", "is_offline", "license_flags", "license_notice", "lock_path",
    "manual_instructions", "missing_message", "part_path", "refetch_command", "require", "verify", "verify_set",
]


def describe_sources(wset) -> list[str]:
    return [describe(s) for s in wset.sources]
