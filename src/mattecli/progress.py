"""The progress bar (one for the whole tool: batches, video frames, downloads).

Shown only when stderr is a terminal and the caller enables it (never in a log file or a pipe). Under NO_COLOR or
TERM=dumb it is one plain line redrawn with ``\\r``, without any escape code; otherwise a rich bar. ``unit``:
``items`` (done/total, ETA), ``frames`` (adds frames/s) or ``bytes`` (sizes and transfer speed)::

    with Progress("matte", total=len(items)) as bar:
        for it in items:
            ...
            bar.advance(1, it.name)
"""
from __future__ import annotations

import os
import sys
import time

from .console import isatty

UNITS = ("items", "frames", "bytes")


def _hms(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "-:--:--"
    s = int(s + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Plain:
    def __init__(self, stream, label: str, total: int | None, unit: str, completed: int):
        self.stream, self.label, self.total, self.unit = stream, label, total, unit
        self.done, self.t0, self._last, self._width = completed, time.perf_counter(), 0.0, 0
        self.start_done = completed
        self.desc = ""

    def _line(self) -> str:
        el = time.perf_counter() - self.t0
        rate = (self.done - self.start_done) / el if el > 0 else 0.0
        if self.unit == "bytes":
            n = f"{_mb(self.done)}/{_mb(self.total)}" if self.total else _mb(self.done)
            speed = f" {rate / 1e6:.1f} MB/s"
        else:
            n = f"{self.done}/{self.total}" if self.total else f"{self.done}"
            speed = f" {rate:5.1f} fps" if self.unit == "frames" else ""
        eta = (self.total - self.done) / rate if self.total and rate > 0 else None
        tail = f" {self.desc}" if self.desc else ""
        return f"{self.label} {n}{speed} {_hms(el)} ETA {_hms(eta)}{tail}"

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        line = self._line()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        self.draw(force=True)
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


class Progress:
    def __init__(self, label: str, total: int | None = None, *, unit: str = "items", enabled: bool = True,
                 completed: int = 0, stream=None, transient: bool = False):
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}")
        self.label, self.total, self.unit = label, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled) and self.stream is not None and isatty(self.stream)
        self.completed = completed
        self.transient = transient
        self._rich = self._plain = None
        self._task = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "Progress":
        if not self.enabled or self._rich is not None or self._plain is not None:
            return self
        if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") == "dumb":
            self._plain = _Plain(self.stream, self.label, self.total, self.unit, self.completed)
            return self
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, ProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        from .console import make_console

        class FPS(ProgressColumn):
            def render(self, task):
                sp = task.finished_speed or task.speed
                return Text(f"{sp:5.1f} fps" if sp else "  ... fps")

        cols = [TextColumn("{task.fields[label]}"), BarColumn()]
        if self.unit == "bytes":
            cols += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            cols += [MofNCompleteColumn()]
            if self.unit == "frames":
                cols += [FPS(), TimeElapsedColumn(), TextColumn("ETA")]
            cols += [TimeRemainingColumn(), TextColumn("{task.description}")]
        self._rich = RichProgress(*cols, console=make_console(self.stream), transient=self.transient,
                                  refresh_per_second=4)
        self._rich.start()
        self._task = self._rich.add_task("", total=self.total, completed=self.completed, label=self.label)
        return self

    def stop(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self._plain is not None:
            self._plain.stop()
            self._plain = None

    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    # -- updates -----------------------------------------------------------------------------------------------
    def advance(self, n: int = 1, description: str | None = None) -> None:
        self.completed += n
        if self._rich is not None:
            kw = {} if description is None else {"description": description}
            self._rich.update(self._task, advance=n, **kw)
        elif self._plain is not None:
            self._plain.done = self.completed
            if description is not None:
                self._plain.desc = description
            self._plain.draw()

    def describe(self, description: str) -> None:
        if self._rich is not None:
            self._rich.update(self._task, description=description)
        elif self._plain is not None:
            self._plain.desc = description

    def restart(self, completed: int = 0) -> None:
        self.completed = completed
        if self._rich is not None:
            self._rich.update(self._task, completed=completed)
        elif self._plain is not None:
            self._plain.done = self._plain.start_done = completed
