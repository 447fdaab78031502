"""Inter-process file lock (``fcntl.flock``) so two mattecli processes never download the same file twice.

Lock files live under ``home()/locks/`` (not in the weights folders, which hold only verified files). Where
``fcntl`` is unavailable (Windows) the lock degrades to a no-op.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextmanager
def file_lock(path: str | os.PathLike, on_wait=None, timeout: float | None = None):
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block.

    ``on_wait()`` is called once if another process holds the lock; ``timeout`` (seconds, None = wait forever)
    raises TimeoutError when exceeded.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                end = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > end:
                            raise TimeoutError(f"{p}: still locked by another process after {timeout:g}s") from None
                        time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
