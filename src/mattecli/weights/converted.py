"""Our converted weights format, ``<official file>.mattecli.pt``: ``{"mattecli": meta, "state_dict": tensors}``,
written once by fetch/import with its sha256 recorded (:mod:`.integrity`), read back only after that hash matches.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConverterError
from . import integrity

OURS_KEY = "mattecli"


def is_ours(obj: Any) -> bool:
    return isinstance(obj, Mapping) and OURS_KEY in obj and "state_dict" in obj


def save(state_dict: Mapping[str, Any], path: str | os.PathLike, meta: Mapping[str, Any]) -> str:
    """Write our format atomically and record its sha256 (returned)."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({OURS_KEY: dict(meta), "state_dict": dict(state_dict)}, os.fspath(tmp))
        sha = integrity.file_sha256(tmp)
        integrity.forget(path)
        os.replace(tmp, path)
        integrity.record(path, sha)
    finally:
        if tmp.exists():
            tmp.unlink()
    return sha


def load(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state dict, meta) of a file in our format; ConverterError if it is not one. No hash check here (a
    ``--weights FILE`` is the user's own); files read from the cache go through :func:`load_checked`."""
    import torch

    try:
        obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConverterError(f"{path}: not a readable converted weights file ({first[:200]})", path=path) from None
    if not is_ours(obj):
        raise ConverterError(f"{path}: not a mattecli converted weights file", path=path)
    return dict(obj["state_dict"]), dict(obj[OURS_KEY])


def load_checked(path: str | os.PathLike, fix: str) -> tuple[dict, dict, str]:
    """(state dict, meta, sha256) of a cached converted file, after its recorded sha256 matched
    (:class:`~mattecli.errors.ChecksumMismatch` naming the file and ``fix`` otherwise)."""
    sha = integrity.check(path, fix)
    sd, meta = load(path)
    return sd, meta, sha
