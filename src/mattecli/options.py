"""Typed model options: declared as data in each registry entry, validated once before any work (no torch here).

Every option a model takes (``--option KEY=VALUE`` on the command line, ``load_model(name, KEY=VALUE)`` in Python)
is an :class:`Option` in ``ModelEntry.options``: its type, default, allowed choices or range, and a one-line help.
:func:`validate_options` turns what the user gave (strings from the command line, or Python values) into the full,
typed option dict, or raises one :class:`~mattecli.errors.UsageError` that names the option and its valid values
(exit 2, before a model loads or an image is read)::

    Option(0.25, "float", min=0, max=0.5, min_open=True, help="backbone input scale")
    Option("sampling", "choice", choices=("full", "sampling", "thresholding"))
    Option(None, "int", min=64, nullable=True, help="tile size in pixels (none = whole image)")
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import UsageError

TYPES = ("bool", "int", "float", "str", "choice", "list")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null", "")


@dataclass(frozen=True)
class Option:
    """One model option.

    type: ``bool`` | ``int`` | ``float`` | ``str`` | ``choice`` (one of ``choices``) | ``list`` (of strings, given
    comma-separated on the command line). ``min``/``max`` bound numbers (``min_open``/``max_open``: exclusive).
    ``nullable``: ``none`` is accepted (it means what ``none_means`` says, usually the official automatic choice).
    ``choices`` may also be given for ``bool``-like choices (``tta``: ``False``, ``True``, ``"flip"``): then the
    value must be one of them.
    """

    default: Any
    type: str = "str"
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    nullable: bool = False
    help: str = ""
    none_means: str = ""

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"unknown option type {self.type!r}")

    # -- description (help, error messages, `models info`) -------------------------------------------------------
    def domain(self) -> str:
        """What values are valid, in words: ``a number in (0, 0.5]``, ``one of full, sampling``, ..."""
        if self.choices:
            text = "one of " + ", ".join(_show(c) for c in self.choices)
        elif self.type == "bool":
            text = "true or false"
        elif self.type in ("int", "float"):
            what = "an integer" if self.type == "int" else "a number"
            if self.min is not None and self.max is not None:
                lo = "(" if self.min_open else "["
                hi = ")" if self.max_open else "]"
                text = f"{what} in {lo}{_show(self.min)}, {_show(self.max)}{hi}"
            elif self.min is not None:
                text = f"{what} {'>' if self.min_open else '>='} {_show(self.min)}"
            elif self.max is not None:
                text = f"{what} {'<' if self.max_open else '<='} {_show(self.max)}"
            else:
                text = what
        elif self.type == "list":
            text = "comma-separated names"
        else:
            text = "text"
        if self.nullable:
            text += " or none" + (f" ({self.none_means})" if self.none_means else "")
        return text

    def describe(self) -> str:
        return f"{self.domain()}; default {_show(self.default)}" + (f"; {self.help}" if self.help else "")

    # -- validation ------------------------------------------------------------------------------------------------
    def coerce(self, value: Any) -> Any:
        """The typed value, or ValueError with a short reason."""
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            if self.nullable:
                return None
            raise ValueError("none is not allowed")
        if self.choices:
            return self._choice(value)
        if self.type == "bool":
            return _bool(value)
        if self.type == "int":
            v = _number(value)
            if isinstance(v, float):
                if not v.is_integer():
                    raise ValueError("not an integer")
                v = int(v)
            self._bounds(v)
            return v
        if self.type == "float":
            v = float(_number(value))
            if not math.isfinite(v):
                raise ValueError("not a finite number")
            self._bounds(v)
            return v
        if self.type == "list":
            if isinstance(value, str):
                parts = [p.strip() for p in value.split(",") if p.strip()]
            elif isinstance(value, (list, tuple)):
                parts = [str(p).strip() for p in value if str(p).strip()]
            else:
                raise ValueError("not a list of names")
            if not parts:
                raise ValueError("empty list")
            return tuple(parts)
        if not isinstance(value, str):
            raise ValueError("not text")
        return value

    def _choice(self, value: Any) -> Any:
        for c in self.choices:
            if isinstance(c, bool) or isinstance(value, bool):
                if isinstance(c, bool):
                    try:
                        if _bool(value) is c:
                            return c
                    except ValueError:
                        pass
                continue
            if isinstance(c, (int, float)):
                try:
                    if float(_number(value)) == float(c):
                        return c
                except ValueError:
                    pass
                continue
            if str(value).strip().lower() == str(c).lower():
                return c
        raise ValueError("not one of the choices")

    def _bounds(self, v: float) -> None:
        if self.min is not None and (v < self.min or (self.min_open and v == self.min)):
            raise ValueError("out of range")
        if self.max is not None and (v > self.max or (self.max_open and v == self.max)):
            raise ValueError("out of range")


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("not true/false")


def _number(value: Any):
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, (int, float)):
        return value
    s = str(value).strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        raise ValueError("not a number") from None


def defaults(spec: Mapping[str, Option]) -> dict:
    return {k: o.default for k, o in spec.items()}


def validate_options(model: str, spec: Mapping[str, Option], given: Mapping[str, Any] | None) -> dict:
    """All options of a model, typed: defaults overridden by ``given``. One UsageError (exit 2) names every unknown
    option with the valid names, or the first bad value with its valid values."""
    given = dict(given or {})
    unknown = [k for k in given if k not in spec]
    if unknown:
        if spec:
            valid = "; ".join(f"{k} ({o.domain()})" for k, o in spec.items())
            raise UsageError(f"model {model}: unknown option {', '.join(unknown)}; valid options: {valid}")
        raise UsageError(f"model {model}: unknown option {', '.join(unknown)}; this model takes no options")
    out = defaults(spec)
    for k, v in given.items():
        opt = spec[k]
        try:
            out[k] = opt.coerce(v)
        except ValueError as e:
            raise UsageError(f"model {model}: --option {k}={_show(v)}: {e}; valid: {opt.domain()}") from None
    return out


def parse_cli_options(items: list[str] | None) -> dict:
    """``--option KEY=VALUE`` (repeatable) -> {KEY: "VALUE"} (strings: each Option coerces its own type)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--option {item!r}: expected KEY=VALUE (see `mattecli models info MODEL`)")
        k, v = item.split("=", 1)
        if not k.strip():
            raise UsageError(f"--option {item!r}: expected KEY=VALUE (see `mattecli models info MODEL`)")
        out[k.strip()] = v.strip()
    return out
