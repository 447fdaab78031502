"""The ``mattecli`` Typer application.

Each verb lives in its own module with a ``register(app)`` function. Verb modules must not import torch (or any
backend) at module level: ``mattecli --help``, ``--version`` and ``models list`` stay light.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

# Set before torch is imported (lazily, by the verbs): idle OpenMP threads sleep instead of spinning, which on a
# busy or small machine made torch 3-6x slower (measured with RVM on 2 cores). Users can still override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from .. import __version__
from ..errors import MatteError

def _one_line_warning(message, category, filename, lineno, line=None):
    return f"mattecli: warning: {str(message).splitlines()[0] if str(message) else category.__name__}\n"


warnings.formatwarning = _one_line_warning

VERBS = ("trimap", "matte", "composite", "video", "evaluate", "models")

app = typer.Typer(
    name="mattecli",
    help="Pull alpha mattes from images and videos with classical and paper matting models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None if os.environ.get("NO_COLOR") else "rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _flag_help_option() -> None:
    """-h/--help is a flag like the others: no value type in the rich help (typer shows `<bool>` for a flag
    without a metavar)."""
    from typer._click import core as _core

    orig = _core.Command.get_help_option
    if getattr(orig, "_mattecli", False):
        return

    def get_help_option(self, ctx):
        opt = orig(self, ctx)
        if opt is not None and opt.metavar is None:
            opt.metavar = ""
        return opt

    get_help_option._mattecli = True
    _core.Command.get_help_option = get_help_option


_flag_help_option()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mattecli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Pull alpha mattes from images and videos with classical and paper matting models."""


for _verb in VERBS:
    try:
        _mod = importlib.import_module(f"mattecli.cli.{_verb}")
    except ModuleNotFoundError as _e:
        if _e.name == f"mattecli.cli.{_verb}":
            continue
        raise
    _mod.register(app)


def _help_is_usage_error(argv: list[str]) -> bool:
    """True when ``argv`` names only groups/commands (``mattecli``, ``mattecli matte``, ``mattecli models``) that
    answer a missing argument with their help (no_args_is_help): that help is a usage error (exit 2), so it belongs
    on stderr, not on stdout with the data."""
    import typer.main

    cmd = typer.main.get_command(app)
    for a in argv:
        sub = getattr(cmd, "commands", {}).get(a)
        if sub is None:
            return False
        cmd = sub
    return bool(getattr(cmd, "no_args_is_help", False))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: MatteError -> one line on stderr and its exit code."""
    import contextlib

    args = list(sys.argv[1:] if argv is None else argv)
    redirect = contextlib.redirect_stdout(sys.stderr) if _help_is_usage_error(args) else contextlib.nullcontext()
    try:
        with redirect:
            app(args=argv, prog_name="mattecli", standalone_mode=True)
    except MatteError as e:
        print(f"mattecli: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("mattecli: interrupted", file=sys.stderr)
        sys.exit(130)
