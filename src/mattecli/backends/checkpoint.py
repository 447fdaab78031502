"""Shared checkpoint helpers for the families' ``convert.py`` modules.

- :func:`safe_torch_load`: ``torch.load(weights_only=True)`` with a clear refusal for unsafe pickles.
- :func:`unwrap`: take the state dict out of the wrappings the authors ship (``{'state_dict': ...}``,
  ``{'model': ...}``, ``module.`` prefixes).
- :class:`KeyTaker`: pop keys from an official mapping; :meth:`KeyTaker.finish` raises on leftovers.
Our own converted file format lives in :mod:`mattecli.weights.converted`.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ..errors import ConverterError

def _pickle_reason(e: BaseException) -> str:
    """The offending global from PyTorch's refusal, without its advice to disable the safe loader."""
    import re

    m = re.search(r"GLOBAL\s+([\w.]+)", str(e)) or re.search(r"Unsupported global:\s*([\w.]+)", str(e))
    return f" (it references {m.group(1)})" if m else ""


def sniff(path: str | os.PathLike) -> str:
    """What a weights file looks like from its first bytes: ``zip`` (torch.save), ``pickle`` (legacy torch.save,
    Paddle, foamliu's whole-model pickle), ``onnx``, ``tar``, ``hdf5``, ``empty`` or ``unknown``."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "unknown"
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x89HDF"):
        return "hdf5"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:1] == b"\x08" and b"\x12" in head[:16] and (str(path).lower().endswith(".onnx") or b"pytorch" in head
                                                          or b"onnx" in head.lower()):
        return "onnx"
    return "unknown"


_NOT_TORCH = {"onnx": "an ONNX model", "tar": "a tar archive", "hdf5": "an HDF5 (Keras) file", "empty": "empty",
              "unknown": "unrecognised bytes"}


def safe_torch_load(path: str | os.PathLike, what: str = "PyTorch checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors: a file that is not a torch checkpoint at all (ONNX,
    random bytes...) says so; one that pickles Python objects is refused, naming the offending global, without
    PyTorch's advice to turn the safe loader off. Python-2 pickles are read with ``encoding='latin1'``."""
    import pickle

    import torch

    kind = sniff(path)
    if kind not in ("zip", "pickle"):
        raise ConverterError(f"{path}: {_NOT_TORCH.get(kind, kind)}, not a {what}; pass the authors' released "
                             "weights file (`mattecli models info MODEL` names it)", path=path)
    try:
        try:
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except UnicodeDecodeError:   # Python-2 pickles (e.g. DIM's core/demo.py loads with encoding='latin1')
            return torch.load(os.fspath(path), map_location="cpu", weights_only=True, encoding="latin1")
    except pickle.UnpicklingError as e:
        raise ConverterError(
            f"{path}: refused to load: the checkpoint pickles Python objects, not just tensors{_pickle_reason(e)}; "
            "only plain state dicts (tensors, dicts, lists, numbers, strings) are loaded",
            path=path,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConverterError(f"{path}: not a readable {what} ({first[:160]})", path=path) from None


def to_tensor_dict(obj: Mapping[str, Any]) -> dict:
    """Convert a mapping of arrays/tensors to a dict of torch tensors (numpy arrays accepted)."""
    import numpy as np
    import torch

    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out[str(k)] = v
        elif isinstance(v, np.ndarray) or np.isscalar(v):
            out[str(k)] = torch.from_numpy(np.array(v))
        else:
            raise ConverterError(f"weights entry {k!r} is a {type(v).__name__}, not a tensor")
    return out


def unwrap(obj: Any, keys: Iterable[str] = ("state_dict", "model", "model_state_dict", "net", "params")) -> dict:
    """Return the innermost tensor mapping of a checkpoint object."""
    import torch

    seen = 0
    while isinstance(obj, Mapping) and seen < 4:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for k in keys:
            if k in obj and isinstance(obj[k], Mapping):
                obj = obj[k]
                break
        else:
            break
        seen += 1
    if isinstance(obj, Mapping):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return dict(obj)
    raise ConverterError("checkpoint holds no state dict (expected a mapping of tensors, optionally under 'state_dict')")


def strip_prefix(sd: Mapping[str, Any], prefix: str = "module.") -> dict:
    """Remove ``prefix`` from every key if all keys carry it (DataParallel checkpoints)."""
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


class KeyTaker:
    """Pop keys from an official state dict; ``finish()`` raises ConverterError on leftovers."""

    def __init__(self, official: Mapping[str, Any], what: str = "checkpoint"):
        self.src = dict(official)
        self.what = what

    def take(self, key: str):
        try:
            return self.src.pop(key)
        except KeyError:
            raise ConverterError(f"{self.what}: missing key {key!r} (not the official layout for this model)") from None

    def take_prefix(self, prefix: str) -> dict:
        keys = [k for k in self.src if k.startswith(prefix)]
        return {k[len(prefix):]: self.src.pop(k) for k in keys}

    def discard(self, key: str) -> None:
        self.src.pop(key, None)

    def finish(self) -> None:
        if self.src:
            extra = sorted(self.src)
            more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
            raise ConverterError(
                f"{self.what}: unexpected keys {', '.join(extra[:5])}{more} (not the official layout for this model)"
            )


def take_exactly(official: Mapping[str, Any], keys: Iterable[str], what: str = "checkpoint") -> dict:
    """For families whose modules use the official names: take ``keys`` (missing ones raise), leftovers raise."""
    taker = KeyTaker(official, what)
    out = {k: taker.take(k) for k in keys}
    taker.finish()
    return out


def check_state_dict(module, sd: Mapping[str, Any], what: str = "weights") -> None:
    """Strict shape/key check with a one-line error (before load_state_dict)."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        raise ConverterError(f"{what}: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(v.shape) != tuple(sd[k].shape):
            raise ConverterError(f"{what}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
