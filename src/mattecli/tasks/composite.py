"""``composite``'s work for one input: read the image, its alpha (and foreground), write a composite over a colour,
an image or the input blurred, and/or an RGBA cut-out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_TYPES = ("composite", "rgba")


def parse_types(text: str) -> list[str]:
    from ..errors import UsageError

    alias = {"comp": "composite", "cutout": "rgba"}
    types = [alias.get(t.strip().lower(), t.strip().lower()) for t in text.replace("+", ",").split(",") if t.strip()]
    bad = [t for t in types if t not in OUTPUT_TYPES]
    if bad or not types:
        raise UsageError(f"--output-type {text!r}: use {' or '.join(OUTPUT_TYPES)} (or both, separated by a comma)")
    return list(dict.fromkeys(types))


@dataclass
class CompositeTask:
    """Everything ``composite`` needs per input (picklable; the background image is cached per process).

    ``background``: ``colour`` (``colour`` set), ``image`` (one file, ``image``), ``paired`` (the item's ``bg``
    partner) or ``input`` (the input itself, with ``blur``)."""

    types: list
    background: str = "colour"
    colour: Any = None                 # float32 RGB in [0, 1]
    image: str | None = None
    blur: float | None = None          # Gaussian sigma (pixels) applied to the background
    fit: str = "cover"
    pad: Any = None                    # --fit contain: the padding colour
    estimate: str = "ml"
    premultiplied: bool = False
    bits: int = 8
    meta: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def _picture(self, src) -> np.ndarray:
        from ..imaging.arrays import to_float
        from ..imaging.io import read_rgb

        key = str(src)
        if key not in self._cache:
            self._cache.clear()                 # one background image at a time (a folder pairs one per input)
            self._cache[key] = to_float(read_rgb(src))
        return self._cache[key]

    def backdrop(self, it, image: np.ndarray) -> np.ndarray:
        """The background of ``it``'s composite, at the image's size."""
        from ..imaging import composite as C
        from ..imaging.arrays import to_float

        H, W = image.shape[:2]
        if self.background == "colour":
            return np.broadcast_to(np.asarray(self.colour, np.float32), (H, W, 3))
        if self.background == "input":
            bg = to_float(image)
        else:
            src = self.image if self.background == "image" else it.partners["bg"]
            bg = C.fit_background(self._picture(Path(src)), (H, W), self.fit, fill=self.pad)
        return C.blurred(bg, float(self.blur)) if self.blur else bg

    def __call__(self, it) -> dict:
        from ..errors import InputError
        from ..imaging import composite as C
        from ..imaging.arrays import to_float
        from ..imaging.foreground import estimate_foreground
        from ..imaging.io import read_grey, read_rgb, write_image

        image = read_rgb(it.path)
        H, W = image.shape[:2]
        p = it.partners["alpha"]
        a = read_grey(p)
        if a.shape != (H, W):
            raise InputError(f"{p}: alpha is {a.shape[1]}x{a.shape[0]} but the image {it.path} is {W}x{H}", path=p)
        if "foreground" in it.partners:
            p = it.partners["foreground"]
            fg = to_float(read_rgb(p))
            if fg.shape[:2] != (H, W):
                raise InputError(f"{p}: foreground is {fg.shape[1]}x{fg.shape[0]} but the image {it.path} is "
                                 f"{W}x{H}", path=p)
            fg_src = "file"
        else:
            fg, fg_src = estimate_foreground(image, a, self.estimate), self.estimate
        meta = {**self.meta, "foreground": fg_src}
        outs = it.info["outputs"]
        for t, path in zip(self.types, outs):
            if t == "rgba":
                mode = "premultiplied" if self.premultiplied else "straight"
                write_image(path, C.rgba(fg, a, self.premultiplied), bits=self.bits,
                            metadata={**meta, "alpha-mode": mode}, what="rgba")
            else:
                write_image(path, C.blend(fg, a, self.backdrop(it, image)), bits=self.bits, metadata=meta,
                            what="composite")
        return {"outputs": [o for o in outs if str(o) != "-"], "width": W, "height": H}
