"""One method of one module -> an ONNX file (``torch.onnx.export``, the TorchScript-based exporter: no extra package).

The call is flattened (:func:`flatten_call`): tensor leaves are the graph's inputs ``in0..inN``; the other leaves
(bools, floats, ints, None) are constants baked into the graph. Outputs are flattened the same way to ``out0..outM``
and restored by :func:`restore_outputs` after an engine ran. Dynamic axes (``shapes="dynamic"``): every dimension
of every input except the channel dimension of 4-D and 5-D tensors (``[B,C,H,W]``: batch, height, width;
``[B,T,C,H,W]``: batch, time, height, width); the batch dimension stays fixed with ``Part.fixed_batch``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

OPSET = 17
FORMAT = 1   # our export recipe: raise it when a change makes earlier cached exports wrong


def exporter_id() -> str:
    """Part of every cache key: another exporter (or torch version) exports again."""
    import torch

    return f"torch-{torch.__version__.split('+')[0]}-torchscript-opset{OPSET}-mattecli{FORMAT}"


def is_tensor(x) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


@dataclass
class FlatCall:
    spec: Any                  # pytree spec of (args, kwargs)
    leaves: list               # constants in place, tensors as None
    positions: list            # indices of the tensor leaves
    tensors: list              # the tensors, in order

    def constants_repr(self) -> str:
        return repr([("T" if i in set(self.positions) else v) for i, v in enumerate(self.leaves)]) + str(self.spec)

    def signature(self, static: bool) -> tuple:
        """What makes another export: the structure, the constants, each tensor's dtype and rank (and shape when
        the part is static)."""
        sig = tuple((str(t.dtype), t.dim(), tuple(t.shape) if static else None) for t in self.tensors)
        return (self.constants_repr(), sig)


def flatten_call(args: tuple, kwargs: dict) -> FlatCall:
    import torch.utils._pytree as pytree

    leaves, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
    positions = [i for i, v in enumerate(leaves) if is_tensor(v)]
    tensors = [leaves[i] for i in positions]
    consts = [None if i in set(positions) else v for i, v in enumerate(leaves)]
    return FlatCall(spec, consts, positions, tensors)


def rebuild_call(flat: FlatCall, tensors) -> tuple[tuple, dict]:
    import torch.utils._pytree as pytree

    leaves = list(flat.leaves)
    for i, t in zip(flat.positions, tensors):
        leaves[i] = t
    args, kwargs = pytree.tree_unflatten(leaves, flat.spec)
    return args, kwargs


@dataclass
class OutputSpec:
    spec: Any
    leaves: list      # non-tensor leaves in place, tensors as None
    positions: list   # indices of the tensor leaves (= the graph's outputs, in order)


def output_spec(out) -> OutputSpec:
    import torch.utils._pytree as pytree

    leaves, spec = pytree.tree_flatten(out)
    positions = [i for i, v in enumerate(leaves) if is_tensor(v)]
    consts = [None if is_tensor(v) else v for v in leaves]
    return OutputSpec(spec, consts, positions)


def spec_to_json(spec: OutputSpec) -> str | None:
    """The output structure as text (None when a constant leaf is not plain JSON data)."""
    import json

    import torch.utils._pytree as pytree

    try:
        return json.dumps({"spec": pytree.treespec_dumps(spec.spec), "leaves": spec.leaves,
                           "positions": spec.positions})
    except (TypeError, ValueError, NotImplementedError):
        return None


def spec_from_json(text: str) -> OutputSpec:
    import json

    import torch.utils._pytree as pytree

    d = json.loads(text)
    return OutputSpec(pytree.treespec_loads(d["spec"]), d["leaves"], d["positions"])


def flat_outputs(out) -> list:
    import torch.utils._pytree as pytree

    return [v for v in pytree.tree_flatten(out)[0] if is_tensor(v)]


def restore_outputs(spec: OutputSpec, tensors):
    import torch.utils._pytree as pytree

    leaves = list(spec.leaves)
    for i, t in zip(spec.positions, tensors):
        leaves[i] = t
    return pytree.tree_unflatten(leaves, spec.spec)


def bound_module(module, method: str, flat: FlatCall):
    """An nn.Module whose forward(*tensors) is ``module.<method>(*args, **kwargs)`` with the constants of ``flat``
    in place and the flat tuple of output tensors as result (the class's own method: never an engine)."""
    import torch

    fn = getattr(type(module), method)

    class Bound(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *tensors):
            args, kwargs = rebuild_call(flat, tensors)
            return tuple(flat_outputs(fn(self.inner, *args, **kwargs)))

    b = Bound()
    b.training = False   # never .eval()/.train(): they recurse, and some layers act on it (FBA's in-place WS convs)
    return b


def _pool_matrix(n, o: int, like):
    """[o, n] matrix averaging the adaptive-pooling bins of an axis of n (traced) into o outputs."""
    import torch

    i = torch.arange(o, device=like.device)
    start = torch.div(i * n, o, rounding_mode="floor")
    end = torch.div((i + 1) * n + (o - 1), o, rounding_mode="floor")
    r = torch.arange(n, device=like.device)
    m = (r[None, :] >= start[:, None]) & (r[None, :] < end[:, None])
    return m.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def _export_pool(size):
    """nn.AdaptiveAvgPool2d(size) as matrix products: the ONNX exporter has no dynamic-size adaptive pooling."""
    import torch

    oh, ow = (size, size) if isinstance(size, int) else size

    class ExportAdaptiveAvgPool2d(torch.nn.Module):
        def forward(self, x):
            h, w = x.shape[-2], x.shape[-1]
            ph = _pool_matrix(h, oh if oh is not None else int(h), x)
            pw = _pool_matrix(w, ow if ow is not None else int(w), x)
            return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))

    return ExportAdaptiveAvgPool2d()


