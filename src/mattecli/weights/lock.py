"""Inter-process file lock so two mattecli processes never download the same file twice (``filelock``: POSIX and
Windows).

Lock files live under ``home()/locks/`` (not in the weights folders, which hold only verified files).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | os.PathLike, on_wait=None, timeout: float | None = None):
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block.

    ``on_wait()`` is called once if another process holds the lock; ``timeout`` (seconds, None = wait forever)
    raises TimeoutError when exceeded.
    """
    from filelock import FileLock, Timeout

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(os.fspath(p))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise TimeoutError(f"{p}: still locked by another process after {timeout:g}s") from None
    try:
        yield
    finally:
        lock.release()
