"""``import_file``: put a weights file the user downloaded by hand into the cache, verified and converted.

The file is checked against the registry's sha256 and size when known (else its hash is recorded and printed:
trust on first use), converted when the caller passes ``convert``, then copied in with its sha256 recorded.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ..console import info_line
from ..errors import ChecksumMismatch, InputError, WeightsUnavailable
from . import integrity
from .cache_files import prepare_dirs, remove, store_official, tidy
from .conversion import Convert, run_convert, store_converted
from .download import copy_file, discard_part
from .licences import license_notice
from .lock import file_lock
from .paths import cached_path, converted_name, converted_path, display_name, lock_path, part_path

Echo = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def _check_source(src: Path, wset, name: str, convert: Convert | None, echo: Echo) -> tuple[str | None, bool]:
    """(sha256 of the file or None for a folder, verified against the registry)."""
    if src.is_dir():
        if convert is None:
            raise InputError(f"{src}: is a folder; pass the weights file {wset.filename}", path=src)
        return None, False
    if not src.is_file():
        raise InputError(f"{src}: no such file; pass the downloaded {wset.filename}", path=src)
    sha = integrity.file_sha256(src)
    verified = False
    if wset.sha256:
        if sha != wset.sha256.lower():
            raise ChecksumMismatch(
                f"{src}: sha256 {sha} does not match the registry's {wset.sha256} for {name} ({wset.filename}); "
                "this is not the official file (or it is damaged): download it again", path=src)
        verified = True
    size = src.stat().st_size
    if wset.size is not None and size != wset.size:
        raise ChecksumMismatch(f"{src}: {size} bytes, the registry says {wset.size} for {wset.filename}", path=src)
    return sha, verified


def _copy_official(src: Path, target: Path, sha: str, progress: bool) -> None:
    if target.exists() and os.path.samefile(src, target):
        if integrity.recorded(target) is None:
            integrity.record(target, sha)
        return
    part = target.with_name(f".{target.name}.import-{os.getpid()}.part")
    try:
        t = copy_file(src, part, label=target.name, progress=progress)
        if t.sha256 != sha:
            raise InputError(f"{src}: the file changed while it was being imported; try again", path=src)
        store_official(part, target, sha)
    finally:
        remove(part)


def import_file(entry, wset, file: str | os.PathLike, *, echo: Echo | None = info_line,
                progress: bool = True, convert: Convert | None = None) -> Path:
    """Verify ``file`` (sha256 when known, conversion), then store it in the cache. Returns the path to load.

    The official file is stored under its official name when it is the official file (same name, or sha256
    verified) or when no converter is given; a differently named file or a folder that the converter accepts
    (e.g. an unpacked archive) is stored only as our converted ``.mattecli.pt``.
    """
    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} takes no weights")
    echo = echo or _quiet
    src = Path(file).expanduser()
    sha, verified = _check_source(src, wset, display_name(entry, wset), convert, echo)
    conv = run_convert(convert, wset, src) if convert is not None else None
    keep_official = sha is not None and (verified or src.name == wset.filename or conv is None)
    echo(license_notice(entry, wset))
    d = prepare_dirs(entry, wset)
    target = d / wset.filename
    with file_lock(lock_path(entry, wset)):
        tidy(entry, wset, time.time())
        if keep_official:
            _copy_official(src, target, sha, progress)
        else:
            remove(target)  # an older official file would not match the converted one
        if conv is not None:
            meta = dict(conv[1])
            if not keep_official:
                meta.setdefault("imported_from", src.name)
            store_converted(entry, wset, conv[0], meta, sha)
            echo(f"converted to our format: {converted_name(wset)}")
        else:
            remove(converted_path(entry, wset))
        discard_part(part_path(entry, wset))
    if sha is not None and not verified:      # said only once the file is accepted (nothing is recorded otherwise)
        echo(f"note: the registry has no sha256 for {wset.filename}; recorded this file's sha256 {sha}: every "
             "later load checks it")
    echo(f"imported {src} into {d}")
    return cached_path(entry, wset)
