"""``--runtime auto|torch|onnxruntime|openvino``: which engine runs a model (no torch import here).

``auto`` reads the entry's measured choice for the device type (``ModelEntry.runtimes``, e.g.
``{"cpu": ("openvino", "onnxruntime")}``: the fastest first, ``benchmarks/runtimes.py`` measures it) and takes the
first whose package is installed; torch when none is, when the device type has no entry, or when the family cannot
export. An explicit runtime that cannot run is a one-line UsageError naming the fix.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from ...errors import UsageError

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
ENGINES = ("onnxruntime", "openvino")
PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
EXTRA = {"onnxruntime": "pip install 'mattecli[onnxruntime]'", "openvino": "pip install 'mattecli[openvino]'"}
ENV = "MATTECLI_RUNTIME"   # the default for load_model / the CLI when no runtime is given


@dataclass(frozen=True)
class Choice:
    name: str            # torch | onnxruntime | openvino
    requested: str       # what was asked (auto, ...)
    reason: str          # why (one clause, for the run's first line and `models info`)

    def line(self, entry_name: str) -> str:
        if self.name == "torch" and self.requested == "torch":
            return f"runtime: torch (eager) for {entry_name}"
        return f"runtime: {self.name} for {entry_name} ({self.reason})"


def installed(name: str) -> bool:
    if name == "torch":
        return True
    try:
        return importlib.util.find_spec(PACKAGE[name]) is not None
    except (ValueError, ImportError):
        return False


def default_request() -> str:
    r = os.environ.get(ENV, "").strip().lower()
    return r if r in RUNTIMES else "auto"


def check_name(requested: str | None) -> str:
    r = (requested or default_request()).strip().lower()
    if r not in RUNTIMES:
        raise UsageError(f"unknown runtime {requested!r}; use one of {', '.join(RUNTIMES)}")
    return r


def preferences(entry, device_type: str) -> tuple[str, ...]:
    """The entry's measured order for a device type (an empty tuple: torch)."""
    table = getattr(entry, "runtimes", None) or {}
    v = table.get(device_type, ())
    return (v,) if isinstance(v, str) else tuple(v)


#: OpenVINO's CPU plugin picks its kernels from the CPU itself, and the oneDNN inside it refuses those above a cap set
#: with this variable (measured: ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU crashes the process on FBA; =SSE41 fails
#: every network), so OpenVINO is not used while it is set
ISA_CAP = "ONEDNN_MAX_CPU_ISA"


def why_unsupported(name: str, device_type: str) -> str | None:
    """None when engine ``name`` runs on this device type here, else why not (a clause)."""
    if name == "openvino":
        if device_type != "cpu":
            return f"it does not run on {device_type}"
        if os.environ.get(ISA_CAP, "").strip().upper() not in ("", "ALL"):
            return f"OpenVINO fails or crashes while {ISA_CAP} caps the CPU's instructions (unset it)"
        return None
    if name == "onnxruntime":
        if device_type == "cpu":
            return None
        if device_type == "cuda":
            from .ort import cuda_providers

            return None if cuda_providers() else "no CUDA execution provider is installed (onnxruntime-gpu)"
    return f"it does not run on {device_type} here"


def engine_supports(name: str, device_type: str) -> bool:
    return why_unsupported(name, device_type) is None


def pick(entry, device_type: str, requested: str | None, exportable: bool, why_not: str = "",
           dtype_name: str = "float32") -> Choice:
    """The runtime for this load (see the module docstring)."""
    r = check_name(requested)
    if r == "torch":
        return Choice("torch", r, "asked for")
    if r == "auto":
        if not exportable:
            return Choice("torch", r, f"auto: {why_not or 'this family does not export'}")
        prefs = preferences(entry, device_type)
        if not prefs:
            return Choice("torch", r, f"auto: no engine measured faster on {device_type}")
        if dtype_name not in ("float32", "float16"):
            return Choice("torch", r, f"auto: engines run fp32 (fp16 on CUDA), not {dtype_name}")
        skipped = []        # faster ones that cannot run here, and why
        for p in prefs:
            if p != "torch":
                why = "not installed" if not installed(p) else why_unsupported(p, device_type)
                if why is not None:
                    skipped.append(f"{p}: {why}")
                    continue
            rank = f"measured next fastest on {device_type} ({'; '.join(skipped)})" if skipped else \
                f"measured fastest on {device_type}"
            return Choice(p, r, f"auto: torch {rank}" if p == "torch" else f"auto: {rank}")
        missing = " or ".join(f"{p} ({EXTRA[p]})" for p in prefs if not installed(p))
        if missing:
            return Choice("torch", r, f"auto: the faster runtime is not installed here: {missing}")
        return Choice("torch", r, f"auto: the faster runtime does not run on {device_type} here "
                                  f"({'; '.join(skipped)})")
    # an explicit engine
    if not exportable:
        raise UsageError(f"model {entry.name} cannot run on --runtime {r}: {why_not or 'its network does not export'};"
                         " use --runtime torch (or auto)")
    if not installed(r):
        raise UsageError(f"--runtime {r}: the {PACKAGE[r]} package is not installed; {EXTRA[r]}")
    why = why_unsupported(r, device_type)
    if why is not None:
        raise UsageError(f"--runtime {r} cannot run here: {why}; use --runtime torch or auto")
    if dtype_name not in ("float32", "float16"):
        raise UsageError(f"--runtime {r} runs fp32 (and fp16 on CUDA), not {dtype_name}; use --precision fp32 or "
                         "--runtime torch")
    return Choice(r, r, "asked for")
