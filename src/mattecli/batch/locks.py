"""One writer per output: an inter-process lock on every final output path (``filelock``: ``flock`` on POSIX).

Every output a verb writes is locked for as long as it is being written: the image writers
(:func:`mattecli.imaging.io.atomic_path`) for the few milliseconds of the temp file and the rename, ``video`` for the
whole clip (from the first frame to the rename of the finished file). A second run that wants to write the same path
meanwhile fails that item at once with ``another mattecli run is writing PATH`` (exit 1), or, with :func:`wait`
(``--wait``), waits for the first run to finish and then writes its own output over it.

Lock files sit next to the output as hidden files, ``out/.clip.mov.lock`` for ``out/clip.mov`` (so runs of different
users, or on other machines sharing the folder, see each other's locks). Input expansion skips hidden files, and a
lock file is removed again when its lock is released (removed while still held, so a waiting run never locks a file
that is gone); one left behind by a killed run is harmless: the kernel released its lock with the process.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from typing import Callable, Iterable, Iterator

from ..errors import MatteError

LOCK_SUFFIX = ".lock"
_NAME_MAX = 200                 # longer output names get a hashed lock name (file names are limited to 255 bytes)

_wait_default = False
_held: dict[str, list] = {}    # lock file -> [FileLock, depth]: a path this process holds is not "another run"
_mutex = threading.Lock()


class OutputBusy(MatteError):
    """Another mattecli run is writing this output."""


def wait(enabled: bool = True) -> None:
    """Make this process wait for other runs' output locks instead of failing (``--wait``)."""
    global _wait_default
    _wait_default = bool(enabled)


def waiting() -> bool:
    """Whether :func:`wait` is on for this process."""
    return _wait_default


def lock_path(path: str | os.PathLike) -> str:
    """The lock file of an output: ``DIR/.NAME.lock`` (a trailing slash, as of a PNG-sequence folder, ignored)."""
    p = os.path.abspath(os.fspath(path).rstrip("/\\") or ".")
    folder, name = os.path.split(p)
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        name = "mattecli-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(folder, f".{name}{LOCK_SUFFIX}")


def _busy(path: str) -> OutputBusy:
    return OutputBusy(f"another mattecli run is writing {path}; wait for it to finish, choose another output, or "
                      "pass --wait to wait for it", path=path)


def _still_linked(lock) -> bool:
    """After an acquire: is the locked file still the one at the lock path? A holder removes the file before it
    releases; a run that opened the file just before that must try again on a new file (recent ``filelock``
    versions check this themselves; older ones do not)."""
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if not isinstance(fd, int):
        return True
    try:
        st = os.fstat(fd)
        on_disk = os.stat(lock.lock_file)
    except OSError:
        return False
    return st.st_nlink > 0 and (st.st_dev, st.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _acquire(lp: str, path: str, wait_: bool, on_wait: Callable[[], None] | None):
    from filelock import FileLock, Timeout

    told = False
    while True:
        lock = FileLock(lp)
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if not wait_:
                    raise _busy(path) from None
                if not told and on_wait is not None:
                    on_wait()
                told = True
                lock.acquire(timeout=-1)
        except OSError as e:
            raise MatteError(f"{path}: cannot create the lock file {lp} ({e.strerror or e}); choose a folder you "
                             "can write to", path=path) from None
        if _still_linked(lock):
            return lock
        lock.release()


def _release(lp: str, lock) -> None:
    if sys.platform != "win32":      # on Windows the open file cannot be removed; filelock removes it on release
        with contextlib.suppress(OSError):
            os.unlink(lp)
    lock.release()


def _tell_waiting(path: str) -> Callable[[], None]:
    def told() -> None:
        print(f"mattecli: waiting for another mattecli run writing {path} (--wait)", file=sys.stderr, flush=True)
    return told


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, *, wait: bool | None = None,
                on_wait: Callable[[], None] | None = None) -> Iterator[str]:
    """Hold the lock of output ``path`` for the block (its folder must exist). Raises :class:`OutputBusy` when
    another run holds it, unless ``wait`` (default: :func:`wait`'s setting), which blocks until it is free
    (``on_wait()`` is called once first; by default a line on stderr). Re-entrant within one process."""
    p = os.fspath(path)
    lp = lock_path(p)
    wait_ = _wait_default if wait is None else wait
    with _mutex:
        held = _held.get(lp)
        if held is not None:
            held[1] += 1
    if held is None:
        lock = _acquire(lp, p, wait_, on_wait or _tell_waiting(p))
        with _mutex:
            _held[lp] = held = [lock, 1]
    try:
        yield lp
    finally:
        with _mutex:
            held[1] -= 1
            last = held[1] == 0
            if last:
                del _held[lp]
        if last:
            _release(lp, held[0])


def hold_outputs(paths: Iterable[str | os.PathLike], *, wait: bool | None = None) -> contextlib.ExitStack:
    """Lock several outputs (an ExitStack; close it to release them all). They are taken in one fixed order, so
    two waiting runs that write the same outputs never wait for each other in a circle."""
    stack = contextlib.ExitStack()
    try:
        for p in sorted({os.fspath(p) for p in paths}, key=lock_path):
            stack.enter_context(output_lock(p, wait=wait))
    except BaseException:
        stack.close()
        raise
    return stack
