"""The protobuf wire format, read and written by hand (ONNX initialisers, TensorFlow checkpoint indexes): no
``onnx`` / ``protobuf`` / TensorFlow dependency. ``error`` is the exception class a caller wants for bad bytes."""
from __future__ import annotations

from typing import Any, Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(buf, pos: int, error=ValueError) -> tuple[int, int]:
    """(value, next position) of the unsigned varint at ``pos``."""
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise error("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise error("varint longer than 10 bytes")


def put_varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(buf, error=ValueError) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message: an int (varint), a memoryview slice
    (length-delimited) or the raw bytes of a fixed-size value (I64 / I32)."""
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = varint(buf, pos, error)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise error("field number 0")
        if wt == VARINT:
            v, pos = varint(buf, pos, error)
        elif wt == LEN:
            n, pos = varint(buf, pos, error)
            if pos + n > end:
                raise error("length-delimited field runs past the end of its message")
            v = buf[pos:pos + n]
            pos += n
        elif wt in (I64, I32):
            size = 8 if wt == I64 else 4
            if pos + size > end:
                raise error("fixed-size field runs past the end of its message")
            v = buf[pos:pos + size]
            pos += size
        else:
            raise error(f"unsupported wire type {wt}")
        yield num, wt, v
