"""Helpers shared by every verb module: error handling and model options from the command line.

``@handle_errors`` turns MatteError into one line on stderr + its exit code (1, or 2 for usage errors), so the
behaviour is the same under ``typer.testing.CliRunner`` and as a real process. Messages and the console live in
:mod:`mattecli.console`.
"""
from __future__ import annotations

import functools

import typer

from ..console import error_line, make_console, stderr_console, warn_line  # noqa: F401  (verbs import them here)
from ..errors import MatteError


_POLICY_VARS = ("MATTECLI_OFFLINE", "MATTECLI_NO_FETCH")


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import os

        saved = {k: os.environ.get(k) for k in _POLICY_VARS}   # fetch_policy() lasts for this command only
        try:
            return fn(*args, **kwargs)
        except MatteError as e:
            error_line(str(e))
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt as e:
            from ..batch.signals import exit_code

            error_line("interrupted")
            raise typer.Exit(exit_code(e))
        finally:
            from ..batch import locks

            locks.wait(False)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    return wrapper


def model_options(entry, items: list[str] | None, **extra) -> dict:
    """``--option KEY=VALUE`` (repeatable) for ``entry``: typed and validated now, before any work (exit 2 with the
    valid values). ``extra``: options set by other flags (``tta``, ``align``)."""
    from ..options import parse_cli_options

    given = parse_cli_options(items)
    given.update(extra)
    return entry.validate_options(given)


def say(quiet: bool, msg: str) -> None:
    """One progress line on stderr (``mattecli: ...``), unless -q."""
    if not quiet:
        from ..console import info_line

        info_line(msg)


def wait_policy(wait: bool) -> None:
    """``--wait``: outputs another run is writing are waited for (this command only)."""
    from ..batch import locks

    locks.wait(wait)


def fetch_policy(offline: bool = False, no_fetch: bool = False) -> None:
    """``--offline`` / ``--no-fetch`` for this process: missing weights are then never downloaded."""
    import os

    if offline:
        os.environ["MATTECLI_OFFLINE"] = "1"
    if no_fetch:
        os.environ["MATTECLI_NO_FETCH"] = "1"
