"""Classical matting backend: closed-form through our JIT-free solver, the rest through pymatting.

The image is float64 ``uint8 / 255`` (as ``pymatting.load_image`` does) and the trimap float64 {0, 0.5, 1}. For
pymatting's methods, options left at their defaults are not passed at all, so the result is bit-identical to calling
pymatting directly with its defaults, except at trimap-known pixels, which are exactly 0 / 1 (knn, lkm, rw and lbdm
hold them by a soft penalty in pymatting, about 1e-3 off). pymatting compiles all its numba kernels when it is first imported (about a
minute on a small machine, once: numba caches them); a line says so before it starts.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ..base import Backend, Prediction

_FUNCS = {
    "closed-form": "estimate_alpha_cf",
    "knn": "estimate_alpha_knn",
    "lkm": "estimate_alpha_lkm",
    "rw": "estimate_alpha_rw",
    "sm": "estimate_alpha_sm",
    "lbdm": "estimate_alpha_lbdm",
}
_CG_KEYS = ("rtol", "maxiter")
_OURS = ("solver",)
_pymatting = None


def pymatting_module():
    """pymatting, imported once; the first import in a fresh environment compiles its kernels (said on stderr)."""
    global _pymatting
    if _pymatting is None:
        import importlib.util
        import os
        import sys

        spec = importlib.util.find_spec("pymatting")
        where = os.environ.get("NUMBA_CACHE_DIR") or (os.path.dirname(spec.origin) if spec and spec.origin else "")
        cached = bool(where) and any(f.endswith(".nbi") for _, _, files in os.walk(where) for f in files)
        if not cached:
            print("mattecli: pymatting compiles its kernels on first use (about a minute, once)", file=sys.stderr,
                  flush=True)
        import pymatting

        _pymatting = pymatting
    return _pymatting


class ClassicalBackend(Backend):
    """pymatting ``estimate_alpha_<method>`` behind the common contract (one image at a time, on the CPU)."""

    weights_sha256 = None
    weights_path = None
    items_at_once = False    # one image after the other: the memory guard checks the largest item, not the sum

    def __init__(self, entry, weights_set=None, device: str | None = None, precision: str | None = None,
                 **options: Any):
        super().__init__(entry, weights_set, **options)
        self.device = "cpu"
        self.func_name = _FUNCS[entry.name]

    def _kwargs(self) -> dict:
        defaults = self.entry.option_defaults()
        changed = {k: v for k, v in self.options.items() if v != defaults.get(k, object()) and k not in _OURS}
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

    def alpha(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """HxWx3 float64 image in [0,1] and HxW float64 trimap {0,.5,1} -> HxW float32 alpha."""
        if not (trimap == 0).any() or not (trimap == 1).any():
            which = "background (0)" if not (trimap == 0).any() else "foreground (255)"
            raise InputError(f"trimap has no {which} pixels; {self.entry.name} needs both known regions "
                             "(a trimap-free model needs none: see `mattecli models list`)")
        r = self.options.get("radius")
        if r is not None and min(trimap.shape[:2]) < 2 * r + 1:
            h, w = trimap.shape[:2]
            raise InputError(f"image is {w}x{h}, too small for {self.entry.name} with radius {r} (its windows need "
                             f"{2 * r + 1}x{2 * r + 1}); use --option radius=N with a smaller N, or another model")
        if self.entry.name == "closed-form" and self.options.get("solver") == "direct":
            from .closed_form import estimate_alpha

            a = estimate_alpha(image, trimap, self.options["epsilon"], self.options["radius"])
            return a.astype(np.float32)
        fn = getattr(pymatting_module(), self.func_name)
        alpha = np.clip(fn(image, trimap, **self._kwargs()), 0.0, 1.0).astype(np.float32)
        # knn, lkm, rw and lbdm hold the known pixels by a soft penalty (about 1e-3 off): the trimap decides there
        alpha[trimap == 0] = 0.0
        alpha[trimap == 1] = 1.0
        return alpha

    def predict_batch(self, batch) -> Prediction:
        import torch

        self.check_inputs(batch.trimap, batch.background)
        batch = batch.to(torch.device("cpu"))
        images = batch.float_image(torch.float64).permute(0, 2, 3, 1).numpy()
        trimaps = batch.trimap_levels(torch.float64)[:, 0].numpy()
        alphas = [self.alpha(np.ascontiguousarray(images[i]), trimaps[i]) for i in range(batch.n)]
        return Prediction(alpha=torch.from_numpy(np.stack(alphas))[:, None])
