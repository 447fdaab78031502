"""Runtimes: the network of a loaded model run by torch (eager), onnxruntime or OpenVINO.

``load_model(name, runtime="auto"|"torch"|"onnxruntime"|"openvino")`` (CLI ``--runtime``; default ``auto``, or
``$MATTECLI_RUNTIME``). Pieces:

* :mod:`.parts`: what a family exports (its adapter's ``runtime_parts``: the whole network or one part of it);
* :mod:`.choose`: ``auto`` = the entry's measured choice per device type (``ModelEntry.runtimes``), the first whose
  package is installed, else torch;
* :mod:`.export`: the method -> ONNX (``torch.onnx.export``), constants baked, batch/height/width dynamic;
* :mod:`.cache`: the export cached next to the weights, keyed by the weights' hash, exporter and shape policy,
  sha256-recorded and checked;
* :mod:`.ort` / :mod:`.ov`: the engines; :mod:`.hook`: the engine call that replaces the method on the loaded module
  and checks its first result against torch;
* :mod:`.kernels`: fused full-resolution CPU kernels (RVM's guided-filter upsampling), outside any graph.

What each family exports (``runtime_parts`` in its adapter; ``runtime_note`` says why where it does not), and what
``auto`` picks on a CPU (``ModelEntry.runtimes``; benchmarks/runtimes.py, 2-core AVX-512 CPU, ``predict`` vs eager
torch at 512x512 / 1080p, synthetic weights, OpenVINO figures first; CUDA: torch for every family until measured on
a GPU):

=============  ===========================================================  ===================================
family         exported                                                     auto on cpu (measured)
=============  ===========================================================  ===================================
rvm            ``net.core``: everything at the network's resolution            openvino, onnxruntime (1080p: OV
               (backbone, LR-ASPP, recurrent decoder, projection, the          1.36x / 1.49x the authors' ONNX on
               guided filter's coefficients), the recurrent state as graph     onnxruntime at batch 1 / 4, 1.8x
               inputs and outputs carried by the adapter; the full-size step   eager torch; ORT on our export
               (upsampling + affine + clamps) is a fused kernel (.kernels)     0.83x, still 1.1x torch)
modnet         the whole network                                             openvino, onnxruntime (2.4 / 2.0x;
                                                                             1.8 / 1.5x)
bgm            the whole network (512x512 crops)                              openvino, onnxruntime (1.25 / 1.31x;
                                                                             1.15 / 1.16x)
dim            the whole network (max-unpooling as a scatter while tracing)   onnxruntime (1.18 / 1.20x; OV 0.3x)
dim.foamliu    the whole network                                             torch (ORT 1.12 / 0.88x, OV 0.25x)
fba            the whole network (PSP pooling as matrix products)             openvino (1.21 / 1.33x; ORT 1.19 /
                                                                             0.84x)
ppmatting      ``net.forward_all``                                            torch (engines 0.99-1.05x)
gfm            the whole network                                             openvino (1.69 / 1.31x; ORT 1.0x)
sim            the matting network and the classifier                        openvino, onnxruntime (1.57 / 2.15x;
                                                                             1.51 / 2.03x)
cam            the whole network (check tolerance 1e-2, see its adapter)     torch (engines 0.99-1.01x)
bisenet        ``net.forward_lowres`` (the full-size softmax stays on torch)  openvino, onnxruntime (1.13 / 1.12x;
                                                                             1.11 / 1.10x)
bgmv2          ``net.base`` (backbone + ASPP + decoder); the refiner picks     openvino, onnxruntime (OV 1.1-1.5x,
               patches by data (topk / threshold, nonzero): torch runs it      ORT 1.07-1.3x; see its entry)
gca            nothing: its attention convolves features with kernels cut     torch
               from the features (data as weights): not expressible
classical      no network (numpy / pymatting solvers)                        (none needed)
=============  ===========================================================  ===================================

Half precision: engines run the model's own dtype, fp32 (and fp16 on CUDA through onnxruntime's CUDA / TensorRT
providers); bf16 stays on torch. The torch method runs instead of the engine when a forward hook is registered on
the module, when autograd is on, or when the module was moved to another dtype or device (``to_dtype(float64)``).
"""
from __future__ import annotations

from .choose import ENV, RUNTIMES, Choice, check_name, installed, pick
from .parts import Part

__all__ = ["ENV", "RUNTIMES", "Choice", "Part", "attach", "check_name", "clause", "describe", "detach", "engine_active",
           "installed", "pick", "planned", "planned_choice"]


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def attach(backend, requested: str | None) -> Choice:
    """Resolve the runtime for a loaded TorchBackend and install its engine calls (exports happen lazily, at the
    first call of each signature)."""
    cls = type(backend)
    parts = tuple(getattr(cls, "runtime_parts", ()) or ())
    note = getattr(cls, "runtime_note", "")
    detach(backend)
    choice = pick(backend.entry, backend.device.type, requested, bool(parts), note, _dtype_name(backend.dtype))
    backend.runtime = choice
    if choice.name != "torch":
        from .hook import install

        backend._engine_calls = [install(backend, p, choice.name) for p in parts if _has(backend, p.module)]
    return choice


