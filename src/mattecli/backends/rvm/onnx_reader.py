"""A small reader for ONNX files: the graph's nodes and its initialisers, without the ``onnx`` package.

An ``.onnx`` file is one protobuf message (``ModelProto``, onnx/onnx.proto). The protobuf wire format is simple: a
message is a sequence of fields, each a varint key ``field_number << 3 | wire_type`` followed by a varint (type 0),
8 bytes (type 1), a varint length and that many bytes (type 2: strings, bytes, nested messages, packed repeated
numbers) or 4 bytes (type 5). We decode just the parts RVM's converter needs:

* ``ModelProto``: ir_version = 1, graph = 7;
* ``GraphProto``: node = 1, name = 2, initializer = 5, sparse_initializer = 15 (refused);
* ``NodeProto``: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7;
* ``AttributeProto``: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, strings = 9, type = 20;
* ``TensorProto``: dims = 1, data_type = 2, float_data = 4, int32_data = 5, int64_data = 7, name = 8, raw_data = 9,
  double_data = 10, uint64_data = 11, data_location = 14 (external data is refused).

Repeated numbers are accepted packed or not (onnx.proto is proto2: ``dims`` and attribute lists are unpacked, the
``*_data`` fields packed). Tensors become numpy arrays (little-endian, as ONNX stores them). Any malformed input
raises :class:`~mattecli.errors.ConverterError`.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ...errors import ConverterError

from .. import protowire
from ..protowire import I32, I64, LEN, VARINT

# TensorProto.DataType -> numpy dtype (little-endian); STRING (8), BFLOAT16 (16) and newer types are not read
DTYPES = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?", 10: "<f2", 11: "<f8",
          12: "<u4", 13: "<u8"}
# AttributeProto.AttributeType values we decode
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_FLOATS, A_INTS, A_STRINGS = 1, 2, 3, 4, 6, 7, 8


class OnnxFormatError(ConverterError):
    """Not a readable ONNX file (or a feature of one this reader does not decode)."""


@dataclass
class Node:
    op_type: str
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    name: str = ""
    domain: str = ""
    attrs: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str = ""
    nodes: list = field(default_factory=list)            # [Node] in file (= topological) order
    initializers: dict = field(default_factory=dict)     # name -> numpy array
    ir_version: int = 0


# -- wire format ------------------------------------------------------------------------------------------------------
def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message (see :mod:`..protowire`)."""
    return protowire.fields(buf, OnnxFormatError)


def _varint(buf, pos: int) -> tuple[int, int]:
    return protowire.varint(buf, pos, OnnxFormatError)


def _text(v, wt: int) -> str:
    if wt != LEN:
        raise OnnxFormatError("expected a string field")
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        raise OnnxFormatError("a string field is not UTF-8") from None


def _ints(v, wt: int) -> list[int]:
    """One occurrence of a repeated int64/int32 field: a single varint or a packed run of them."""
    if wt == VARINT:
        return [_signed64(v)]
    if wt != LEN:
        raise OnnxFormatError("expected an integer field")
    out, pos = [], 0
    while pos < len(v):
        x, pos = _varint(v, pos)
        out.append(_signed64(x))
    return out


def _floats(v, wt: int, fmt: str = "<f") -> list[float]:
    """One occurrence of a repeated float (``<f``) or double (``<d``) field: one fixed value or a packed run."""
    size = struct.calcsize(fmt)
    if wt in (I32, I64) and len(v) == size:
        return [struct.unpack(fmt, bytes(v))[0]]
    if wt != LEN or len(v) % size:
        raise OnnxFormatError("expected a floating-point field")
    return np.frombuffer(bytes(v), dtype="<f4" if fmt == "<f" else "<f8").tolist()


