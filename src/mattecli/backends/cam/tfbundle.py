"""TensorFlow checkpoint ("tensor bundle", Saver V2) reader and writer without TensorFlow.

Format (tensorflow/core/util/tensor_bundle):
- ``<prefix>.index``: a LevelDB-style sorted string table. Blocks of prefix-compressed entries
  (varint shared, varint non_shared, varint value_len, key suffix, value), a restart array (uint32 each) and its
  count, then a 5-byte trailer (compression type, masked crc32c). A 48-byte footer holds the metaindex and index
  block handles (varint64 offset/size) and the magic number 0xdb4775248b80fb57. The index block maps the last key
  of every data block to its handle.
- the entry with the empty key is a ``BundleHeaderProto`` (num_shards = 1, endianness = 2, version = 3); every other
  key is a tensor name whose value is a ``BundleEntryProto`` (dtype = 1, shape = 2, shard_id = 3, offset = 4,
  size = 5, crc32c = 6 (fixed32), slices = 7).
- ``<prefix>.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes at (offset, size).

Protobufs are decoded with a tiny varint reader; no protobuf package is needed.
"""
from __future__ import annotations

import os
import struct
from typing import Callable, Mapping

import google_crc32c
import numpy as np

from ...errors import ConverterError
from .. import protowire

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LEN = 48

# tensorflow DataType enum -> numpy dtype
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
_DTYPE_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


# -- crc32c (Castagnoli, google-crc32c's C implementation), masked as LevelDB / TF do ---------------------------------
def crc32c(data) -> int:
    """CRC-32C (Castagnoli) of ``data`` (bytes or any contiguous buffer)."""
    return google_crc32c.value(data if isinstance(data, bytes) else bytes(memoryview(data).cast("B")))


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# -- varints / protobuf ------------------------------------------------------------------------------------------
def _varint(buf, pos: int):
    return protowire.varint(buf, pos, _IndexError)


_put_varint = protowire.put_varint


def _IndexError(msg: str) -> ConverterError:
    return ConverterError(f"{msg} in TensorFlow checkpoint index")


def parse_proto(buf: bytes) -> dict:
    """Generic protobuf wire decoding: {field number: [values]} (varints and fixed-size values as int,
    length-delimited as bytes)."""
    out: dict = {}
    for num, wt, v in protowire.fields(buf, _IndexError):
        if wt == protowire.LEN:
            v = bytes(v)
        elif wt == protowire.I64:
            v = struct.unpack("<Q", v)[0]
        elif wt == protowire.I32:
            v = struct.unpack("<I", v)[0]
        out.setdefault(num, []).append(v)
    return out


def _field(num: int, wt: int, payload) -> bytes:
    tag = _put_varint((num << 3) | wt)
    if wt == 0:
        return tag + _put_varint(int(payload))
    if wt == 2:
        return tag + _put_varint(len(payload)) + payload
    if wt == 5:
        return tag + struct.pack("<I", payload)
    raise ValueError(wt)


# -- SSTable -----------------------------------------------------------------------------------------------------
def _read_block(data: bytes, offset: int, size: int, verify: bool = True) -> bytes:
    if offset + size + 5 > len(data):
        raise ConverterError("TensorFlow checkpoint index is truncated")
    block = data[offset:offset + size]
    ctype = data[offset + size]
    if verify:
        (stored,) = struct.unpack_from("<I", data, offset + size + 1)
        if mask_crc(crc32c(data[offset:offset + size + 1])) != stored:
            raise ConverterError("TensorFlow checkpoint index block fails its crc32c check (corrupt file)")
    if ctype != 0:
        raise ConverterError(f"TensorFlow checkpoint index block uses compression type {ctype} (only uncompressed "
                             "indexes are supported; TF writes them uncompressed)")
    return block


