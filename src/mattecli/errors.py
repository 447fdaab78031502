"""Exception hierarchy. Every error a user can cause is a MatteError with a one-line message.

Exit codes used by the CLI: 1 = a run finished with failures (or a runtime error), 2 = usage error.
"""
from __future__ import annotations


class MatteError(Exception):
    """Base class: message is one line, names the file and the fix where there is one."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(message)

    def __str__(self) -> str:  # one line, always
        msg = super().__str__().replace("\n", " ").strip()
        return msg


class UsageError(MatteError):
    """Bad flags or flag combinations."""

    exit_code = 2


class InputError(MatteError):
    """An input file is unreadable, of the wrong kind or size."""


class MissingInput(InputError):
    """A required input (trimap, background plate, partner file) is absent."""


class UnknownModel(UsageError):
    """A model name that is not in the registry."""


class WeightsUnavailable(MatteError):
    """Weights are not cached and cannot be fetched (offline, manual source, all sources failed)."""


class ChecksumMismatch(MatteError):
    """A downloaded or imported file does not match the registry's sha256."""


class ConverterError(MatteError):
    """A checkpoint does not have the official layout (missing or leftover keys, wrong shapes, unsafe pickle)."""
