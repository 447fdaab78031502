"""mattecli: batch alpha matting from the command line.

Public API (importing this package does not import torch)::

    import mattecli
    m = mattecli.load_model("fba", weights="FBA.pth")
    r = m.predict(image, trimap=trimap)   # r.alpha, r.foreground
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "list_models", "MatteResult"]


def load_model(name, weights=None, device="cpu", precision="fp32", **options):
    from .api import load_model as _load

    return _load(name, weights=weights, device=device, precision=precision, **options)


def list_models(requires=None, kind=None):
    from .registry import list_models as _list

    return _list(requires=requires, kind=kind)


def __getattr__(name):
    if name == "MatteResult":
        from .backends.base import MatteResult

        return MatteResult
    raise AttributeError(name)
