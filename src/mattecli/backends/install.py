"""Weights for a family, through its converter: fetch / import (official file -> verified cache + our converted
file) and the verified state dict a backend loads. The weights package below knows nothing of the families; this is
where the two meet (backends -> weights, never the other way)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConverterError


def spec_of(entry, wset, options: dict | None = None):
    from .base import ModelSpec

    return ModelSpec(entry, wset, entry.validate_options(options))


def converter_of(entry):
    from ..api import adapter_class

    return adapter_class(entry).converter


def convert_function(entry, wset):
    """``path -> (our state dict, meta)`` for the store, with the entry's default options; None for a registered
    model without an implementation (its official file is stored as it is)."""
    if not entry.weights or not (entry.implemented and entry.adapter):
        return None
    conv = converter_of(entry)
    spec = spec_of(entry, wset)

    def convert(path: Path):
        return conv.convert_file(path, spec)

    return convert


def fetch(entry, wset, **kw) -> Path:
    """Every fetch of weights (``models fetch``, and missing weights fetched by themselves): the licence line, the
    sources in order, verification, conversion. Raises one-line errors when no usable file comes."""
    from ..weights.store import fetch as store_fetch

    return store_fetch(entry, wset, convert=convert_function(entry, wset), **kw)


def import_file(entry, wset, file: str | os.PathLike, **kw) -> Path:
    from ..weights.store import import_file as store_import

    return store_import(entry, wset, file, convert=convert_function(entry, wset), **kw)


def auto_fetch_allowed() -> bool:
    """Missing weights are fetched by the verbs and ``load_model`` unless ``--offline`` / ``MATTECLI_OFFLINE=1`` or
    ``--no-fetch`` / ``MATTECLI_NO_FETCH=1``."""
    from ..weights.sources import is_offline

    return not is_offline() and os.environ.get("MATTECLI_NO_FETCH", "").strip().lower() not in ("1", "true", "yes")


def _not_fetched(entry, wset) -> str:
    from ..weights.lookup import missing_message
    from ..weights.sources import is_offline

    if is_offline():
        return f"{missing_message(entry, wset, offline=True)} (not fetched: --offline / MATTECLI_OFFLINE=1)"
    return f"{missing_message(entry, wset)} (not fetched automatically: --no-fetch / MATTECLI_NO_FETCH=1)"


def require_or_fetch(entry, wset) -> Path:
    """The cached file, fetched first when it is missing, an automatic source exists and fetching is allowed (the
    licence is printed by the fetch); else WeightsUnavailable saying which command gets it."""
    from ..errors import WeightsUnavailable
    from ..weights import require
    from ..weights.sources import fetchable

    try:
        return require(entry, wset)
    except WeightsUnavailable:
        if wset is None or not any(fetchable(s) for s in wset.sources):
            raise
        if not auto_fetch_allowed():
            raise WeightsUnavailable(_not_fetched(entry, wset)) from None
    from ..console import info_line
    from ..weights.store import display_name

    info_line(f"weights for {display_name(entry, wset)} are not cached: fetching them now (--no-fetch prevents "
              "this)")
    return fetch(entry, wset)


def cached_state_dict(entry, wset, converter, spec) -> tuple[dict, str, str]:
    """(our state dict, path, sha256 of the official file) from the cache (fetched first where allowed); every file
    is hash-checked before it is loaded."""
    from ..weights import converted, integrity
    from ..weights.store import display_name
    from .checkpoint import to_tensor_dict

    path = require_or_fetch(entry, wset)
    fix = f"mattecli models fetch {display_name(entry, wset)} --force"
    if path.name.endswith(".mattecli.pt"):
        sha = integrity.check(path, fix)
        ours, meta = converted.load(path)
        if meta.get("family") not in (None, entry.family):
            raise ConverterError(f"{path}: converted weights are for {meta.get('entry') or meta.get('family')}, "
                                 f"not {entry.name}; run `{fix}`", path=path)
        return to_tensor_dict(ours), str(path), meta.get("source_sha256") or sha
    sha = integrity.check(path, fix, wset.sha256)
    return converter.to_ours(converter.read(path, spec), spec), str(path), sha


def read_ours(path: str | os.PathLike, family: str) -> dict | None:
    """Our state dict if ``path`` (a ``--weights FILE``) is in our converted format, else None."""
    from ..weights import converted
    from .checkpoint import to_tensor_dict

    if not str(path).lower().endswith((".pt", ".pth", ".ckpt", ".tar")):
        return None
    try:
        ours, meta = converted.load(path)
    except ConverterError:
        return None
    if meta.get("family") not in (None, family):
        them = meta.get("entry") or meta.get("family")
        raise ConverterError(f"{path}: converted weights are for {them} (family {meta.get('family')}), not "
                             f"{family}; use --model {them}, or pass {family}'s own weights", path=path)
    return to_tensor_dict(ours)

