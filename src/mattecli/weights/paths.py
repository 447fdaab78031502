"""Cache names and paths (pure path arithmetic; nothing here touches the network or torch).

Layout (``home()`` = ``$MATTECLI_HOME``, else ``$XDG_CACHE_HOME/mattecli``, else ``~/.cache/mattecli``)::

    weights/<entry>/<tag>/<official file name>                  the verified official file
    weights/<entry>/<tag>/<official file name>.sha256           its recorded sha256 (see integrity.py)
    weights/<entry>/<tag>/<official file name>.mattecli.pt      our converted state dict (+ its .sha256)
    weights/<entry>/<tag>/<official file name>.part[.json]      an interrupted download, resumed by the next fetch
    locks/<entry>/<tag>/<official file name>.lock               inter-process lock
"""
from __future__ import annotations

import os
from pathlib import Path

CONVERTED_SUFFIX = ".mattecli.pt"


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
    return wset.filename + CONVERTED_SUFFIX


def is_converted_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).endswith(CONVERTED_SUFFIX)


def official_path(entry, wset) -> Path:
    return cache_dir(entry, wset) / wset.filename


def converted_path(entry, wset) -> Path:
    return cache_dir(entry, wset) / converted_name(wset)


def part_path(entry, wset) -> Path:
    return cache_dir(entry, wset) / (wset.filename + ".part")


def lock_path(entry, wset) -> Path:
    return home() / "locks" / entry.name / wset.tag / (wset.filename + ".lock")


def cached_path(entry, wset) -> Path | None:
    """The cached file to load (our converted file first), or None."""
    if wset is None:
        return None
    for p in (converted_path(entry, wset), official_path(entry, wset)):
        if p.is_file():
            return p
    return None


def display_name(entry, wset) -> str:
    """``NAME`` for the default weight set, ``NAME.tag`` for the others (what the CLI accepts)."""
    if wset is None or not entry.weights or wset is entry.weights[0] or wset == entry.weights[0]:
        return entry.name
    return f"{entry.name}.{wset.tag}"


def refetch_command(entry, wset) -> str:
    """The command that repairs a damaged cached file."""
    return f"mattecli models fetch {display_name(entry, wset)} --force"
