"""Fetch, import, convert and verify weight files in the cache.

Cache layout (``home()`` = ``$MATTECLI_HOME``, else ``$XDG_CACHE_HOME/mattecli``, else ``~/.cache/mattecli``)::

    weights/<entry>/<tag>/<official file name>              the verified official file
    weights/<entry>/<tag>/<official file name>.mattecli.pt  our converted state dict (families with a convert hook)
    weights/<entry>/<tag>/<official file name>.part[.json]  an interrupted download, resumed by the next fetch
    locks/<entry>/<tag>/<official file name>.lock           inter-process lock

Only verified files are ever renamed into place; a download that fails verification is deleted.

Conversion: ``fetch`` and ``import_file`` take ``convert(path) -> (our_state_dict, meta)`` from the caller (the
family's converter, see ``mattecli.backends.install``; this package never imports the backends) and store the result
as ``<file>.mattecli.pt`` (loaded in preference to the official file). Every stored file gets its sha256 recorded
(:mod:`.integrity`) and is checked against it on every load.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import ChecksumMismatch, ConverterError, InputError, MatteError, WeightsUnavailable
from . import cache_dir, converted_name, file_sha256, home
from .download import SourceFailed, discard_part
from .lock import file_lock
from . import integrity
from .sources import describe, fetch_source, fetchable, is_offline, needs_network

Echo = Callable[[str], None]


def _stderr_echo(msg: str) -> None:
    print(f"mattecli: {msg}", file=sys.stderr, flush=True)


def display_name(entry, wset) -> str:
    if wset is None or not entry.weights or wset is entry.weights[0] or wset == entry.weights[0]:
        return entry.name
    return f"{entry.name}.{wset.tag}"


def part_path(entry, wset) -> Path:
    return cache_dir(entry, wset) / (wset.filename + ".part")


def lock_path(entry, wset) -> Path:
    return home() / "locks" / entry.name / wset.tag / (wset.filename + ".lock")


# -- licences -----------------------------------------------------------------------------------------------------
_NC = re.compile(r"non[- ]?commercial|\bnc\b|-nc\b|research[- ]only|academic|no commercial|personal use", re.I)
_GPL = re.compile(r"\b(a|l)?gpl\b|gnu (affero |lesser )?general public", re.I)


def license_flags(text: str) -> list[str]:
    """Flags from the licence's leading statement (text in parentheses is commentary, e.g. history)."""
    head = (text or "").split("(")[0].strip()
    flags = []
    if _NC.search(head):
        flags.append("non-commercial")
    if _GPL.search(head):
        flags.append("copyleft (GPL)")
    if not head or re.match(r"(unknown|unspecified|none|not stated|\?)", head, re.I):
        flags.append("unknown")
    return flags


def license_notice(entry, wset) -> str:
    lic = wset.license or "unknown"
    msg = f"licence of the {display_name(entry, wset)} weights ({wset.filename}): {lic}"
    flags = license_flags(lic)
    if "non-commercial" in flags:
        msg += " -- NON-COMMERCIAL: research/personal use only; do not use these weights in a commercial product"
    if "copyleft (GPL)" in flags:
        msg += " -- GPL: works you distribute that include these weights must be GPL-compatible"
    if "unknown" in flags:
        msg += " -- the authors state no licence for the weights: ask them before any commercial use"
    if entry.code_license:
        msg += f"; code licence: {entry.code_license}"
    return msg


# -- conversion ---------------------------------------------------------------------------------------------------
Convert = Callable[[Path], tuple]


def _run_convert(convert: Convert, wset, path: Path):
    """``convert(path)`` with its errors as one-line ConverterErrors naming the file."""
    try:
        return convert(path)
    except ConverterError as e:
        raise ConverterError(f"{path}: {e}" if str(path) not in str(e) else str(e), path=path) from None
    except MatteError:
        raise
    except ImportError as e:
        raise ConverterError(f"{path}: converting {wset.format} weights needs the Python package "
                             f"{e.name or e}: pip install {e.name or e}", path=path) from None
    except Exception as e:  # a corrupt file makes third-party parsers raise anything
        raise ConverterError(f"{path}: cannot convert these weights ({type(e).__name__}: {e})", path=path) from None


def _store_converted(entry, wset, ours, meta, source_sha: str | None) -> Path:
    from .. import __version__
    from . import converted

    d = cache_dir(entry, wset)
    d.mkdir(parents=True, exist_ok=True)
    target = d / converted_name(wset)
    full_meta = dict(meta)
    full_meta.update({"family": entry.family, "entry": entry.name, "tag": wset.tag, "source_file": wset.filename,
                      "source_sha256": source_sha, "source_format": wset.format, "mattecli_version": __version__})
    converted.save(ours, target, full_meta)
    return target


