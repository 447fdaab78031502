"""Helpers shared by every verb: stderr console, error handling, option parsing.

- ``stderr``: a rich Console on stderr; colour only on a TTY and never with NO_COLOR. stdout carries data only.
- ``@handle_errors``: turns MatteError into one line on stderr + its exit code (1, or 2 for usage errors), so the
  behaviour is the same under ``typer.testing.CliRunner`` and as a real process.
"""
from __future__ import annotations

import functools
import os
import sys

import typer

from ..errors import MatteError


def make_console(stream=None):
    from rich.console import Console

    stream = stream or sys.stderr
    no_color = bool(os.environ.get("NO_COLOR"))
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, no_color=no_color or not is_tty, force_terminal=False if not is_tty else None,
                   highlight=False, soft_wrap=True)


def stderr_console():
    return make_console(sys.stderr)


def error_line(msg: str) -> None:
    print(f"mattecli: error: {msg}", file=sys.stderr)


def warn_line(msg: str) -> None:
    print(f"mattecli: warning: {msg}", file=sys.stderr)


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MatteError as e:
            error_line(str(e))
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130)

    return wrapper


def parse_kv_options(items: list[str] | None) -> dict:
    """``--option key=value`` (repeatable) -> dict with ints/floats/bools/None parsed."""
    from ..errors import UsageError

    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_scalar(v.strip())
    return out


def _parse_scalar(v: str):
    low = v.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v
