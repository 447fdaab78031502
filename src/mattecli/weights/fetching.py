"""``fetch``: bring a weight set into the cache from its registry sources, verified, converted, hash-recorded.

Sources are tried in the registry's order (:mod:`.sources`); each delivers into ``<file>.part`` with its sha256
computed on the way (:mod:`.download`). The ``.part`` is checked against the registry's size and sha256, converted
when the caller passes ``convert``, then renamed into place with its sha256 recorded. A file the registry has no
sha256 for is trusted on first use: its hash is printed and every later load checks it. A download that fails
verification is deleted; an interrupted one is kept for the next fetch to resume.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..console import info_line
from ..errors import ChecksumMismatch, ConverterError, WeightsUnavailable
from . import integrity
from .cache_files import drop_converted, prepare_dirs, remove, store_official, tidy
from .conversion import Convert, convert_part, run_convert, store_converted
from .download import SourceFailed, discard_part
from .licences import license_notice
from .lock import file_lock
from .lookup import missing_message, published_at
from .paths import (cached_path, converted_name, converted_path, display_name, lock_path, official_path, part_path,
                    refetch_command)
from .sources import describe, fetch_source, fetchable, is_offline, needs_network

Echo = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def _unavailable_message(entry, wset, failures: list[str], offline: bool) -> str:
    """Why the fetch produced no file and what to do, in one line."""
    if offline or not failures:
        head = "offline (--offline / MATTECLI_OFFLINE=1): " if offline else ""
        tried = f"; tried: {' | '.join(failures)}" if failures else ""
        return head + missing_message(entry, wset, offline=offline) + tried
    name = display_name(entry, wset)
    imp = f"`mattecli models import {name} /path/to/{wset.filename}`"
    manual = [s for s in wset.sources if s.kind == "manual"]
    where = published_at(wset) if not manual else "; ".join(
        s.location + (f" ({s.note})" if s.note else "") for s in manual)
    text = " ".join(failures).lower()
    if any(w in text for w in ("no data for", "timed out", "stalled")):
        again = "try again later (on a slow connection with --timeout SECONDS or MATTECLI_TIMEOUT), or "
    elif any(w in text for w in ("refuses", "cannot connect", "connection", "http 5")):
        again = "try again later, or "
    else:
        again = ""
    return (f"could not fetch the weights of {name} ({wset.filename}, licence: {wset.license}): "
            f"{' | '.join(failures)}; {again}download {wset.filename} yourself from {where} and run {imp}")


def manual_instructions(entry, wset) -> str:
    name = display_name(entry, wset)
    where = "; ".join(f"{s.location}" + (f" ({s.note})" if s.note else "") for s in wset.sources
                      if s.kind == "manual") or "the authors' page"
    sha = f" (sha256 {wset.sha256})" if wset.sha256 else ""
    return (f"{name}: download {wset.filename}{sha} by hand from {where}, then run "
            f"`mattecli models import {name} /path/to/{wset.filename}`")


def _present(entry, wset, convert: Convert | None) -> Path | None:
    """The cached path when nothing is left to do (our converted file, or the official file when there is nothing
    to convert with); no hashing here (loads check the hash)."""
    if convert is not None and not converted_path(entry, wset).is_file():
        return None
    return cached_path(entry, wset)


def _conversion_failed(entry, wset, e: ConverterError) -> ConverterError:
    name = display_name(entry, wset)
    return ConverterError(f"{e}; the verified {wset.filename} stays in the cache: once the cause is fixed, "
                          f"`mattecli models fetch {name}` converts it without downloading it again", path=e.path)


def _ready(entry, wset, convert: Convert | None, echo: Echo) -> Path | None:
    """Under the lock: the cached path when present; converts a (hash-checked) official file that lacks its
    converted twin (ConverterError when that fails); a damaged official file is removed (None: fetch it again)."""
    official, conv = official_path(entry, wset), converted_path(entry, wset)
    if convert is not None and official.is_file() and not conv.is_file():
        try:
            sha = integrity.check(official, refetch_command(entry, wset), wset.sha256)
        except ChecksumMismatch as e:
            echo(f"{e}: downloading it again")
            remove(official)
            return cached_path(entry, wset)
        try:
            res = run_convert(convert, wset, official)
        except ConverterError as e:
            raise _conversion_failed(entry, wset, e) from None
        store_converted(entry, wset, res[0], res[1], sha)
        echo(f"converted to our format: {converted_name(wset)}")
    return cached_path(entry, wset)


def _remake(entry, wset, convert: Convert | None, echo: Echo) -> Path | None:
    """``--force`` under the lock: our converted file is made again; from the cached official file when its hash
    verifies (no download, works offline), else None (the official file is removed and downloaded again)."""
    drop_converted(entry, wset)
    official = official_path(entry, wset)
    if not official.is_file():
        return None
    try:
        integrity.check(official, refetch_command(entry, wset), wset.sha256)
    except ChecksumMismatch as e:
        echo(f"{e}: downloading it again")
        remove(official)
        return None
    echo(f"{official.name} is cached and verifies: making our converted file again from it")
    return _ready(entry, wset, convert, echo)


def _problem(t, wset) -> str | None:
    if wset.size is not None and t.size != wset.size:
        return f"size {t.size} bytes, expected {wset.size}"
    if wset.sha256 and t.sha256 != wset.sha256.lower():
        return f"sha256 {t.sha256}, expected {wset.sha256}"
    return None


class _Attempts:
    """What the sources did, for the final message."""

    def __init__(self):
        self.failures: list[str] = []
        self.mismatched = False


def _from_source(src, entry, wset, part: Path, *, timeout, progress, echo: Echo, attempts: _Attempts):
    """One source -> a verified ``.part`` (its Transfer), or None after recording why not."""
    for attempt in (0, 1):
        try:
            t = fetch_source(src, part, wset=wset, timeout=timeout, progress=progress, resume=attempt == 0,
                             echo=echo)
        except SourceFailed as e:
            if not e.partial:
                discard_part(part)
            why = " ".join(str(e).split())
            attempts.failures.append(why)
            echo(f"source failed: {why}")
            return None
        except OSError as e:  # writing into the cache failed (disk full, permissions)
            discard_part(part)
            raise WeightsUnavailable(f"cannot write {part}: {e.strerror or e}; free some space or point "
                                     "MATTECLI_HOME at a writable folder", path=part) from None
        problem = _problem(t, wset)
        if problem is None:
            return t
        discard_part(part)
        if t.resumed and attempt == 0:
            echo(f"resumed download of {wset.filename} does not verify ({problem}); starting over")
            continue
        attempts.mismatched = True
        attempts.failures.append(f"{describe(src)}: {problem}")
        echo(f"checksum mismatch from {describe(src)}: {problem}; file discarded")
        return None
    return None  # pragma: no cover - the loop always returns


def _install(entry, wset, src, part: Path, t, convert: Convert | None, force: bool, echo: Echo,
             attempts: _Attempts) -> Path | None:
    """Convert (when asked) and move a verified ``.part`` into place. None if an unverifiable file fails to convert
    (nothing is kept: the next source may deliver another file); ConverterError if a verified file fails to convert
    (it is kept, converted later by the next fetch)."""
    if not wset.sha256:
        echo(f"note: the registry has no sha256 for {wset.filename}; recorded sha256 {t.sha256} ({t.size} bytes): "
             "every later load checks it")
    conv, failed = None, None
    if convert is not None:
        try:
            conv = convert_part(convert, wset, part)
        except ConverterError as e:
            if not wset.sha256:  # unverifiable and unconvertible: do not keep it
                discard_part(part)
                attempts.failures.append(f"{describe(src)}: {e}")
                return None
            failed = e
    target = official_path(entry, wset)
    drop_converted(entry, wset)
    store_official(part, target, t.sha256)
    discard_part(part)
    echo(f"verified and saved {target}")
    if failed is not None:
        raise _conversion_failed(entry, wset, failed)
    if conv is not None:
        store_converted(entry, wset, conv[0], conv[1], t.sha256)
        echo(f"converted to our format: {converted_name(wset)}")
    return cached_path(entry, wset)


def fetch(entry, wset, *, offline: bool | None = None, force: bool = False, progress: bool = True,
          timeout: float | None = None, echo: Echo | None = info_line, convert: Convert | None = None) -> Path:
    """Make the weight set available in the cache and return the path to load; the licence line comes first.
    ``convert``: see the module doc of :mod:`.conversion`. Raises WeightsUnavailable, ChecksumMismatch,
    ConverterError: each one line saying why no usable file came and what to do."""
    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} needs no weights")
    echo = echo or _quiet
    echo(license_notice(entry, wset))
    off = is_offline(offline)
    if not force:
        p = _present(entry, wset, convert)
        if p is not None:
            return p
    if off and not official_path(entry, wset).is_file() and not any(fetchable(s) and not needs_network(s)
                                                                      for s in wset.sources):
        raise WeightsUnavailable(_unavailable_message(entry, wset, [], True))
    prepare_dirs(entry, wset)

    def waiting():
        echo(f"another mattecli process is fetching {wset.filename}; waiting for it")

    with file_lock(lock_path(entry, wset), on_wait=waiting):
        tidy(entry, wset, time.time())
        if not force:  # another process may have finished while we waited; convert a file that lacks its twin
            p = _ready(entry, wset, convert, echo)
            if p is not None:
                return p
        part = part_path(entry, wset)
        if force:
            discard_part(part)
            p = _remake(entry, wset, convert, echo)
            if p is not None:
                return p
        attempts = _Attempts()
        for src in wset.sources:
            if src.kind == "manual":  # its address is already in the message
                continue
            if off and needs_network(src):
                attempts.failures.append(f"{describe(src)}: skipped (offline)")
                continue
            t = _from_source(src, entry, wset, part, timeout=timeout, progress=progress, echo=echo,
                             attempts=attempts)
            if t is None:
                continue
            p = _install(entry, wset, src, part, t, convert, force, echo, attempts)
            if p is not None:
                return p
        msg = _unavailable_message(entry, wset, attempts.failures, off)
        if attempts.mismatched:
            raise ChecksumMismatch(f"{display_name(entry, wset)}: no source delivered a file matching the registry; "
                                   f"{msg}")
        raise WeightsUnavailable(msg)