def _store_official(part: Path, target: Path, sha: str) -> None:
    """Rename a verified ``.part`` into place and record its sha256 (trust on first use where the registry has
    none)."""
    integrity.forget(target)
    os.replace(part, target)
    integrity.record(target, sha)


def _prepare_dirs(entry, wset) -> Path:
    d = cache_dir(entry, wset)
    for folder in (d, lock_path(entry, wset).parent):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WeightsUnavailable(f"cannot create the cache folder {folder}: {e.strerror or e}; point "
                                     "MATTECLI_HOME at a writable folder", path=folder) from None
    return d


def _remove(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


# -- fetch --------------------------------------------------------------------------------------------------------
def _unavailable_message(entry, wset, failures: list[str], offline: bool) -> str:
    from . import missing_message

    head = "offline (--offline / MATTECLI_OFFLINE=1): " if offline else ""
    tried = f"; tried: {' | '.join(failures)}" if failures else ""
    return head + missing_message(entry, wset, offline=offline) + tried


def manual_instructions(entry, wset) -> str:
    name = display_name(entry, wset)
    where = "; ".join(f"{s.location}" + (f" ({s.note})" if s.note else "") for s in wset.sources
                      if s.kind == "manual") or "the authors' page"
    sha = f" (sha256 {wset.sha256})" if wset.sha256 else ""
    return (f"{name}: download {wset.filename}{sha} by hand from {where}, then run "
            f"`mattecli models import {name} /path/to/{wset.filename}`")


def fetch(entry, wset, *, offline: bool | None = None, force: bool = False, progress: bool = True,
          timeout: float | None = None, echo: Echo | None = _stderr_echo, convert: Convert | None = None) -> Path:
    """Make the weight set available in the cache and return the path to load. ``convert``: see the module doc.
    Raises WeightsUnavailable, ChecksumMismatch."""
    from . import cached_path

    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} needs no weights")
    echo = echo or (lambda m: None)
    off = is_offline(offline)
    name = display_name(entry, wset)
    if not force:
        p = _ready(entry, wset, convert, echo)
        if p is not None:
            return p
    if off and not any(fetchable(s) and not needs_network(s) for s in wset.sources):
        raise WeightsUnavailable(_unavailable_message(entry, wset, [], True))

    def waiting():
        echo(f"another mattecli process is fetching {wset.filename}; waiting for it")

    _prepare_dirs(entry, wset)

    with file_lock(lock_path(entry, wset), on_wait=waiting):
        if not force:  # another process may have finished while we waited
            p = _ready(entry, wset, convert, echo)
            if p is not None:
                return p
        d = cache_dir(entry, wset)
        d.mkdir(parents=True, exist_ok=True)
        part = part_path(entry, wset)
        if force:
            discard_part(part)
        target = d / wset.filename
        failures: list[str] = []
        mismatched = False
        echo(license_notice(entry, wset))
        for src in wset.sources:
            if src.kind == "manual":  # its address is already in the message
                continue
            if off and needs_network(src):
                failures.append(f"{describe(src)}: skipped (offline)")
                continue
            for attempt in (0, 1):
                try:
                    t = fetch_source(src, part, wset=wset, timeout=timeout, progress=progress,
                                     resume=attempt == 0, echo=echo)
                except SourceFailed as e:
                    if not e.partial:
                        discard_part(part)
                    failures.append(str(e))
                    echo(f"source failed: {e}")
                    break
                except OSError as e:  # writing into the cache failed (disk full, permissions)
                    discard_part(part)
                    raise WeightsUnavailable(
                        f"cannot write {part}: {e.strerror or e}; free some space or point MATTECLI_HOME at a "
                        "writable folder", path=part) from None
                problem = None
                if wset.size is not None and t.size != wset.size:
                    problem = f"size {t.size} bytes, expected {wset.size}"
                elif wset.sha256 and t.sha256 != wset.sha256.lower():
                    problem = f"sha256 {t.sha256}, expected {wset.sha256}"
                if problem:
                    discard_part(part)
                    if t.resumed and attempt == 0:
                        echo(f"resumed download of {wset.filename} does not verify ({problem}); starting over")
                        continue
                    mismatched = True
                    failures.append(f"{describe(src)}: {problem}")
                    echo(f"checksum mismatch from {describe(src)}: {problem}; file discarded")
                    break
                if not wset.sha256:
                    echo(f"note: the registry has no sha256 for {wset.filename}; recorded sha256 {t.sha256} "
                         f"({t.size} bytes): every later load checks it")
                if convert is not None:
                    try:
                        conv = _convert_part(convert, wset, part)
                    except ConverterError as e:
                        if not wset.sha256:  # unverifiable and unconvertible: do not keep it
                            discard_part(part)
                            failures.append(f"{describe(src)}: {e}")
                            break
                        conv = None
                        echo(f"warning: {e}; kept the verified official file")
                else:
                    conv = None
                _store_official(part, target, t.sha256)
                discard_part(part)
                echo(f"verified and saved {target}")
                if conv is not None:
                    _store_converted(entry, wset, conv[0], conv[1], t.sha256)
                    echo(f"converted to our format: {converted_name(wset)}")
                elif force:
                    _remove(d / converted_name(wset))
                    integrity.forget(d / converted_name(wset))
                return cached_path(entry, wset)
        msg = _unavailable_message(entry, wset, failures, off)
        if mismatched:
            raise ChecksumMismatch(f"{name}: no source delivered a file matching the registry; {msg}")
        raise WeightsUnavailable(msg)


