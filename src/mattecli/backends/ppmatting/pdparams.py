"""Read and write Paddle ``.pdparams`` files without Paddle.

A ``.pdparams`` file is a Python pickle of ``{structured_name: value}`` written by ``paddle.save(state_dict)``; each
value is a numpy array, or (Paddle >= 2.1) a ``(name, ndarray)`` tuple. Some versions add a
``'StructuredToParameterName@@'`` dict of names. The reader is a restricted unpickler: it resolves only the numpy
functions that rebuild arrays and plain containers, so a file that tries to build any other object is refused and
nothing in it is executed.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from ...errors import ConverterError

NAME_TABLE_KEY = "StructuredToParameterName@@"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("_codecs", "encode"),  # protocol-2 pickles of numpy byte buffers
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):  # pragma: no cover - pdparams have no persistent ids
        raise pickle.UnpicklingError("unexpected persistent id")


def read_pdparams(path: str | os.PathLike) -> dict:
    """{name: numpy array} from a .pdparams file (name table dropped)."""
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(io.BufferedReader(f)).load()
    except pickle.UnpicklingError as e:
        raise ConverterError(f"{path}: refused: not a plain Paddle state dict ({e})", path=path) from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, ImportError) as e:
        raise ConverterError(f"{path}: not a readable .pdparams file ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(obj, dict):
        raise ConverterError(f"{path}: a .pdparams file holds a dict of arrays, found {type(obj).__name__}", path=path)
    out = {}
    for k, v in obj.items():
        if k == NAME_TABLE_KEY:
            continue
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], np.ndarray):
            v = v[1]
        if not isinstance(v, np.ndarray):
            raise ConverterError(f"{path}: entry {k!r} is a {type(v).__name__}, not an array", path=path)
        out[str(k)] = v
    return out


def write_pdparams(state: dict, path: str | os.PathLike) -> None:
    """Write {name: array} the way ``paddle.save`` does (values as ``(name, ndarray)`` tuples, protocol 4)."""
    payload = {k: (k, np.ascontiguousarray(np.asarray(v))) for k, v in state.items()}
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=4)