def _has(backend, path: str) -> bool:
    """A part's module exists (a family may build one after the network: SIM's classifier re-attaches then)."""
    obj = backend
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return False
    return True


def detach(backend) -> None:
    from .hook import uninstall

    for call in getattr(backend, "_engine_calls", ()) or ():
        uninstall(call)
    backend._engine_calls = []


def engine_active(backend) -> bool:
    """True when an engine (not torch) is installed for this backend."""
    return bool(getattr(backend, "_engine_calls", None))


def planned_choice(entry, device_type: str = "cpu", requested: str | None = None,
                   dtype_name: str = "float32") -> Choice | None:
    """What ``--runtime`` (default auto) picks for an entry on a device type, without loading it; None for a
    numerical solver (no network). An explicit runtime that cannot run raises the UsageError the load would."""
    from ...api import adapter_class
    from ..base import TorchBackend

    cls = adapter_class(entry)
    if not issubclass(cls, TorchBackend):
        check_name(requested)
        return None
    parts = tuple(getattr(cls, "runtime_parts", ()) or ())
    return pick(entry, device_type, requested, bool(parts), getattr(cls, "runtime_note", ""), dtype_name)


def clause(entry, device: str | None, precision: str | None, runtime: str | None) -> str:
    """``", runtime openvino (auto: measured fastest on cpu)"`` for a run's first line, decided before the model
    loads (the load makes the same choice); ``""`` for a numerical solver. A ``--runtime`` that cannot run is the
    usage error (exit 2) here, before any work."""
    from ...api import adapter_class
    from ..base import TorchBackend

    if not issubclass(adapter_class(entry), TorchBackend):
        asked = check_name(runtime)
        if asked not in ("auto", "torch"):
            from ...errors import UsageError

            raise UsageError(f"model {entry.name} has no network to run on --runtime {asked} (a numerical "
                             "solver); use --runtime auto or torch")
        return ""
    from ...runtime import pick_device, pick_dtype

    dev = pick_device(device)
    dtype = str(pick_dtype(precision, dev, entry.precisions)).replace("torch.", "")
    choice = planned_choice(entry, dev.type, runtime, dtype)
    if choice is None:
        return ""
    return f", runtime {choice.name} ({choice.reason})"


def planned(entry, device_type: str = "cpu", requested: str | None = None) -> str:
    """The line for ``mattecli models info``, e.g. ``runtime on cpu: openvino (auto: measured fastest on cpu;
    exports net-core; measured order openvino, onnxruntime)``."""
    from ...api import adapter_class

    try:
        cls = adapter_class(entry)
        choice = planned_choice(entry, device_type, requested)
    except Exception:   # registered, not implemented
        return f"runtime on {device_type}: none (not implemented)"
    if choice is None:
        return f"runtime on {device_type}: none needed (a numerical solver, no network to export)"
    parts = tuple(getattr(cls, "runtime_parts", ()) or ())
    note = getattr(cls, "runtime_note", "")
    from .choose import preferences

    order = ", ".join(preferences(entry, device_type)) or "torch"
    if not parts:
        return f"runtime on {device_type}: torch (exports nothing: {note or 'not declared'})"
    extra = f"; exports {', '.join(p.label for p in parts)}" + (f": {note}" if note else "")
    return f"runtime on {device_type}: {choice.name} ({choice.reason}{extra}; measured order {order})"


def version_of(name: str) -> str:
    if name == "onnxruntime":
        from .ort import version

        return version()
    if name == "openvino":
        from .ov import version

        return version()
    import torch

    return torch.__version__


def describe(backend) -> str:
    """The line the run starts with and ``models info`` shows, e.g. ``runtime: openvino 2025.1 for rvm (auto:
    measured fastest on cpu)``."""
    from ..base import TorchBackend

    choice = getattr(backend, "runtime", None)
    if not isinstance(backend, TorchBackend):
        return f"runtime: none needed for {backend.entry.name} (a numerical solver on the CPU)"
    if choice is None:
        return f"runtime: torch for {backend.entry.name}"
    try:
        v = version_of(choice.name)
    except Exception:   # a broken install is reported by the run itself
        v = ""
    name = f"{choice.name} {v}".strip()
    if choice.name == "torch" and choice.requested == "torch":
        return f"runtime: {name} (eager) for {backend.entry.name}"
    return f"runtime: {name} for {backend.entry.name} ({choice.reason})"