# -- messages ---------------------------------------------------------------------------------------------------------
def tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    """TensorProto -> (name, array)."""
    dims: list[int] = []
    name, dtype = "", 0
    raw = None
    typed: dict[int, list] = {}
    for num, wt, v in fields(buf):
        if num == 1:
            dims += _ints(v, wt)
        elif num == 2:
            dtype = _signed64(v) if wt == VARINT else _bad("data_type")
        elif num == 8:
            name = _text(v, wt)
        elif num == 9:
            raw = bytes(v) if wt == LEN else _bad("raw_data")
        elif num == 4:
            typed.setdefault(4, []).extend(_floats(v, wt, "<f"))
        elif num == 10:
            typed.setdefault(10, []).extend(_floats(v, wt, "<d"))
        elif num in (5, 7, 11):
            typed.setdefault(num, []).extend(_ints(v, wt))
        elif num == 14 and wt == VARINT and v == 1:
            raise OnnxFormatError(f"tensor {name or '?'} keeps its data in an external file; not supported")
        elif num == 3:
            raise OnnxFormatError("segmented tensors are not supported")
    what = f"tensor {name!r}"
    if dtype not in DTYPES:
        raise OnnxFormatError(f"{what}: data type {dtype} is not supported")
    if any(d < 0 for d in dims):
        raise OnnxFormatError(f"{what}: negative dimension in {dims}")
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    np_dtype = np.dtype(DTYPES[dtype])
    if raw is not None:
        if len(raw) != count * np_dtype.itemsize:
            raise OnnxFormatError(f"{what}: {len(raw)} bytes of raw data for {count} values of {np_dtype}")
        arr = np.frombuffer(raw, dtype=np_dtype).copy()
    else:
        src = {1: 4, 11: 10, 7: 7, 12: 11, 13: 11}.get(dtype, 5)   # the typed field each data type uses
        vals = typed.get(src, [])
        if len(vals) != count:
            raise OnnxFormatError(f"{what}: {len(vals)} values for shape {dims}")
        if dtype == 10:   # float16 stored as its bit pattern in int32_data
            arr = np.array(vals, dtype=np.uint16).view(np.float16)
        elif src == 11:
            arr = np.array([x % (1 << 64) for x in vals], dtype=np.uint64).astype(np_dtype)
        else:
            arr = np.array(vals, dtype=np.float64 if src in (4, 10) else np.int64).astype(np_dtype)
    return name, arr.reshape(dims).astype(np_dtype.newbyteorder("="), copy=False)


def _bad(what: str):
    raise OnnxFormatError(f"field {what} has the wrong wire type")


def attribute(buf: memoryview) -> tuple[str, Any]:
    """AttributeProto -> (name, value) with the value typed as onnx.helper.get_attribute_value gives it."""
    name, atype = "", None
    found: dict[int, Any] = {}
    for num, wt, v in fields(buf):
        if num == 1:
            name = _text(v, wt)
        elif num == 20:
            atype = v
        elif num == 2:
            found[A_FLOAT] = _floats(v, wt)[0]
        elif num == 3:
            found[A_INT] = _ints(v, wt)[0]
        elif num == 4:
            found[A_STRING] = bytes(v)
        elif num == 5:
            found[A_TENSOR] = tensor(v)[1]
        elif num == 7:
            found.setdefault(A_FLOATS, []).extend(_floats(v, wt))
        elif num == 8:
            found.setdefault(A_INTS, []).extend(_ints(v, wt))
        elif num == 9:
            found.setdefault(A_STRINGS, []).append(bytes(v))
    if atype is None:   # IR < 3: no type field; the one value present decides
        atype = next(iter(found), None)
    if atype in found:
        return name, found[atype]
    if atype in (A_FLOATS, A_INTS, A_STRINGS):
        return name, []
    return name, None   # graphs, sparse tensors, type protos: not decoded


def node(buf: memoryview) -> Node:
    n = Node(op_type="")
    for num, wt, v in fields(buf):
        if num == 1:
            n.inputs.append(_text(v, wt))
        elif num == 2:
            n.outputs.append(_text(v, wt))
        elif num == 3:
            n.name = _text(v, wt)
        elif num == 4:
            n.op_type = _text(v, wt)
        elif num == 7:
            n.domain = _text(v, wt)
        elif num == 5:
            k, val = attribute(v)
            n.attrs[k] = val
    return n


def graph(buf: memoryview) -> Graph:
    g = Graph()
    for num, wt, v in fields(buf):
        if wt != LEN:
            continue
        if num == 1:
            g.nodes.append(node(v))
        elif num == 2:
            g.name = _text(v, wt)
        elif num == 5:
            k, arr = tensor(v)
            if k in g.initializers:
                raise OnnxFormatError(f"initialiser {k!r} is defined twice")
            g.initializers[k] = arr
        elif num == 15:
            raise OnnxFormatError("sparse initialisers are not supported")
    return g


def parse_model(data: bytes) -> Graph:
    """The bytes of an ``.onnx`` file -> its main :class:`Graph`."""
    buf = memoryview(data)
    ir_version, g = 0, None
    for num, wt, v in fields(buf):
        if num == 1 and wt == VARINT:
            ir_version = v
        elif num == 7 and wt == LEN:
            if g is not None:
                raise OnnxFormatError("more than one graph")
            g = graph(v)
    if g is None or not ir_version:
        raise OnnxFormatError("no ONNX model in this file (no ir_version or no graph)")
    g.ir_version = ir_version
    return g


def read_model(path: str | os.PathLike) -> Graph:
    """Read an ``.onnx`` file; ConverterError naming the file when it cannot be read."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConverterError(f"{p}: cannot read ({e.strerror or e})", path=p) from None
    try:
        return parse_model(data)
    except OnnxFormatError as e:
        raise ConverterError(f"{p}: not a readable ONNX file ({e})", path=p) from None
