"""The engine call that replaces one method of one module instance (see :mod:`.parts`).

On a call: the arguments are flattened; a signature (structure, constants, dtypes, ranks; shapes for static parts)
selects an engine, built on first use: export (or the verified cache file), engine session, then ONE check against
the torch method on these very inputs (every output within float tolerance, else a warning and torch for that
signature), recorded next to the export (``checked-<runtime>.json``: later processes skip it while the engine's
version is the same). Later calls run the engine only; another load of the same weights in the process reuses the
checked engine.

The torch method runs instead (same results within float tolerance) when: autograd is recording, a forward hook
or pre-hook is registered anywhere in the module (hooks need torch to run), the module's parameters are no longer
in the exported dtype or on the exported device (``to_dtype(float64)``), or an input is on another device.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import nullcontext

from ...console import info_line
from . import cache
from .export import (export_onnx, exporter_id, flatten_call, output_spec, restore_outputs, spec_from_json,
                     spec_to_json)

#: (key, runtime, device, threads) -> engine (its ``out_spec`` set), while some loaded backend still uses it
_ENGINES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_VERIFIED: set = set()       # (key, runtime) checked against torch in this process
_LOCK = threading.RLock()
TOLERANCE = {"float32": 2e-3, "float16": 3e-2}   # |engine - torch| <= tol * max(1, max |torch|) (see compare)
OUTLIERS = 0.01


def forget() -> None:
    """Drop the process's engines and checks (the next call of each signature reads the cache again)."""
    with _LOCK:
        _ENGINES.clear()
        _VERIFIED.clear()


def engine_version(runtime: str) -> str:
    from . import version_of

    return f"{runtime} {version_of(runtime)}"


def make_engine(runtime: str, path, device, threads: int, half: bool):
    if runtime == "onnxruntime":
        from .ort import OrtEngine

        return OrtEngine(path, device, threads, half)
    if runtime == "openvino":
        from .ov import OVEngine

        return OVEngine(path, device, threads, half)
    raise ValueError(f"no engine {runtime!r}")


def hooks_present(module, modules: list | None = None) -> bool:
    """A forward hook or pre-hook on ``module`` or anything inside it (``modules``: its list, when known)."""
    from torch.nn.modules import module as m

    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return True
    return any(sub._forward_hooks or sub._forward_pre_hooks for sub in (modules or module.modules()))


class Signature:
    __slots__ = ("engine", "out", "key", "path")

    def __init__(self, engine, out, key, path):
        self.engine, self.out, self.key, self.path = engine, out, key, path


