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

What each family exports (``runtime_parts`` in its adapter; ``runtime_note`` says why where it does not):

=============  ==============================================================================================
rvm            ``net.core``: everything at the network's resolution (backbone, LR-ASPP, recurrent decoder,
               projection, the guided filter's coefficients), recurrent state in and out as graph inputs and
               outputs, carried across calls by the adapter. The full-resolution step (bilinear upsampling of the
               coefficients + the per-pixel affine + clamps) is a fused CPU kernel (:mod:`.kernels`): it is a third
               of onnxruntime's time on the authors' graph at 1080p.
modnet, gca,   the whole network (``net``; PP-Matting ``net.forward_all``, BiSeNetV2 ``net.forward_lowres``);
dim, fba,      host-side steps (cv2 resizes, distance transforms, TTA, tiling) stay in the adapter.
ppmatting,
bisenet, bgm,
gfm, cam
sim            the matting network and the classifier (``net``, ``classifier``).
bgmv2          ``net.base`` (backbone + ASPP + decoder at the backbone scale); the refiner selects patches by
               data (``topk`` / threshold + ``nonzero``), which a static graph cannot express: torch runs it.
classical      no network (numpy / pymatting solvers): always torch-free CPU code, ``--runtime`` is ignored.
=============  ==============================================================================================
"""
from __future__ import annotations

from .choose import ENV, RUNTIMES, Choice, check_name, installed, pick
from .parts import Part

__all__ = ["ENV", "RUNTIMES", "Choice", "Part", "attach", "check_name", "describe", "detach", "engine_active",
           "installed", "pick", "planned"]


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


def planned(entry, device_type: str = "cpu", requested: str | None = None) -> str:
    """What ``--runtime`` (default auto) picks for an entry on a device type, without loading it: the line for
    ``mattecli models info``, e.g. ``runtime on cpu: openvino (auto: measured fastest on cpu; exports net-core;
    measured order openvino, onnxruntime)``."""
    from ...api import adapter_class
    from ..base import TorchBackend

    try:
        cls = adapter_class(entry)
    except Exception:   # registered, not implemented
        return f"runtime on {device_type}: none (not implemented)"
    if not issubclass(cls, TorchBackend):
        return f"runtime on {device_type}: none needed (a numerical solver, no network to export)"
    parts = tuple(getattr(cls, "runtime_parts", ()) or ())
    note = getattr(cls, "runtime_note", "")
    choice = pick(entry, device_type, requested, bool(parts), note)
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
    choice = getattr(backend, "runtime", None)
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
