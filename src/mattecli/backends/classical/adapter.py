"""Classical matting backend: a thin, exact wrapper around pymatting's ``estimate_alpha_*``.

The image is given to pymatting as float64 ``uint8 / 255`` (as ``pymatting.load_image`` does) and the trimap as
float64 {0, 0.5, 1}; options left at their defaults are not passed at all, so the result is bit-identical to calling
pymatting directly with its defaults.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ..base import Backend, MatteResult, as_float_trimap

_FUNCS = {
    "closed-form": "estimate_alpha_cf",
    "knn": "estimate_alpha_knn",
    "lkm": "estimate_alpha_lkm",
    "rw": "estimate_alpha_rw",
    "sm": "estimate_alpha_sm",
    "lbdm": "estimate_alpha_lbdm",
}
_CG_KEYS = ("rtol", "maxiter")


def image_for_pymatting(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"image must be HxWx3 RGB, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


class ClassicalBackend(Backend):
    """pymatting ``estimate_alpha_<method>`` behind the common ``predict`` contract."""

    weights_sha256 = None
    weights_path = None

    def __init__(self, entry, weights_set=None, device: str | None = None, precision: str | None = None,
                 **options: Any):
        super().__init__(entry, weights_set, **options)
        self.device = "cpu"
        self.func_name = _FUNCS[entry.name]

    def _kwargs(self) -> dict:
        changed = {k: v for k, v in self.options.items() if v != self.entry.options.get(k, object())}
        if self.entry.name == "sm":
            return changed
        kw: dict = {}
        lap = {k: v for k, v in changed.items() if k not in _CG_KEYS}
        cg = {k: v for k, v in changed.items() if k in _CG_KEYS}
        if lap:
            kw["laplacian_kwargs"] = lap
        if cg:
            kw["cg_kwargs"] = cg
        return kw

    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None,
                background: np.ndarray | None = None) -> MatteResult:
        import pymatting

        self.check_inputs(trimap, background)
        img = image_for_pymatting(image)
        tri = as_float_trimap(trimap).astype(np.float64)
        if tri.shape != img.shape[:2]:
            raise InputError(f"trimap is {tri.shape[1]}x{tri.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}")
        if not (tri == 0).any() or not (tri == 1).any():
            which = "background (0)" if not (tri == 0).any() else "foreground (255)"
            raise InputError(f"trimap has no {which} pixels; {self.entry.name} needs both known regions "
                             "(a trimap-free model needs none: see `mattecli models list`)")
        fn = getattr(pymatting, self.func_name)
        alpha = fn(img, tri, **self._kwargs())
        return MatteResult(alpha=np.clip(alpha, 0.0, 1.0).astype(np.float32))
