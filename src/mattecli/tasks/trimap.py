"""``trimap``'s work for one input: a trimap (0 / 128 / 255, 8-bit grey PNG) from a mask, an alpha or a model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("mask", "alpha", "segmenter")
KERNELS = ("ellipse", "rect", "cross")
META = {"mattecli-trimap": "0=background,128=unknown,255=foreground"}


@dataclass
class TrimapTask:
    """Everything ``trimap`` needs per input, without the loaded model (picklable).

    ``kind``: ``mask`` / ``alpha`` (the partner file of that kind, or the input itself) or ``segmenter`` (the model
    ``model`` on the input image: a segmenter's class map, or a trimap-free matting model's thresholded alpha)."""

    kind: str
    band: str = "10"
    kernel: str = "ellipse"
    threshold: float = 0.5
    lo: float = 0.06
    hi: float = 0.96
    model: str | None = None
    classes: list = field(default_factory=list)   # segmenter class indices counted as foreground
    options: dict = field(default_factory=dict)
    weights: str | None = None
    device: str = "auto"
    runtime: str | None = None                    # --runtime of the segmenter (None: $MATTECLI_RUNTIME, else auto)
    meta: dict = field(default_factory=dict)
    _backend: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state

    def load(self):
        """The model (``--segmenter``), loaded once per process; None for masks and alphas."""
        if self._backend is None and self.kind == "segmenter":
            import mattecli

            self._backend = mattecli.load_model(self.model, weights=self.weights, device=self.device,
                                                runtime=self.runtime, **self.options)
        return self._backend

    # -- one input ---------------------------------------------------------------------------------------------
    def _from_model(self, it):
        from ..errors import InputError
        from ..imaging import trimap as T
        from ..imaging.io import read_rgb

        backend = self.load()
        if not it.is_stdin:
            backend.check_file(it.path)
        image = read_rgb(it.path)
        H, W = image.shape[:2]
        b = T.band_pixels(self.band, (H, W))
        T.check_band(b, (H, W))               # before the segmenter runs
        backend.reset()
        r = backend.predict(image)
        if backend.entry.kind != "segmenter":
            return T.trimap_from_alpha(r.alpha, b, self.kernel, self.lo, self.hi)
        labels = r.extras.get("labels") if r.extras else None
        if labels is None:
            raise InputError(f"{it.path}: segmenter {backend.entry.name} returned no class map")
        labels = np.asarray(labels)
        if labels.shape != (H, W):
            import cv2

            labels = cv2.resize(labels.astype(np.int32), (W, H), interpolation=cv2.INTER_NEAREST)
        return T.trimap_from_labels(labels, self.classes, b, self.kernel)

    def _from_file(self, it):
        from ..errors import UsageError
        from ..imaging import trimap as T
        from ..imaging.io import image_size, read_grey, read_rgb

        src = it.partners[self.kind]
        a = read_grey(src)
        if str(src) != str(it.path):          # a partner of an image: brought to the image's size
            size = None if it.is_stdin else image_size(it.path)
            if size is None:
                H, W = read_rgb(it.path).shape[:2]   # stdin, or raises the decoding error for the image
            else:
                W, H = size
            a = T.resize_to_image(a, (H, W), src, it.path)
        H, W = a.shape
        b = T.band_pixels(self.band, (H, W))
        if self.kind == "mask":
            if b < 1:
                raise UsageError("--band must be at least 1 pixel with --mask (a mask has no soft pixels)")
            return T.trimap_from_mask(a, b, self.kernel, self.threshold)
        return T.trimap_from_alpha(a, b, self.kernel, self.lo, self.hi)

    def __call__(self, it) -> dict:
        from ..errors import InputError
        from ..imaging.io import write_image

        t = self._from_model(it) if self.kind == "segmenter" else self._from_file(it)
        if not np.any(t == 128):
            raise InputError(f"{it.path}: the trimap would have no unknown pixels (the mask/alpha is uniform or has "
                             "no soft pixels); widen --band")
        out = it.info["outputs"][0]
        write_image(out, t, metadata={**self.meta, **META}, what="trimap")
        H, W = t.shape[:2]
        return {"outputs": [p for p in [out] if str(p) != "-"], "width": W, "height": H}