def swap_pools(module) -> list:
    """Replace every AdaptiveAvgPool2d whose output is larger than 1x1 (PSP / PPM pyramids) for the export; returns
    what :func:`restore_pools` puts back."""
    import torch

    swapped = []
    for parent in module.modules():
        for name, child in list(parent._modules.items()):
            if isinstance(child, torch.nn.AdaptiveAvgPool2d) and child.output_size not in (1, (1, 1)):
                parent._modules[name] = _export_pool(child.output_size)
                swapped.append((parent, name, child))
    return swapped


def restore_pools(swapped: list) -> None:
    for parent, name, child in swapped:
        parent._modules[name] = child


def dynamic_axes(tensors, fixed_batch: bool) -> dict:
    axes = {}
    for i, t in enumerate(tensors):
        d = t.dim()
        keep = {1} if d == 4 else ({2} if d == 5 else set())
        if fixed_batch:
            keep.add(0)
        free = [k for k in range(d) if k not in keep]
        if free:
            axes[f"in{i}"] = {k: f"in{i}_d{k}" for k in free}
    return axes


def export_onnx(module, method: str, flat: FlatCall, path: str | os.PathLike, static: bool,
                fixed_batch: bool = False) -> int:
    """Write ``path`` (returns the number of graph outputs)."""
    import torch

    bound = bound_module(module, method, flat)
    with torch.inference_mode(False), torch.no_grad():
        sample = tuple(t.detach().clone().contiguous() for t in flat.tensors)
        n_out = len(bound(*sample))
        names_in = [f"in{i}" for i in range(len(sample))]
        names_out = [f"out{i}" for i in range(n_out)]
        axes = {} if static else dynamic_axes(sample, fixed_batch)
        swapped = [] if static else swap_pools(module)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(bound, sample, os.fspath(path), dynamo=False, opset_version=OPSET,
                                  input_names=names_in, output_names=names_out, dynamic_axes=axes or None,
                                  do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE)
        finally:
            restore_pools(swapped)
    return n_out
