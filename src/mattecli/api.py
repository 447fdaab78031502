"""The stable Python API: ``load_model(name, weights=..., **official_options).predict(...)``."""
from __future__ import annotations

import importlib
from typing import Any

from .errors import MatteError
from .registry import resolve


def adapter_class(entry):
    if not entry.implemented or not entry.adapter:
        raise MatteError(f"model {entry.name} is registered but not implemented yet")
    mod_name, _, cls_name = entry.adapter.partition(":")
    mod = importlib.import_module(mod_name)
    return getattr(mod, cls_name)


def load_model(name: str, weights: Any = None, device: str | None = "cpu", precision: str | None = "fp32",
               **options: Any):
    """Load a registry model.

    name: ``"fba"``, ``"bgmv2.mobilenetv2"``, ``"closed-form"`` ...
    weights: None (use the cache), a file (official checkpoint or our converted file), or a mapping in the OFFICIAL
    key layout. options: the model's official option names (see ``mattecli models info NAME``).
    """
    entry, wset = resolve(name)
    cls = adapter_class(entry)
    if entry.weights:
        return cls(entry, wset, weights=weights, device=device, precision=precision, **options)
    if weights is not None:
        raise MatteError(f"model {entry.name} takes no weights")
    return cls(entry, wset, **options)
