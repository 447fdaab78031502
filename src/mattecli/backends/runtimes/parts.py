"""What a family runs outside torch: its adapter's ``runtime_parts`` (no torch import here).

A :class:`Part` names one method of one module of a loaded backend (``Part("net")`` = ``backend.net.forward``,
``Part("net", "base")`` = BGMv2's base network, ``Part("net", "core")`` = RVM's low-resolution network). The
runtime replaces that method, on that one module instance, by an engine call: the adapter's own code (encode,
forward, decode, tiling, TTA) is unchanged and still calls ``self.net(...)`` / ``self.net.base(...)``.

Arguments: tensors become the ONNX graph's inputs; everything else (``True``, a ratio, ``None``, a tuple of ints)
is baked into the export as a constant and is part of the cache key (another value exports again). Outputs: any
nesting of tuples, lists and dicts of tensors (restored after the engine runs).

``shapes``: ``"dynamic"``: one export for every size (batch, height and width are free axes of the graph);
``"static"``: one export per input shape (for graphs whose tracing bakes sizes in; a few shapes stay loaded).
"""
from __future__ import annotations

from dataclasses import dataclass

SHAPE_POLICIES = ("dynamic", "static")


@dataclass(frozen=True)
class Part:
    module: str = "net"        # attribute path from the backend ("net", "net.backbone", "classifier")
    method: str = "forward"    # the method the adapter calls on it
    shapes: str = "dynamic"    # dynamic | static (see the module docstring)
    #: inputs whose dimension 0 is not free (e.g. RVM's one sequence); default: every input's dim 0 is free
    fixed_batch: bool = False
    #: the first-call check's tolerance (hook.compare), for networks that amplify float32 rounding; None: default
    tolerance: float | None = None

    def __post_init__(self):
        if self.shapes not in SHAPE_POLICIES:
            raise ValueError(f"Part.shapes must be one of {SHAPE_POLICIES}")

    @property
    def label(self) -> str:
        name = self.module.replace(".", "-")
        return name if self.method == "forward" else f"{name}-{self.method}"
