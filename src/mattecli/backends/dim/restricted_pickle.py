"""Read a PyTorch pickle of WHOLE objects (``torch.save({'model': nn.DataParallel(Net), 'optimizer': ...})``) safely.

foamliu's ``BEST_checkpoint.tar`` pickles ``nn.Module`` / ``torch.optim`` objects, which torch's own
``weights_only`` unpickler refuses. This unpickler never imports or runs anything from the file: every global it meets
is looked up in a fixed allow-list:

- torch's tensor rebuild functions (``torch._utils._rebuild_tensor_v2``, ``_rebuild_tensor``, ``_rebuild_parameter``,
  ``_rebuild_parameter_with_state``) map to our own functions that only build tensors from the file's storages;
- ``torch.<Type>Storage`` map to dtypes; ``collections.OrderedDict`` / ``defaultdict`` and a few builtin containers;
- classes of the model / optimiser (modules ``models``, ``torch.nn.*``, ``torch.optim.*`` and a few more, see
  ``PLACEHOLDER_MODULES``) map to inert placeholder classes that only record their state (``__dict__``);
- anything else (``os.system``, ``builtins.eval``, ``subprocess``...) raises :class:`ConverterError`.

Both the zip container (torch >= 1.6) and the legacy stream format (torch <= 1.5, what the released file uses) are
read. :func:`module_state_dict` then walks a placeholder module's ``_modules`` tree into a flat state dict.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any

from ...errors import ConverterError

# modules whose classes may appear in a pickled model/optimiser; they become inert placeholders
# (torch.nn.backends: nn.Module.__dict__ held a THNN backend object in torch <= 1.1)
PLACEHOLDER_MODULES = ("models", "__main__", "model", "torch.nn.modules", "torch.nn.parallel", "torch.optim",
                       "torch.nn.parameter", "torch.nn.backends")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_SAFE_BUILTINS = {"dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "int": int,
                  "float": float, "bool": bool, "slice": slice}
_DTYPE_NAMES = ("float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32",
                "int", "int16", "short", "int8", "uint8", "bool", "complex64", "complex128")


def _storage_dtypes():
    import torch

    return {
        "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
        "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
        "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
        "BoolStorage": torch.bool,
    }


class _StorageType:
    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class Placeholder:
    """Stands in for a pickled class; records constructor args and state, runs nothing."""

    _module = ""
    _qualname = ""

    def __init__(self, *args, **kwargs):
        self._args = args
        self._kwargs = kwargs
        self._state = None

    def __setstate__(self, state):
        self._state = state

    def state(self) -> dict:
        st = self._state
        if isinstance(st, tuple) and len(st) == 2 and (st[0] is None or isinstance(st[0], dict)):
            merged = dict(st[0] or {})
            merged.update(st[1] or {})
            return merged
        return st if isinstance(st, dict) else {}

    def __repr__(self):
        return f"<placeholder {self._module}.{self._qualname}>"


def _placeholder(module: str, name: str):
    return type(name, (Placeholder,), {"_module": module, "_qualname": name})


class _DefaultDict(dict):
    """Inert stand-in for collections.defaultdict (the factory is recorded, never called)."""

    def __init__(self, factory=None, *args):
        super().__init__(*args)
        self.factory = factory


def _device(*args):
    return "device(" + ",".join(str(a) for a in args) + ")"


def _rebuild_tensor(storage, storage_offset, size, stride):
    import torch

    if not isinstance(storage, torch.Tensor):
        raise ConverterError("pickle rebuilds a tensor from something that is not a storage of this file")
    n = 1 + sum((s - 1) * st for s, st in zip(size, stride)) if all(s > 0 for s in size) else 0
    if storage_offset + n > storage.numel():
        raise ConverterError("tensor extends past the end of its storage (corrupt checkpoint)")
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset).clone()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *rest):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


_TORCH_UTILS = {
    "_rebuild_tensor": _rebuild_tensor,
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storage_loader, path: str, encoding: str = "utf-8", legacy: bool = False):
        super().__init__(file, encoding=encoding)
        self._rebuild = _LEGACY_UTILS if legacy else _TORCH_UTILS
        self._load_storage = storage_loader
        self._path = path
        self._placeholders: dict = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in self._rebuild:
            return self._rebuild[name]
        if module == "torch":
            dtypes = _storage_dtypes()
            if name in dtypes:
                return _StorageType(name, dtypes[name])
            if name == "device":
                return _device
            if name in _DTYPE_NAMES:
                import torch

                return getattr(torch, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "collections" and name == "defaultdict":
            return _DefaultDict
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if name.isidentifier() and any(module == m or module.startswith(m + ".") for m in PLACEHOLDER_MODULES):
            key = (module, name)
            if key not in self._placeholders:
                self._placeholders[key] = _placeholder(module, name)
            return self._placeholders[key]
        raise ConverterError(
            f"{self._path}: refused to load: the pickle references {module}.{name}, which is not part of a "
            "model checkpoint (nothing was executed)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise ConverterError(f"{self._path}: unexpected persistent id in pickle")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":  # legacy format: ('module', cls, source_file, source)
            return pid[1]
        if kind != "storage":
            raise ConverterError(f"{self._path}: unexpected persistent id {kind!r} in pickle")
        return self._load_storage(pid[1:])


def _storage_info(stype):
    import torch

    if isinstance(stype, _StorageType):
        return stype.dtype
    if isinstance(stype, torch.dtype):
        return stype
    raise ConverterError("pickle names an unknown storage type")


def _load_zip(path: str, encoding: str):
    import torch

    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise ConverterError(f"{path}: zip file without data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        cache: dict = {}

        def load_storage(data):
            stype, key, _location, numel = data[:4]
            dtype = _storage_info(stype)
            key = str(key)
            if key not in cache:
                try:
                    raw = zf.read(f"{prefix}data/{key}")
                except KeyError:
                    raise ConverterError(f"{path}: storage {key} missing from the archive") from None
                t = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
                cache[key] = t.view(dtype) if raw else torch.empty(0, dtype=dtype)
            return cache[key]

        with zf.open(pkl[0]) as f:
            return RestrictedUnpickler(io.BytesIO(f.read()), load_storage, path, encoding).load()


def _load_legacy(path: str, encoding: str):
    import torch

    with open(path, "rb") as f:
        head = RestrictedUnpickler(f, lambda d: None, path, encoding)
        magic = head.load()
        if magic != _LEGACY_MAGIC:
            raise ConverterError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        head.load()  # protocol version
        head.load()  # sys info
        pending: dict = {}
        views: list = []

        def load_storage(data):
            stype, root_key, _location, numel, view_metadata = data
            dtype = _storage_info(stype)
            if root_key not in pending:
                pending[root_key] = [dtype, int(numel), None]
            holder = _LazyStorage(pending, root_key)
            if view_metadata is not None:
                _vkey, offset, vsize = view_metadata
                holder = _LazyStorage(pending, root_key, int(offset), int(vsize))
            views.append(holder)
            return holder

        obj = RestrictedUnpickler(f, load_storage, path, encoding, legacy=True).load()
        keys = RestrictedUnpickler(f, lambda d: None, path, encoding).load()
        for key in keys:
            if key not in pending:
                raise ConverterError(f"{path}: storage {key} listed but never used (corrupt checkpoint)")
            dtype, numel, _ = pending[key]
            (n,) = struct.unpack("<q", f.read(8))
            esize = torch.empty(0, dtype=dtype).element_size()
            raw = f.read(n * esize)
            if len(raw) != n * esize:
                raise ConverterError(f"{path}: truncated checkpoint")
            pending[key][2] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype) if n else \
                torch.empty(0, dtype=dtype)
    return _resolve_lazy(obj)


class _LazyStorage:
    """Legacy format: storages are read after the object pickle; tensors are rebuilt afterwards."""

    def __init__(self, table, key, offset=0, size=None):
        self.table, self.key, self.offset, self.size = table, key, offset, size

    def get(self):
        t = self.table[self.key][2]
        if t is None:
            raise ConverterError("storage data missing from checkpoint")
        if self.size is not None:
            t = t[self.offset:self.offset + self.size]
        return t


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def build(self):
        s, o, size, stride = self.args
        return _rebuild_tensor(s.get(), o, size, stride)


def _resolve_lazy(obj, seen=None):
    """Replace _LazyTensor leaves by tensors, in containers and placeholder states."""
    if seen is None:
        seen = {}
    if isinstance(obj, _LazyTensor):
        k = id(obj)
        if k not in seen:
            seen[k] = obj.build()
        return seen[k]
    if isinstance(obj, dict):
        for k in list(obj.keys()):
            obj[k] = _resolve_lazy(obj[k], seen)
        return obj
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = _resolve_lazy(v, seen)
        return obj
    if isinstance(obj, tuple):
        return tuple(_resolve_lazy(v, seen) for v in obj)
    if isinstance(obj, Placeholder):
        if id(obj) in seen:
            return obj
        seen[id(obj)] = obj
        obj._state = _resolve_lazy(obj._state, seen)
        return obj
    return obj


def restricted_torch_load(path: str | os.PathLike) -> Any:
    """Load a torch pickle (zip or legacy) with the restricted unpickler. Raises ConverterError."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, "utf-8")
        try:
            return _load_legacy(path, "utf-8")
        except UnicodeDecodeError:  # checkpoints pickled by Python 2
            return _load_legacy(path, "latin1")
    except ConverterError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OSError, RuntimeError, zipfile.BadZipFile) as e:
        raise ConverterError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def _legacy_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                              metadata=None):
    if isinstance(storage, _LazyStorage):
        return _LazyTensor(storage, storage_offset, size, stride)
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _legacy_rebuild_tensor(storage, storage_offset, size, stride):
    return _legacy_rebuild_tensor_v2(storage, storage_offset, size, stride)


_LEGACY_UTILS = dict(_TORCH_UTILS, _rebuild_tensor_v2=_legacy_rebuild_tensor_v2,
                     _rebuild_tensor=_legacy_rebuild_tensor)


def module_state_dict(module: Any, prefix: str = "") -> dict:
    """Flatten a placeholder nn.Module tree (``_parameters``, ``_buffers``, ``_modules``) into a state dict."""
    import torch

    if not isinstance(module, Placeholder):
        raise ConverterError("the checkpoint's model is not a pickled nn.Module")
    st = module.state()
    out: dict = {}
    non_persistent = set(st.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for k, v in (st.get(group) or {}).items():
            if v is None or (group == "_buffers" and k in non_persistent):
                continue
            if not isinstance(v, torch.Tensor):
                raise ConverterError(f"checkpoint entry {prefix}{k} is not a tensor")
            out[prefix + k] = v
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        out.update(module_state_dict(child, f"{prefix}{name}."))
    return out
