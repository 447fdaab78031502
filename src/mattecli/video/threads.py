"""The two background threads of a clip: decode ahead (:class:`ThreadedReader`) and encode behind
(:class:`WriterThread`), each behind a bounded queue (back-pressure: memory stays flat whatever the length of the
clip). Exceptions raised in a thread are re-raised in the main thread at its next hand-over.
"""
from __future__ import annotations

import queue
import threading

from .oserrors import OutputError

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class ThreadedReader:
    """Run an iterator in a daemon thread, handing items over through a bounded queue.

    Exceptions raised by the iterator are re-raised in the consumer. :meth:`stop` makes the producer exit at its
    next put (it never blocks forever on a full queue).
    """

    def __init__(self, iterator, maxsize: int = 8, name: str = "mattecli-decode"):
        self._it = iterator
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._it:
                if not self._put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(e))
            return
        self._put(_END)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                item = self._q.get(timeout=0.1)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._q.empty():
                    raise StopIteration from None
        if item is _END:
            self._q.put(_END)  # stay exhausted
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def stop(self) -> None:
        self._stop.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)


_STOP = object()


class WriterThread:
    """Encodes in a background thread. ``put((frame, {output_type: array}))``; bounded queue = back-pressure."""

    def __init__(self, sinks: list, maxsize: int = 8):
        self.sinks = sinks
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self.error: BaseException | None = None
        self._abort = threading.Event()
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="mattecli-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _STOP or self._abort.is_set():
                    return
                frame, arrays = item
                for s in self.sinks:
                    s.write(arrays[s.plan.type], frame.pts, frame.time_base, frame.time)
                self.frames += 1
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            self.error = e

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise OutputError("the encoder thread stopped unexpectedly")
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued frame to be encoded (does not finish the sinks)."""
        self.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self._abort.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        try:
            self._q.put_nowait(_STOP)
        except queue.Full:
            pass
        self._thread.join(timeout=30)
