"""Inputs and outputs that are URLs: object stores (``s3://``, ``gs://``, ``az://``...), ``memory://``, ``file://``,
read and written through fsspec, so that a batch on a cluster needs no shared file system.

* :func:`is_url` / :func:`url_of`: a URL, also in the form ``pathlib`` leaves of it (``Path("s3://b/k")`` is
  ``s3:/b/k``; the plan builds output paths with ``Path``);
* ``file://`` URLs are plain local paths (:func:`local_of`), used in place;
* every other URL is *staged* around the task (:func:`run_staged`): its inputs (the item and its partner files) are
  downloaded into a private temp folder, the task writes its outputs there with its usual atomic writes, and each
  finished output is uploaded to its URL in one piece (:func:`put_file`: a single PUT on object stores, where an
  object appears whole or not at all; a temp name and a rename elsewhere). The task itself only ever sees local
  files, so every verb works unchanged;
* :func:`lexists` / :func:`complete` answer the skip/resume check for URLs (an object that exists is complete: it
  was uploaded whole); :func:`read_bytes` / :func:`write_bytes` serve readers and writers that take URLs directly;
* :func:`expand_url` lists a URL folder (recursively) or glob as batch items, like
  :func:`mattecli.batch.inputs.expand_inputs` does for local paths.

Cloud file systems come with their fsspec packages (``s3fs``, ``gcsfs``, ``adlfs``: ``pip install 'mattecli[cloud]'``);
fsspec itself (``memory://``, ``file://``, ``http(s)://``) comes with torch.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..errors import InputError, UsageError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/+(.*)$", re.S)
#: object stores: an upload appears whole or not at all (no temp name + rename needed)
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "memory"})


def _known(scheme: str) -> bool:
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:        # pragma: no cover - fsspec comes with torch
        return False
    return scheme in known_implementations or scheme in registry


def is_url(p) -> bool:
    """``s3://bucket/key``, ``memory://x``, ``file:///abs`` (also as ``pathlib`` collapsed them: ``s3:/bucket/key``);
    not a Windows drive (``C:/``), not an unknown scheme."""
    if p is None:
        return False
    m = _SCHEME.match(os.fspath(p))
    return bool(m) and _known(m.group(1).lower())


def url_of(p) -> str:
    """The URL ``p`` stands for, with its ``//`` back (``Path("s3://b/k")`` -> ``s3://b/k``; ``file:/x`` ->
    ``file:///x``)."""
    s = os.fspath(p)
    m = _SCHEME.match(s)
    if not m or not _known(m.group(1).lower()):
        return s
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme in ("file", "local"):
        return "file:///" + rest.lstrip("/")
    return f"{scheme}://{rest}"


def named(p):
    """``p`` as a report names it: a URL as a URL (``s3://b/k``, not ``s3:/b/k``), anything else as it is."""
    return url_of(p) if is_url(p) else p


def local_of(p) -> str | None:
    """The local path of a ``file://`` URL (None for other URLs and for plain paths)."""
    if not is_url(p):
        return None
    u = url_of(p)
    return "/" + u.split("://", 1)[1].lstrip("/") if u.startswith("file://") else None


def is_remote(p) -> bool:
    """A URL that is not a local file (needs fsspec to read or write)."""
    return is_url(p) and local_of(p) is None


def filesystem(p):
    """(fsspec file system, path inside it) for a URL; a usage error when its package is missing."""
    import fsspec

    u = url_of(p)
    try:
        return fsspec.core.url_to_fs(u)
    except ImportError as e:
        raise UsageError(f"{u}: reading or writing {u.split('://')[0]}:// needs its fsspec package ({e}); "
                         "pip install 'mattecli[cloud]' (s3fs, gcsfs, adlfs) or the one for your store") from None
    except ValueError as e:
        raise UsageError(f"{u}: not a URL fsspec understands ({e})") from None


def _fail(u: str, e: Exception, what: str) -> InputError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return InputError(f"{u}: {what} failed ({first})", path=u)


# -- small reads and writes ----------------------------------------------------------------------------------------
def lexists(p) -> bool:
    loc = local_of(p)
    if loc is not None or not is_url(p):
        return os.path.lexists(loc or p)
    fs, path = filesystem(p)
    try:
        return bool(fs.exists(path))
    except OSError as e:
        raise _fail(url_of(p), e, "checking whether it exists")


def complete(p, is_complete: Callable[[Path], bool]) -> bool:
    """``is_complete`` for local files; for an object-store URL, whether it exists (uploads are whole)."""
    loc = local_of(p)
    if loc is not None or not is_url(p):
        return is_complete(Path(loc or p))
    return lexists(p)


def read_bytes(p) -> bytes:
    loc = local_of(p)
    if loc is not None or not is_url(p):
        return Path(loc or p).read_bytes()
    fs, path = filesystem(p)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise InputError(f"{url_of(p)}: no such object", path=url_of(p)) from None
    except OSError as e:
        raise _fail(url_of(p), e, "reading")


def write_bytes(p, data: bytes) -> None:
    """Write an object/file in one piece: a PUT where that is atomic, else a temp name then a rename."""
    loc = local_of(p)
    if loc is not None or not is_url(p):
        from ..imaging.io import atomic_write_bytes

        atomic_write_bytes(loc or p, data)
        return
    fs, path = filesystem(p)
    try:
        if _put_is_atomic(fs):
            fs.pipe_file(path, data)
            return
        tmp = _temp_name(path)
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    except OSError as e:
        raise _fail(url_of(p), e, "writing")


def _put_is_atomic(fs) -> bool:
    protos = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(pr in ATOMIC_PUT for pr in protos)


