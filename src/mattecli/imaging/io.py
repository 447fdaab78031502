"""Reading and writing still images.

Reading (:func:`read_image`): JPEG, PNG (8/16-bit; grey, grey+alpha, RGB, RGBA, palette with or without
transparency), TIFF (8/16-bit), WebP, BMP. EXIF orientation is applied, so arrays are upright as a viewer shows them.
Arrays come back as ``HxW`` (grey), ``HxWx3`` (RGB) or ``HxWx4`` (RGBA), dtype uint8 or uint16, channel order RGB.

Writing (:func:`write_image`): PNG (8/16-bit, with ``tEXt`` metadata such as ``alpha-mode``), TIFF (8/16-bit) and
JPEG (8-bit RGB/grey only: an alpha or RGBA output sent to ``.jpg`` is refused, never silently flattened). Every
write goes through :func:`atomic_write_bytes`: a temp file in the destination folder, then ``os.replace``, so a
crash or an error never leaves a partial file under the final name.

Every user-caused problem raises :class:`~mattecli.errors.InputError` (one line, names the file).
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from ..errors import InputError, MatteError, UsageError
from ..formats import IMAGE_EXTS as READ_EXTS  # noqa: F401  (the one list of each)
from ..formats import TEMP_SUFFIX, WRITE_EXTS
from .arrays import rgb_of, to_float, to_uint8  # noqa: F401  (re-exported: one conversion rule)


# ------------------------------------------------------------------------------------------------ atomic writes
def _fix_mode(path: str) -> None:
    # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = True) -> Iterator[str]:
    """Yield a temp file name next to ``path``; on success it replaces ``path``, on error it is removed.

    The temp name is unique (``.NAME.<pid>-<random>.part``) and ``path`` is locked meanwhile
    (:func:`mattecli.batch.locks.output_lock`): another run writing the same output fails at once with "another
    mattecli run is writing PATH" (or waits, after :func:`mattecli.batch.locks.wait`). Temp files of the same output
    left by a killed run are removed first.

    For writers that need a file name (video encoders, ``np.save``)::

        with atomic_path("out/a.mov") as tmp:
            write_movie(tmp)
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if make_parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InputError(f"{parent}: cannot create output folder: a file of that name exists", path=parent) from None
        except OSError as e:
            raise InputError(f"{parent}: cannot create output folder ({e.strerror or e})", path=parent) from None
    if not parent.is_dir():
        raise InputError(f"{parent}: output folder does not exist or is not a folder", path=parent)
    from ..batch.locks import output_lock

    with output_lock(path):       # one writer per output: a second run fails (or waits, with --wait)
        _remove_litter(parent, path.name)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TEMP_SUFFIX, dir=str(parent))
        except OSError as e:
            raise InputError(f"{parent}: cannot write to the output folder ({e.strerror or e})", path=parent) from None
        os.close(fd)
        try:
            yield tmp
            _fix_mode(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _remove_litter(parent: Path, name: str) -> None:
    """Temp files of this output left by a killed run (``.NAME.<pid>-<random>.part``). Called with the output's lock
    held, so no live run is writing them."""
    prefix = f".{name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


STDIO = "-"
_stdin_data: bytes | None = None


def stdin_bytes() -> bytes:
    """Everything on standard input (read once; ``-`` as an input)."""
    global _stdin_data
    if _stdin_data is None:
        import sys

        _stdin_data = sys.stdin.buffer.read()
    return _stdin_data


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``); ``-`` writes it to
    standard output."""
    if os.fspath(path) == STDIO:
        import sys

        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except OSError as e:
            raise InputError(f"standard output: write failed ({e.strerror or e})") from None
        return
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            raise InputError(f"{path}: write failed ({e.strerror or e})", path=path) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------------ reading
_ORIENT_TAG = 0x0112


def _orientation(pil_img) -> int:
    try:
        return int(pil_img.getexif().get(_ORIENT_TAG, 1) or 1)
    except Exception:  # broken EXIF never stops a read
        return 1


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, like ``PIL.ImageOps.exif_transpose``."""
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return a
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = np.swapaxes(a, 0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = np.swapaxes(a, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _png_bit_depth(data: bytes) -> int | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        return data[24]
    return None


def _needs_cv2(pil_img, data: bytes) -> bool:
    """True when Pillow would lose precision (16-bit colour PNG/TIFF) or cannot represent the mode."""
    if pil_img.format == "PNG":
        return (_png_bit_depth(data) or 8) == 16
    if pil_img.format == "TIFF":
        try:
            bps = pil_img.tag_v2.get(258)  # BitsPerSample
            bps = bps if isinstance(bps, (tuple, list)) else (bps,)
            extra = pil_img.tag_v2.get(338)
            extra = extra if isinstance(extra, (tuple, list)) else (extra,)
            # associated (premultiplied) alpha: Pillow un-premultiplies; OpenCV keeps the stored values
            return any(int(b) > 8 for b in bps if b is not None) or 1 in extra
        except Exception:
            return False
    return pil_img.mode in ("I;16", "I;16B", "I;16L", "I", "F")


def _decode_cv2(data: bytes, path) -> np.ndarray:
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise InputError(f"{path}: cannot decode the image (truncated or unsupported variant)", path=path)
    if a.dtype not in (np.uint8, np.uint16):
        if np.issubdtype(a.dtype, np.floating):
            a = _quantise(a, 16)
        else:
            a = np.clip(a, 0, 65535).astype(np.uint16)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return np.ascontiguousarray(a)


def _decode_pil(img, path) -> np.ndarray:
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "LA":
        a = np.asarray(img)
        rgb = np.repeat(a[..., :1], 3, axis=2)
        return np.concatenate([rgb, a[..., 1:2]], axis=2)
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in mode else "RGB")
    return np.array(img)


#: Pillow's decompression-bomb limit, set deliberately (Pillow's default, 89 M pixels with a warning and an error at
#: twice that, would reject legitimate 12000x12000 scans): 2**30 pixels (32768 x 32768), refused above with one line.
#: Below it, whether an image is decoded is the memory guard's decision (:func:`mattecli.memory.check_decode`): the
#: header's size against the memory available, before anything is decoded.
MAX_PIXELS = 1 << 30


def _pil():
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


def check_pixels(p, w: int, h: int) -> None:
    """Refuse a WxH image over MAX_PIXELS (from its header), naming the fix."""
    if w * h > MAX_PIXELS:
        raise InputError(f"{p}: {w}x{h} is more than {MAX_PIXELS} pixels, the most mattecli decodes; downscale the "
                         "file first", path=p)


def _check_decode(img, data: bytes, p) -> None:
    """From the header only: refuse an image over MAX_PIXELS, or whose decode would not fit in memory."""
    w, h = img.size
    check_pixels(p, w, h)
    mode = img.mode
    samples = 4 if mode in ("P", "PA", "LA", "RGBa") else max(1, len(img.getbands()))
    wide = mode.startswith("I;16") or (_png_bit_depth(data) or 8) == 16 or _needs_cv2(img, data)
    sample_bytes = 4 if mode in ("I", "F") else (2 if wide else 1)
    from ..memory import check_decode

    check_decode(p, w, h, samples, sample_bytes)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file, EXIF orientation applied.

    Returns HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8/uint16. Palette images come back as RGB (RGBA if the
    palette has transparency); grey+alpha as RGBA. Raises InputError for missing, empty, truncated or non-image files.
    The header's size is checked first (MAX_PIXELS, the memory guard): nothing is decoded for a refused image.
    """
    import warnings

    from PIL import UnidentifiedImageError

    Image = _pil()

    p = Path(path)
    try:
        data = stdin_bytes() if os.fspath(path) == STDIO else p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: file not found", path=p) from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a folder, not an image", path=p) from None
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})", path=p) from None
    if not data:
        if os.fspath(path) == STDIO:
            raise InputError("standard input is empty: pipe an image into it (cat img.png | mattecli ... - ...)")
        raise InputError(f"{p}: empty file (0 bytes); write it again (an interrupted export?)", path=p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        _check_decode(img, data, p)
        img.load()
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image or an unsupported format (readable: PNG, JPEG, TIFF, WebP, BMP)",
                         path=p) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{p}: cannot decode the image, the file is probably truncated or corrupt ({msg})",
                         path=p) from None
    except Image.DecompressionBombError as e:   # over 2 * MAX_PIXELS: Pillow refuses at the header
        raise InputError(f"{p}: image too large to decode ({e}); downscale the file first", path=p) from None
    orient = _orientation(img)
    if _needs_cv2(img, data):
        a = _decode_cv2(data, p)
    else:
        a = _decode_pil(img, p)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4)):
        return apply_orientation(a, orient)
    raise InputError(f"{p}: unsupported channel layout {a.shape}", path=p)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """HxWx3 RGB image for matting: uint8 for 8-bit files, float32 [0,1] for 16-bit ones (precision kept)."""
    a = rgb_of(read_image(path))
    return a if a.dtype == np.uint8 else to_float(a)


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """HxW float32 in [0,1] (masks, alphas). RGB(A) files: the colour channels are averaged; alpha ignored
    unless the colour channels are constant and the alpha channel varies (an RGBA cut-out given as a matte)."""
    a = read_image(path)
    f = to_float(a)
    if f.ndim == 2:
        return f
    rgb = f[..., :3].mean(axis=2)
    if f.shape[2] == 4 and np.ptp(rgb) == 0 and np.ptp(f[..., 3]) > 0:
        return np.ascontiguousarray(f[..., 3])
    return np.ascontiguousarray(rgb)


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) after EXIF orientation, from the header only; None if unreadable or not a regular file (a
    FIFO or stdin can be read once only: its size is checked when it is decoded)."""
    import stat
    import warnings

    Image = _pil()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            w, h = img.size
            # a PNG whose EXIF is not in the header would be decoded whole by getexif(): no orientation then
            header_only = img.format == "PNG" and "exif" not in img.info
            if not header_only and _orientation(img) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Exception:
        return None


def verify_decodes(path: str | os.PathLike) -> bool:
    """True if ``path`` exists, is non-empty and decodes completely (how a run decides that an output is complete)."""
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size == 0:
            return False
        read_image(p)
        return True
    except (MatteError, OSError):
        return False


# ------------------------------------------------------------------------------------------------------ writing
def _png_text_chunk(key: str, value: str) -> bytes:
    body = key.encode("latin-1")[:79] + b"\x00" + value.encode("latin-1", "replace")
    return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)