def _convert_part(convert: Convert, wset, part: Path):
    """Convert a verified ``.part`` under its official file name (converters may look at the suffix), without
    making it visible in the cache yet: a hard link (or copy) in a private temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".convert-", dir=part.parent) as tmp:
        view = Path(tmp) / wset.filename
        try:
            os.link(part, view)
        except OSError:
            shutil.copyfile(part, view)
        try:
            return _run_convert(convert, wset, view)
        except ConverterError as e:
            raise ConverterError(str(e).replace(str(view), wset.filename), path=wset.filename) from None


def _ready(entry, wset, convert: Convert | None, echo: Echo) -> Path | None:
    """The cached path when present; converts an official file that lacks its converted twin."""
    from . import cached_path

    d = cache_dir(entry, wset)
    official = d / wset.filename
    conv = d / converted_name(wset)
    if convert is not None and official.is_file() and not conv.is_file():
        try:
            sha = integrity.check(official, f"mattecli models fetch {display_name(entry, wset)} --force",
                                  wset.sha256)
            res = _run_convert(convert, wset, official)
        except (ConverterError, ChecksumMismatch) as e:
            echo(f"warning: {e}")
            res = None
        if res is not None:
            _store_converted(entry, wset, res[0], res[1], sha)
    return cached_path(entry, wset)


# -- import -------------------------------------------------------------------------------------------------------
def import_file(entry, wset, file: str | os.PathLike, *, echo: Echo | None = _stderr_echo,
                progress: bool = True, convert: Convert | None = None) -> Path:
    """Verify ``file`` (sha256 when known, conversion), then store it in the cache. Returns the path to load.

    The official file is stored under its official name when it is the official file (same name, or sha256
    verified) or when the family has no converter; a differently named file or a folder that the family's converter
    accepts (e.g. an unpacked archive) is stored only as our converted ``.mattecli.pt``.
    """
    from . import cached_path
    from .download import copy_file

    if wset is None:
        raise WeightsUnavailable(f"model {entry.name} takes no weights")
    echo = echo or (lambda m: None)
    src = Path(file).expanduser()
    name = display_name(entry, wset)
    if src.is_dir():
        if convert is None:
            raise InputError(f"{src}: is a folder; pass the weights file {wset.filename}", path=src)
        sha = None
    elif not src.is_file():
        raise InputError(f"{src}: no such file; pass the downloaded {wset.filename}", path=src)
    else:
        sha = file_sha256(src)
    verified = False
    if sha is not None and wset.sha256:
        if sha != wset.sha256.lower():
            raise ChecksumMismatch(
                f"{src}: sha256 {sha} does not match the registry's {wset.sha256} for {name} ({wset.filename}); "
                "this is not the official file (or it is damaged): download it again", path=src)
        verified = True
    elif sha is not None:
        echo(f"note: the registry has no sha256 for {wset.filename}; recorded this file's sha256 {sha}: every "
             "later load checks it")
    if sha is not None and wset.size is not None and src.stat().st_size != wset.size:
        raise ChecksumMismatch(f"{src}: {src.stat().st_size} bytes, the registry says {wset.size} for "
                               f"{wset.filename}", path=src)
    conv = _run_convert(convert, wset, src) if convert is not None else None
    if sha is None and conv is None:  # pragma: no cover - a folder needs a hook (checked above)
        raise InputError(f"{src}: cannot import a folder for {name}", path=src)
    keep_official = sha is not None and (verified or src.name == wset.filename or conv is None)
    echo(license_notice(entry, wset))
    d = _prepare_dirs(entry, wset)
    target = d / wset.filename
    with file_lock(lock_path(entry, wset)):
        if keep_official:
            same = target.exists() and os.path.samefile(src, target)
            if not same:
                part = d / f".{wset.filename}.import-{os.getpid()}.part"
                try:
                    t = copy_file(src, part, label=wset.filename, progress=progress)
                    if t.sha256 != sha:
                        raise InputError(f"{src}: the file changed while it was being imported; try again",
                                         path=src)
                    _store_official(part, target, sha)
                finally:
                    _remove(part)
            elif integrity.recorded(target) is None:
                integrity.record(target, sha)
        else:
            _remove(target)  # an older official file would not match the converted one
            integrity.forget(target)
        if conv is not None:
            meta = dict(conv[1])
            if not keep_official:
                meta.setdefault("imported_from", src.name)
            _store_converted(entry, wset, conv[0], meta, sha)
            echo(f"converted to our format: {converted_name(wset)}")
        else:
            _remove(d / converted_name(wset))
            integrity.forget(d / converted_name(wset))
        discard_part(part_path(entry, wset))
    echo(f"imported {src} into {d}")
    return cached_path(entry, wset)


# -- verify -------------------------------------------------------------------------------------------------------
@dataclass
class VerifyRow:
    name: str
    tag: str
    file: str
    status: str    # ok | mismatch | unknown-hash | missing | converted-ok | converted-stale | unreadable | partial
    detail: str = ""
    path: str = ""

    @property
    def bad(self) -> bool:
        return self.status in ("mismatch", "converted-stale", "unreadable")

    def to_dict(self) -> dict:
        return asdict(self)


def verify_set(entry, wset) -> list[VerifyRow]:
    name = display_name(entry, wset)
    d = cache_dir(entry, wset)
    official = d / wset.filename
    conv = d / converted_name(wset)
    part = part_path(entry, wset)
    rows: list[VerifyRow] = []
    official_sha = None
    if official.is_file():
        official_sha = file_sha256(official)
        want = integrity.expected_sha(official, wset.sha256)
        if want is None:
            rows.append(VerifyRow(name, wset.tag, wset.filename, "unknown-hash",
                                  f"registry has no sha256 and none was recorded; file sha256 {official_sha}",
                                  str(official)))
        elif official_sha == want:
            how = "" if wset.sha256 else " (recorded when first stored)"
            rows.append(VerifyRow(name, wset.tag, wset.filename, "ok", f"sha256 {official_sha}{how}", str(official)))
        else:
            rows.append(VerifyRow(name, wset.tag, wset.filename, "mismatch",
                                  f"sha256 {official_sha}, expected {want}; run `mattecli models fetch "
                                  f"{name} --force`", str(official)))
    elif not conv.is_file():
        rows.append(VerifyRow(name, wset.tag, wset.filename, "missing", f"run `mattecli models fetch {name}`"))
    if conv.is_file():
        rows.append(_verify_converted(entry, wset, name, conv, official_sha))
    if part.is_file():
        rows.append(VerifyRow(name, wset.tag, part.name, "partial",
                              f"interrupted download ({part.stat().st_size} bytes); `mattecli models fetch {name}` "
                              "resumes it", str(part)))
    return rows


def _verify_converted(entry, wset, name, conv: Path, official_sha: str | None) -> VerifyRow:
    from . import converted

    try:
        integrity.check(conv, f"mattecli models fetch {name} --force")
    except ChecksumMismatch as e:
        return VerifyRow(name, wset.tag, conv.name, "mismatch", str(e), str(conv))
    try:
        sd, meta = converted.load(conv)
    except ConverterError as e:
        return VerifyRow(name, wset.tag, conv.name, "unreadable", str(e), str(conv))
    src_sha = meta.get("source_sha256")
    want = official_sha or (wset.sha256.lower() if wset.sha256 else None)
    if meta.get("family") not in (None, entry.family):
        return VerifyRow(name, wset.tag, conv.name, "converted-stale",
                         f"converted for family {meta.get('family')}", str(conv))
    if want is not None and src_sha != want:
        return VerifyRow(name, wset.tag, conv.name, "converted-stale",
                         f"made from sha256 {src_sha}, expected {want}; run `mattecli models fetch {name} --force`",
                         str(conv))
    return VerifyRow(name, wset.tag, conv.name, "converted-ok",
                     f"{len(sd)} tensors from sha256 {src_sha}", str(conv))


def verify(pairs) -> list[VerifyRow]:
    rows: list[VerifyRow] = []
    for entry, wset in pairs:
        rows.extend(verify_set(entry, wset))
    return rows


def is_cached(entry, wset) -> bool:
    from . import cached_path

    return wset is not None and cached_path(entry, wset) is not None


def clear(entry, wset) -> None:
    """Remove a weight set's cache folder (used by tests and ``fetch --force`` callers)."""
    shutil.rmtree(cache_dir(entry, wset), ignore_errors=True)


def describe_sources(wset) -> list[str]:
    return [describe(s) for s in wset.sources]