def _temp_name(path: str) -> str:
    head, name = path.rsplit("/", 1) if "/" in path else ("", path)
    from ..formats import TEMP_SUFFIX

    tmp = f".{name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    return f"{head}/{tmp}" if head else tmp


def get_file(p, local: str | os.PathLike) -> None:
    fs, path = filesystem(p)
    try:
        fs.get_file(path, os.fspath(local))
    except FileNotFoundError:
        raise InputError(f"{url_of(p)}: no such object", path=url_of(p)) from None
    except OSError as e:
        raise _fail(url_of(p), e, "downloading")


def put_file(local: str | os.PathLike, p) -> None:
    """Upload a finished local file to a URL in one piece (see :func:`write_bytes`)."""
    fs, path = filesystem(p)
    try:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            with contextlib.suppress(OSError, NotImplementedError):
                fs.makedirs(parent, exist_ok=True)
        if _put_is_atomic(fs):
            fs.put_file(os.fspath(local), path)
            return
        tmp = _temp_name(path)
        fs.put_file(os.fspath(local), tmp)
        fs.mv(tmp, path)
    except OSError as e:
        raise _fail(url_of(p), e, "uploading")


# -- listing -------------------------------------------------------------------------------------------------------
def expand_url(spec: str, exts: Sequence[str], *, what: str = "input"):
    """Items for a URL: one object, every object under a prefix (recursive; hidden names and temp files skipped) or
    a glob, in natural order; ``Item.rel`` is the key under the prefix (for ``{relpath}``). Raises UsageError when
    nothing is found."""
    from .inputs import Item, _hidden, natural_key

    fs, path = filesystem(spec)
    exts = tuple(e.lower() for e in exts)
    scheme = url_of(spec).split("://", 1)[0]
    root = None
    try:
        if any(c in path for c in "*?["):
            found = sorted(fs.glob(path), key=natural_key)
            fixed = re.split(r"[*?\[]", path, maxsplit=1)[0].rsplit("/", 1)[0]
            root = fixed
        elif fs.isdir(path):
            root = path.rstrip("/")
            found = sorted(fs.find(root), key=natural_key)
        elif fs.isfile(path):
            found = [path]
        else:
            raise UsageError(f"{what} not found: {url_of(spec)}")
    except OSError as e:
        raise UsageError(f"{url_of(spec)}: cannot list it ({e})") from None
    items = []
    for f in found:
        rel = f[len(root):].lstrip("/") if root is not None and f.startswith(root) else f.rsplit("/", 1)[-1]
        if root is not None and (Path(rel).suffix.lower() not in exts or _hidden(Path(rel))):
            continue
        fsp = fs.unstrip_protocol(f) if hasattr(fs, "unstrip_protocol") else f"{scheme}://{f}"
        items.append(Item(path=Path(fsp), rel=Path(rel), root=Path(fs.unstrip_protocol(root)) if root else None))
    if not items:
        raise UsageError(f"no {what} files found in {url_of(spec)} (looked for {', '.join(exts)})")
    return items


# -- staging around a task -----------------------------------------------------------------------------------------
def needs_staging(item) -> bool:
    paths = [item.path, *item.partners.values(), *(item.info.get("outputs") or [])]
    return any(is_url(p) for p in paths)


@contextlib.contextmanager
def staged(item) -> Iterator[tuple[object, dict]]:
    """A copy of ``item`` whose URL inputs are local files and whose URL outputs are local temp paths, and the map
    {local output path: URL} to upload after the task (``file://`` URLs are used in place)."""
    if not needs_staging(item):
        yield item, {}
        return
    tmp = tempfile.mkdtemp(prefix="mattecli-stage-")
    try:
        def fetch(p, k: int):
            loc = local_of(p)
            if loc is not None or not is_url(p):
                return Path(loc or p)
            dest = Path(tmp, "in", str(k), url_of(p).rstrip("/").rsplit("/", 1)[-1] or "input")
            dest.parent.mkdir(parents=True)
            get_file(p, dest)
            return dest

        local = replace(item, path=fetch(item.path, 0), partners={}, info=dict(item.info))
        for k, (kind, p) in enumerate(item.partners.items(), 1):
            local.partners[kind] = fetch(p, k)
        uploads: dict = {}
        if "outputs" in item.info:
            outs = []
            for k, p in enumerate(item.info["outputs"]):
                loc = local_of(p)
                if loc is not None or not is_url(p):
                    outs.append(Path(loc or p))
                    continue
                dest = Path(tmp, "out", str(k), url_of(p).rstrip("/").rsplit("/", 1)[-1])
                uploads[str(dest)] = p
                outs.append(dest)
            local.info["outputs"] = outs
        yield local, uploads
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_staged(item, fn: Callable):
    """``fn(item)`` with URL inputs downloaded and URL outputs uploaded when it succeeds; the result's outputs are
    named as planned (URLs as URLs, ``file://`` ones included)."""
    if not needs_staging(item):
        return fn(item)
    planned = {os.fspath(p): p for p in item.info.get("outputs") or []}
    with staged(item) as (local, uploads):
        res = fn(local)
        outputs = res.get("outputs", []) if isinstance(res, dict) else list(res or [])
        back = {os.fspath(p): named(orig)
                for p, orig in zip(local.info.get("outputs") or [], item.info.get("outputs") or [])}
        for loc, url in uploads.items():
            if os.path.exists(loc):
                put_file(loc, url)
        written = [back.get(os.fspath(o), planned.get(os.fspath(o), o)) for o in outputs]
    if isinstance(res, dict):
        return {**res, "outputs": written}
    return written