def add_png_text(png: bytes, metadata: Mapping[str, str]) -> bytes:
    """Insert ``tEXt`` chunks right after IHDR."""
    if not metadata:
        return png
    ihdr_end = 8 + 4 + 4 + 13 + 4
    chunks = b"".join(_png_text_chunk(str(k), str(v)) for k, v in metadata.items())
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def read_png_text(path: str | os.PathLike) -> dict:
    """``tEXt`` chunks of a PNG as a dict (e.g. ``{"alpha-mode": "straight"}``)."""
    from PIL import Image

    with Image.open(path) as img:
        return {k: v for k, v in getattr(img, "text", {}).items()}


def _quantise(a: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return to_uint8(a)
    if a.dtype == np.uint16:
        return a
    if a.dtype == np.uint8:
        return a.astype(np.uint16) * 257
    return (np.clip(a.astype(np.float32), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def encode_rgba_tiff(q: np.ndarray, *, premultiplied: bool = False, metadata: Mapping[str, str] | None = None) -> bytes:
    """HxWx4 uint8/uint16 RGBA -> little-endian TIFF (one Deflate strip) with ExtraSamples (tag 338) = 2
    (unassociated alpha, straight RGB) or 1 (associated alpha, premultiplied RGB); ``metadata`` goes to the
    ImageDescription tag as ``key=value`` lines."""
    q = np.ascontiguousarray(q)
    H, W, C = q.shape
    bps = 16 if q.dtype == np.uint16 else 8
    pixels = zlib.compress(q.astype("<u2" if bps == 16 else np.uint8).tobytes(), 6)
    desc = "\n".join(f"{k}={v}" for k, v in (metadata or {}).items()).encode("latin-1", "replace") + b"\x00"
    SHORT, LONG, ASCII = 3, 4, 2
    # (tag, type, count, values or bytes)
    entries = [
        (256, LONG, 1, [W]), (257, LONG, 1, [H]), (258, SHORT, 4, [bps] * 4), (259, SHORT, 1, [8]),
        (262, SHORT, 1, [2]), (270, ASCII, len(desc), desc), (273, LONG, 1, [0]), (277, SHORT, 1, [4]),
        (278, LONG, 1, [H]), (279, LONG, 1, [len(pixels)]), (284, SHORT, 1, [1]),
        (338, SHORT, 1, [1 if premultiplied else 2]), (339, SHORT, 4, [1] * 4),
    ]
    n = len(entries)
    ifd_size = 2 + 12 * n + 4
    extra_at = 8 + ifd_size                    # out-of-line values follow the IFD, then the pixels
    blobs = b""
    recs = []
    for tag, typ, count, vals in entries:
        raw = vals if isinstance(vals, bytes) else struct.pack("<" + ("H" if typ == SHORT else "I") * count, *vals)
        recs.append([tag, typ, count, raw])
    for r in recs:
        if len(r[3]) > 4:
            off = extra_at + len(blobs)
            blobs += r[3] + (b"\x00" if len(r[3]) % 2 else b"")
            r[3] = struct.pack("<I", off)
    pix_at = extra_at + len(blobs)
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n))
    for tag, typ, count, raw in recs:
        if tag == 273:
            raw = struct.pack("<I", pix_at)
        out += struct.pack("<HHI", tag, typ, count) + raw.ljust(4, b"\x00")
    out += struct.pack("<I", 0)
    return bytes(out) + blobs + pixels


def encode_image(a: np.ndarray, ext: str, *, bits: int = 8, metadata: Mapping[str, str] | None = None,
                 quality: int = 95, what: str = "image", path=None) -> bytes:
    """Encode an array (HxW, HxWx3 RGB, HxWx4 RGBA; uint8/uint16/float [0,1]) to PNG/TIFF/JPEG bytes."""
    import cv2

    ext = ext.lower()
    if not ext.startswith("."):
        ext = "." + ext
    if ext not in WRITE_EXTS:
        raise UsageError(f"{path or 'output'}: cannot write {ext} files; use .png, .tif or .jpg")
    if bits not in (8, 16):
        raise UsageError(f"bit depth must be 8 or 16, not {bits}")
    a = np.asarray(a)
    is_jpeg = ext in (".jpg", ".jpeg")
    if is_jpeg:
        if (a.ndim == 3 and a.shape[2] == 4) or what in ("alpha", "rgba", "trimap"):
            raise UsageError(f"{path or 'output'}: JPEG cannot hold {what if what != 'image' else 'an alpha channel'} "
                             "losslessly; write it as .png or .tif")
        bits = 8
    q = _quantise(a, bits)
    if ext in (".tif", ".tiff") and q.ndim == 3 and q.shape[2] == 4:
        # OpenCV writes no ExtraSamples tag, so other programs would not take channel 4 as alpha
        premult = str((metadata or {}).get("alpha-mode", "")).lower() == "premultiplied"
        return encode_rgba_tiff(q, premultiplied=premult, metadata=metadata)
    if q.ndim == 3 and q.shape[2] == 3:
        q = q[..., ::-1]
    elif q.ndim == 3 and q.shape[2] == 4:
        q = q[..., [2, 1, 0, 3]]
    q = np.ascontiguousarray(q)
    if ext == ".png":
        ok, buf = cv2.imencode(".png", q, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        data = add_png_text(buf.tobytes(), metadata or {}) if ok else b""
    elif is_jpeg:
        ok, buf = cv2.imencode(".jpg", q, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        data = buf.tobytes() if ok else b""
    else:
        ok, buf = cv2.imencode(".tiff", q)
        data = buf.tobytes() if ok else b""
    if not ok or not data:
        raise MatteError(f"{path or 'output'}: encoding {ext} failed")
    return data


def write_image(path: str | os.PathLike, a: np.ndarray, *, bits: int = 8, metadata: Mapping[str, str] | None = None,
                quality: int = 95, what: str = "image") -> Path:
    """Encode by extension and write atomically. ``what`` ("alpha", "rgba", "trimap", ...) is used to refuse JPEG
    for alpha-carrying outputs with a clear message. Returns the path."""
    p = Path(path)
    ext = ".png" if os.fspath(path) == STDIO else p.suffix
    data = encode_image(a, ext, bits=bits, metadata=metadata, quality=quality, what=what, path=p)
    atomic_write_bytes(p, data)
    return p
