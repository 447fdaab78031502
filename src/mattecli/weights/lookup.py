"""Finding a weight set in the cache, or saying exactly how to get it (no network, no torch)."""
from __future__ import annotations

from pathlib import Path

from ..errors import WeightsUnavailable
from .paths import cached_path, display_name
from .sources import address, fetchable


def published_at(wset) -> str:
    """The sources' addresses, for people (a Drive source already named by a manual source is not repeated)."""
    manual = " ".join(s.location for s in wset.sources if s.kind == "manual")
    out = []
    for s in wset.sources:
        if s.kind == "gdrive" and "://" not in s.location and s.location in manual:
            continue
        text = address(s) if s.kind != "manual" else s.location
        if text not in out:
            out.append(text)
    return "; ".join(out) or "unknown"


def is_cached(entry, wset) -> bool:
    return wset is not None and cached_path(entry, wset) is not None


def missing_message(entry, wset, offline: bool = False) -> str:
    """Why a weight set is not cached and the exact commands that fix it (one line)."""
    where = published_at(wset)
    name = display_name(entry, wset)
    imp = f"`mattecli models import {name} /path/to/{wset.filename}`"
    if any(fetchable(s) for s in wset.sources):
        fix = (f"run `mattecli models fetch {name}`{' when online' if offline else ''} (or download it yourself "
               f"and run {imp}), or pass --weights FILE")
    else:
        fix = f"download it by hand from the address above, then run {imp}, or pass --weights FILE"
    return (f"weights for {name} are not cached: {wset.filename} (licence: {wset.license}); "
            f"published at: {where}; {fix}")


def require(entry, wset) -> Path:
    """The cached file to load, or WeightsUnavailable with the file name, sources, licence and the exact
    ``mattecli models fetch`` / ``mattecli models import`` commands. (The caller checks its sha256 before loading:
    :func:`.integrity.check`.)"""
    p = cached_path(entry, wset)
    if p is not None:
        return p
    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} has no weight sets registered")
    raise WeightsUnavailable(missing_message(entry, wset))
