"""One-line errors for the OS and FFmpeg failures of reading inputs and writing outputs (permission, I/O, disk full).

FFmpeg's avio reports OS errors as ``av.error.OSError`` carrying the errno, so the same table serves both.
"""
from __future__ import annotations

import errno
import os

from ..errors import InputError, MatteError


class OutputError(MatteError):
    """An output cannot be written or failed verification."""


class DiskFullError(OutputError):
    """The disk (or the user's quota) holding an output is full."""


def first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


READ_ERRNO = {errno.EACCES: "make it readable (chmod) or copy it somewhere you can read",
              errno.EPERM: "make it readable (chmod) or copy it somewhere you can read",
              errno.EIO: "the disk or network share failed; check it or copy the file locally",
              errno.ENXIO: "the device is gone; reconnect it or copy the file locally",
              errno.ESTALE: "the network share went away; remount it or copy the file locally"}

# what to tell the user for OS-level write errors
WRITE_ERRNO = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "a file-size limit was reached; write elsewhere, or to a PNG folder",
    errno.EROFS: "write elsewhere",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EIO: "check the disk or write elsewhere",
}


def input_os_error(path: str, e: BaseException, where: str = "") -> InputError:
    """One-line :class:`InputError` for an OS error (permission, I/O) while reading an input."""
    en = getattr(e, "errno", None)
    if en in READ_ERRNO:
        return InputError(f"{path}: {os.strerror(en)}{where} ({READ_ERRNO[en]})", path=path)
    return InputError(f"{path}: cannot read{where} ({first_line(e)})", path=path)


def output_os_error(path: str, e: BaseException, what: str = "cannot write") -> OutputError:
    """One-line :class:`OutputError` for an OS/FFmpeg error raised while opening, writing or closing ``path``.

    ``PATH: No space left on device (free some space or write elsewhere)`` for ENOSPC and the like; anything else
    becomes ``PATH: WHAT (first line of the error); choose another -o``.
    """
    if isinstance(e, MatteError):
        return e if isinstance(e, OutputError) else OutputError(str(e), path=path)
    en = getattr(e, "errno", None)
    if isinstance(e, OSError) and en in WRITE_ERRNO:
        cls = DiskFullError if en in (errno.ENOSPC, errno.EDQUOT) else OutputError
        return cls(f"{path}: {os.strerror(en)} ({WRITE_ERRNO[en]})", path=path)
    return OutputError(f"{path}: {what} ({first_line(e)}); choose another -o", path=path)


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def ensure_parent(path: str) -> None:
    """Create the folder that will hold ``path``; a one-line OutputError if that is impossible or not writable."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            raise output_os_error(path, e) from None
        raise OutputError(f"{path}: cannot create the output folder ({e.strerror or e}); choose another -o",
                          path=path) from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output folder is not writable; choose another -o", path=path)
