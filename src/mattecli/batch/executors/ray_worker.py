"""The Ray actor of ``--executor ray`` (:mod:`.ray_pool`): the verb's task with its model loaded once, one call at a
time, and a second, "control" call that interrupts the running one."""
from __future__ import annotations

import ctypes
import os
import threading
import time

import ray

from ...errors import MatteError
from ..runner import ItemRunner, Outcome, captured


def _load_info(fn) -> dict:
    info = {"pid": os.getpid(), "node": ray.util.get_node_ip_address()}
    load = getattr(fn, "load", None)
    if not callable(load):
        return info
    try:
        backend = load()
    except MatteError as e:
        info["error"] = e
    except Exception as e:  # noqa: BLE001 - reported by the driver as the load error it is
        info["error"] = MatteError(f"loading the model on a Ray worker failed: {type(e).__name__}: {e}")
    else:
        info["weights_sha256"] = getattr(backend, "weights_sha256", None)
        info["device"] = str(getattr(backend, "device", "cpu")) if backend is not None else None
        line = getattr(backend, "runtime_line", None)
        info["runtime"] = line() if callable(line) else None
    return info


class Worker:
    """A Ray actor: the verb's task with its model loaded once, running one item (or part) at a time."""

    def __init__(self, fn, cwd: str | None = None):
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)               # relative paths mean what they mean on the driver (shared file system)
        self.fn = fn
        self._lock = threading.Lock()
        self._busy: int | None = None   # the thread running a call, for interrupt()
        self.info = _load_info(fn)

    def ready(self) -> dict:
        return self.info

    def _guarded(self, call) -> Outcome:
        with self._lock:
            self._busy = threading.get_ident()
        try:
            try:
                return call()
            finally:
                with self._lock:
                    self._busy = None
        except KeyboardInterrupt:
            return Outcome("failed", error="interrupted")

    def run(self, policy: ItemRunner, item, rerun: bool) -> Outcome:
        return self._guarded(lambda: policy.with_fn(self.fn).run(item, rerun=rerun))

    def part(self, item, part) -> Outcome:
        def call():
            t0 = time.perf_counter()
            out = captured(lambda: Outcome("ok", fields={"result": self.fn.run_part(item, part)}))
            out.seconds = time.perf_counter() - t0
            return out
        return self._guarded(call)

    def join(self, item, parts, results) -> Outcome:
        return self._guarded(lambda: captured(lambda: self.fn.join(item, parts, results)))

    @ray.method(concurrency_group="control")
    def interrupt(self) -> bool:
        """Raise KeyboardInterrupt in the thread running a call (between two Python steps, as Ctrl-C would)."""
        with self._lock:
            tid = self._busy
            if tid is None:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(KeyboardInterrupt))
            return True
