"""SIGTERM (and SIGINT) during a run: stop like Ctrl-C, leave only complete files, report, exit 143 / 130.

One handler for every verb::

    with stop_on_signals() as stop:
        ...                         # KeyboardInterrupt (Terminated for SIGTERM) is raised in the main thread
    code = stop.exit_code(exc)      # 143 for SIGTERM, 130 for SIGINT
"""
from __future__ import annotations

import contextlib
import signal
import threading

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops like Ctrl-C."""


def exit_code(exc: BaseException | None) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def signal_name(exc: BaseException | None) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


@contextlib.contextmanager
def stop_on_signals(sigint_too: bool = False):
    """Within the block, SIGTERM raises :class:`Terminated`; with ``sigint_too``, a SIGINT that a parent shell set to
    'ignore' (background jobs) raises KeyboardInterrupt too. Handlers are restored on exit. No-op off the main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise Terminated()

    def on_int(signum, frame):
        raise KeyboardInterrupt()

    saved = {}
    wanted = [(signal.SIGTERM, on_term)] + ([(signal.SIGINT, on_int)] if sigint_too else [])
    for sig, handler in wanted:
        try:
            saved[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for sig, h in saved.items():
            try:
                signal.signal(sig, h)
            except (ValueError, OSError, TypeError):
                pass