def _block_entries(block: bytes):
    if len(block) < 4:
        raise ConverterError("bad block in TensorFlow checkpoint index")
    (nrestarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * nrestarts
    if end < 0:
        raise ConverterError("bad restart array in TensorFlow checkpoint index")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + vlen > end:
            raise ConverterError("bad entry in TensorFlow checkpoint index")
        key = key[:shared] + bytes(block[pos:pos + non_shared])
        pos += non_shared
        yield key, bytes(block[pos:pos + vlen])
        pos += vlen


def read_table(data: bytes) -> list:
    """All (key, value) pairs of an SSTable file, in order."""
    if len(data) < FOOTER_LEN:
        raise ConverterError("not a TensorFlow checkpoint index (file too short)")
    footer = data[-FOOTER_LEN:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != TABLE_MAGIC:
        raise ConverterError("not a TensorFlow checkpoint index (bad magic number)")
    pos = 0
    _meta_off, pos = _varint(footer, pos)
    _meta_size, pos = _varint(footer, pos)
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    out = []
    for _last_key, handle in _block_entries(_read_block(data, idx_off, idx_size)):
        off, p = _varint(handle, 0)
        size, p = _varint(handle, p)
        out.extend(_block_entries(_read_block(data, off, size)))
    return out


def _build_block(entries, restart_interval: int = 16) -> bytes:
    buf = bytearray()
    restarts = []
    prev = b""
    for i, (k, v) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(buf))
            shared = 0
        else:
            shared = 0
            while shared < min(len(prev), len(k)) and prev[shared] == k[shared]:
                shared += 1
        buf += _put_varint(shared) + _put_varint(len(k) - shared) + _put_varint(len(v)) + k[shared:] + v
        prev = k
    if not restarts:
        restarts = [0]
    for r in restarts:
        buf += struct.pack("<I", r)
    buf += struct.pack("<I", len(restarts))
    return bytes(buf)


def write_table(entries, block_size: int = 4096) -> bytes:
    """SSTable bytes for sorted (key, value) pairs (uncompressed blocks, crc32c trailers)."""
    out = bytearray()
    index = []

    def emit(block: bytes):
        off = len(out)
        out.extend(block)
        trailer = bytes([0])
        out.extend(trailer + struct.pack("<I", mask_crc(crc32c(block + trailer))))
        return off, len(block)

    cur, cur_size = [], 0
    for k, v in entries:
        cur.append((k, v))
        cur_size += len(k) + len(v) + 8
        if cur_size >= block_size:
            off, size = emit(_build_block(cur))
            index.append((cur[-1][0], _put_varint(off) + _put_varint(size)))
            cur, cur_size = [], 0
    if cur:
        off, size = emit(_build_block(cur))
        index.append((cur[-1][0], _put_varint(off) + _put_varint(size)))
    meta = emit(_build_block([]))
    idx = emit(_build_block(index, restart_interval=1))
    footer = _put_varint(meta[0]) + _put_varint(meta[1]) + _put_varint(idx[0]) + _put_varint(idx[1])
    footer = footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    out.extend(footer)
    return bytes(out)


# -- bundle ------------------------------------------------------------------------------------------------------
def parse_index(index_bytes: bytes) -> tuple[dict, dict]:
    """-> (header fields, {name: entry dict(dtype, shape, shard_id, offset, size, crc32c)})."""
    header, entries = None, {}
    for key, value in read_table(index_bytes):
        if key == b"":
            header = parse_proto(value)
            continue
        f = parse_proto(value)
        if 7 in f:
            raise ConverterError(f"tensor {key.decode(errors='replace')} is stored in slices (partitioned "
                                 "variables are not supported)")
        dims = []
        for shp in f.get(2, []):
            sf = parse_proto(shp)
            for d in sf.get(2, []):
                dims.append(parse_proto(d).get(1, [0])[0])
        code = f.get(1, [0])[0]
        if code not in _DTYPES:
            raise ConverterError(f"tensor {key.decode(errors='replace')} has unsupported TF dtype code {code}")
        entries[key.decode("utf-8")] = {
            "dtype": np.dtype(_DTYPES[code]), "shape": tuple(int(d) for d in dims),
            "shard_id": f.get(3, [0])[0], "offset": f.get(4, [0])[0], "size": f.get(5, [0])[0],
            "crc32c": f.get(6, [None])[0],
        }
    if header is None:
        raise ConverterError("TensorFlow checkpoint index has no header entry")
    hdr = {"num_shards": header.get(1, [1])[0], "endianness": header.get(2, [0])[0]}
    if hdr["endianness"] != 0:
        raise ConverterError("big-endian TensorFlow checkpoints are not supported")
    return hdr, entries


def shard_name(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def read_bundle(index_bytes: bytes, read_shard: Callable[[int, int], bytes], verify_crc: bool = False) -> dict:
    """{name: numpy array}. ``read_shard(shard_id, num_shards)`` returns that data file's bytes."""
    hdr, entries = parse_index(index_bytes)
    shards: dict = {}
    out = {}
    for name, e in entries.items():
        sid = e["shard_id"]
        if sid not in shards:
            shards[sid] = read_shard(sid, hdr["num_shards"])
        buf = shards[sid]
        off, size = e["offset"], e["size"]
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        if off + size > len(buf) or size != n * e["dtype"].itemsize:
            raise ConverterError(f"tensor {name}: data out of range or of the wrong size (corrupt checkpoint)")
        raw = buf[off:off + size]
        if verify_crc and e["crc32c"] is not None and mask_crc(crc32c(raw)) != e["crc32c"]:
            raise ConverterError(f"tensor {name} fails its crc32c check (corrupt checkpoint)")
        out[name] = np.frombuffer(raw, dtype=e["dtype"].newbyteorder("<")).reshape(e["shape"]).copy()
    return out


def read_bundle_files(prefix: str, verify_crc: bool = False) -> dict:
    """Read ``<prefix>.index`` + ``<prefix>.data-*`` from disk."""
    with open(prefix + ".index", "rb") as f:
        index = f.read()

    def read_shard(sid, n):
        p = shard_name(prefix, sid, n)
        if not os.path.isfile(p):
            raise ConverterError(f"{p}: data file of the TensorFlow checkpoint is missing; keep it next to "
                                 f"{os.path.basename(prefix)}.index", path=p)
        with open(p, "rb") as f:
            return f.read()

    return read_bundle(index, read_shard, verify_crc)


def write_bundle(tensors: Mapping[str, np.ndarray], prefix: str) -> list[str]:
    """Write ``<prefix>.index`` and ``<prefix>.data-00000-of-00001`` (one shard), atomically. Returns the paths."""
    data = bytearray()
    entries = []
    for name in sorted(tensors, key=lambda s: s.encode("utf-8")):
        a = np.asarray(tensors[name])
        a = np.asarray(a, order="C")
        dt = a.dtype.newbyteorder("=") if a.dtype.byteorder not in ("=", "|") else a.dtype
        code = _DTYPE_CODES.get(np.dtype(dt))
        if code is None:
            raise ConverterError(f"tensor {name}: dtype {a.dtype} cannot be written to a TF checkpoint")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        shape = b"".join(_field(2, 2, _field(1, 0, d)) for d in a.shape)
        proto = _field(1, 0, code) + _field(2, 2, shape) + _field(4, 0, len(data)) * (len(data) > 0) + \
            _field(5, 0, len(raw)) * (len(raw) > 0) + _field(6, 5, mask_crc(crc32c(raw)))
        entries.append((name.encode("utf-8"), proto))
        data += raw
    version = _field(1, 0, 1)  # VersionDef.producer = 1
    header = _field(1, 0, 1) + _field(3, 2, version)  # num_shards = 1, endianness LITTLE (default 0)
    index = write_table([(b"", header)] + entries)
    paths = [prefix + ".index", shard_name(prefix, 0, 1)]
    for p, payload in ((paths[1], bytes(data)), (paths[0], index)):
        tmp = f"{p}.{os.getpid()}.part"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, p)
    return paths
