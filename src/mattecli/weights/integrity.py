"""Every file loaded from the cache is checked against a recorded sha256 first.

* an official file: the registry's sha256 when it has one, else the hash recorded when the file was first stored
  (trust on first use: printed then, checked on every later load);
* our converted ``*.mattecli.pt``: the hash recorded when it was written.

Hashes are recorded in a sidecar ``<file>.sha256`` next to the file (one line: the hex digest). A file whose hash
does not match is never loaded: :class:`~mattecli.errors.ChecksumMismatch` names the file and the fix.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import ChecksumMismatch

SIDE = ".sha256"
CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """The sha256 (hex) of a file: the one file-hashing function of the package (``mattecli.weights.file_sha256``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sidecar(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(p.name + SIDE)


def record(path: str | os.PathLike, sha256: str) -> None:
    """Write ``<path>.sha256`` atomically."""
    side = sidecar(path)
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp.write_text(sha256.lower() + "\n")
    os.replace(tmp, side)


def recorded(path: str | os.PathLike) -> str | None:
    try:
        text = sidecar(path).read_text().strip().lower()
    except OSError:
        return None
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def forget(path: str | os.PathLike) -> None:
    try:
        sidecar(path).unlink()
    except FileNotFoundError:
        pass


def expected_sha(path: str | os.PathLike, registry_sha: str | None = None) -> str | None:
    """The hash ``path`` must have: the registry's, else the recorded one, else None (unknown)."""
    return registry_sha.lower() if registry_sha else recorded(path)


def check(path: str | os.PathLike, fix: str, registry_sha: str | None = None) -> str:
    """Hash ``path`` and compare with :func:`expected_sha`; returns the sha256. A file with no known hash is
    refused too (it was not stored by mattecli, or its record was lost). ``fix`` is the command that repairs it."""
    want = expected_sha(path, registry_sha)
    got = file_sha256(path)
    if want is None:
        raise ChecksumMismatch(f"{path}: no recorded sha256 for this cached file, so it cannot be verified; "
                               f"run `{fix}`", path=path)
    if got != want:
        raise ChecksumMismatch(f"{path}: sha256 {got} does not match the recorded {want} (the file is damaged or "
                               f"was changed); run `{fix}`", path=path)
    return got
