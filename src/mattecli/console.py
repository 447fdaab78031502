"""stderr for people, stdout for data: the one console, and one-line messages.

Colour only on a TTY and never with NO_COLOR. Every message starts with ``mattecli:``; errors and warnings are one
line each.
"""
from __future__ import annotations

import os
import sys


def make_console(stream=None):
    from rich.console import Console

    stream = stream or sys.stderr
    no_color = bool(os.environ.get("NO_COLOR"))
    is_tty = isatty(stream)
    return Console(file=stream, no_color=no_color or not is_tty, force_terminal=False if not is_tty else None,
                   highlight=False, soft_wrap=True)


def stderr_console():
    return make_console(sys.stderr)


def isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def info_line(msg: str) -> None:
    print(f"mattecli: {msg}", file=sys.stderr, flush=True)


def error_line(msg: str) -> None:
    print(f"mattecli: error: {msg}", file=sys.stderr, flush=True)


def warn_line(msg: str) -> None:
    print(f"mattecli: warning: {msg}", file=sys.stderr, flush=True)