class EngineCall:
    """Installed as ``module.<method>`` (an instance attribute shadowing the class's method)."""

    def __init__(self, backend, part, module, runtime: str, dtype, device):
        self._backend = weakref.ref(backend)
        self.part = part
        self.module = module
        self.original = getattr(module, part.method)
        self.runtime = runtime
        self.dtype = dtype
        self.device = device
        self.sigs: dict = {}      # signature -> Signature | None (None: torch for it)
        self.last_path = None
        self.modules = list(module.modules())   # walked on every call for hooks: listed once

    def hooked(self) -> bool:
        return hooks_present(self.module, self.modules)

    # -- when to run torch instead ----------------------------------------------------------------------------------
    def usable(self, flat) -> bool:
        import torch

        if torch.is_grad_enabled():
            return False
        p = next(self.module.parameters(), None)
        if p is not None and (p.dtype != self.dtype or p.device.type != self.device.type):
            return False
        if any(t.device.type != self.device.type for t in flat.tensors):
            return False
        if any(t.is_floating_point() and t.dtype != self.dtype for t in flat.tensors):
            return False
        return not self.hooked()

    def __call__(self, *args, **kwargs):
        flat = flatten_call(args, kwargs)
        if not self.usable(flat):
            return self.original(*args, **kwargs)
        sig_key = flat.signature(self.part.shapes == "static")
        with _LOCK:
            if sig_key not in self.sigs:
                return self._first(sig_key, flat, args, kwargs)
            sig = self.sigs[sig_key]
        if sig is None:
            return self.original(*args, **kwargs)
        return restore_outputs(sig.out, sig.engine.run(flat.tensors))

    # -- first call of a signature -------------------------------------------------------------------------------
    def _first(self, sig_key, flat, args, kwargs):
        import torch

        from .export import flat_outputs

        backend = self._backend()
        static = self.part.shapes == "static"
        dtype_name = str(self.dtype).replace("torch.", "")
        key = cache.export_key(weights=cache.weights_digest(self.module), part=self.part.label,
                               family=backend.entry.family, constants=flat.constants_repr(),
                               signature=repr(sig_key[1]), static=static, fixed_batch=self.part.fixed_batch,
                               exporter=exporter_id(), dtype=dtype_name)
        threads = torch.get_num_threads()
        ekey = (key, self.runtime, str(self.device), threads)
        engine = _ENGINES.get(ekey)
        if engine is not None and (key, self.runtime) in _VERIFIED:   # another load of the same weights
            self.sigs[sig_key] = Signature(engine, engine.out_spec, key, None)
            return restore_outputs(engine.out_spec, engine.run(flat.tensors))
        meta = {"entry": backend.entry.name, "part": self.part.label, "exporter": exporter_id(), "dtype": dtype_name,
                "shapes": "static " + repr([tuple(t.shape) for t in flat.tensors]) if static else "dynamic",
                "constants": flat.constants_repr()}
        mode = getattr(backend, "export_mode", None)

        def export(path):
            with (mode() if mode is not None else nullcontext()):
                export_onnx(self.module, self.part.method, flat, path, static, self.part.fixed_batch)

        path = ref = None
        try:
            path, fresh = cache.load_or_export(cache.root_for(backend), key, export, meta)
            version = engine_version(self.runtime)
            checked = None if fresh else cache.read_check(path.parent, self.runtime)
            if checked is not None and checked.get("version") == version and checked.get("outputs"):
                engine = make_engine(self.runtime, path, self.device, threads, self.dtype == torch.float16)
                engine.out_spec = spec_from_json(checked["outputs"])
                got = engine.run(flat.tensors)
                self._keep(sig_key, ekey, key, engine, path)
                return restore_outputs(engine.out_spec, got)
            ref = self.original(*args, **kwargs)
            out = output_spec(ref)
            engine = make_engine(self.runtime, path, self.device, threads, self.dtype == torch.float16)
            got = engine.run(flat.tensors)
        except Exception as e:   # an export or engine failure never stops a run: torch computes it
            info_line(f"{backend.entry.name}: {self.runtime} could not run {self.part.label} "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); using torch")
            self.sigs[sig_key] = None
            return ref if ref is not None else self.original(*args, **kwargs)
        tol = self.part.tolerance or TOLERANCE.get(dtype_name, 2e-3)
        bad = compare(flat_outputs(ref), got, tol)
        if bad:
            info_line(f"{backend.entry.name}: {self.runtime} differs from torch on {self.part.label} ({bad}); "
                      "using torch")
            self.sigs[sig_key] = None
            return ref
        engine.out_spec = out
        text = spec_to_json(out)
        if text is not None:
            try:
                cache.record_check(path.parent, self.runtime, {"runtime": self.runtime, "version": version,
                                                               "tolerance": tol, "outputs": text})
            except OSError:   # a read-only cache: check again next time
                pass
        self._keep(sig_key, ekey, key, engine, path)
        return restore_outputs(out, got)

    def _keep(self, sig_key, ekey, key, engine, path) -> None:
        _VERIFIED.add((key, self.runtime))
        _ENGINES[ekey] = engine
        self.sigs[sig_key] = Signature(engine, engine.out_spec, key, path)
        self.last_path = path


def compare(ref: list, got: list, tol: float) -> str:
    """'' when every output matches, else what differs. Match: all but 1 % of the elements within
    ``tol * max(1, max |torch|)``. The few outliers allowed are float32 itself: some networks
    amplify rounding (PP-Matting's torch fp32 differs from fp64 by 4e-3) or threshold / argmax inside the graph
    (GFM's fusion flips a pixel where two classes tie), and fp32 torch differs from fp64 there just as much."""
    if len(ref) != len(got):
        return f"{len(got)} outputs instead of {len(ref)}"
    for i, (r, g) in enumerate(zip(ref, got)):
        if tuple(r.shape) != tuple(g.shape):
            return f"output {i}: shape {tuple(g.shape)} instead of {tuple(r.shape)}"
        if not r.numel():
            continue
        r64, g64 = r.detach().double().cpu(), g.detach().double().cpu()
        if not r.is_floating_point():
            frac = float((r64 != g64).double().mean())
            if frac > OUTLIERS:
                return f"output {i}: {100 * frac:.2g} % of the values differ"
            continue
        lim = tol * max(1.0, float(r64.abs().max()))
        frac = float(((r64 - g64).abs() > lim).double().mean())
        if not frac <= OUTLIERS:
            return f"output {i}: {100 * frac:.2g} % of the values off by more than {lim:.3g}"
    return ""


def install(backend, part, runtime: str) -> EngineCall:
    module = backend
    for name in part.module.split("."):
        module = getattr(module, name)
    current = module.__dict__.get(part.method)
    if isinstance(current, EngineCall):      # installed before: put the class's method back first
        del module.__dict__[part.method]
    call = EngineCall(backend, part, module, runtime, backend.dtype, backend.device)
    module.__dict__[part.method] = call
    return call


def uninstall(call: EngineCall) -> None:
    if call.module.__dict__.get(call.part.method) is call:
        del call.module.__dict__[call.part.method]
