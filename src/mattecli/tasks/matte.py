"""``matte``'s work for one input: read it (and its trimap / plate), predict, estimate colours, write the outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_TYPES = ("alpha", "foreground", "rgba", "composite")
ESTIMATES = ("auto", "model", "ml", "cf", "none")


def parse_types(text: str) -> list[str]:
    from ..errors import UsageError

    types = [t.strip().lower() for t in text.replace("+", ",").split(",") if t.strip()]
    alias = {"fg": "foreground", "fgr": "foreground", "pha": "alpha", "matte": "alpha", "comp": "composite",
             "cutout": "rgba"}
    types = [alias.get(t, t) for t in types]
    bad = [t for t in types if t not in OUTPUT_TYPES]
    if bad or not types:
        raise UsageError(f"--output-type {text!r}: use one or more of {', '.join(OUTPUT_TYPES)} separated by commas")
    return list(dict.fromkeys(types))


@dataclass
class MatteTask:
    """Everything ``matte`` needs per input, without the loaded model (picklable)."""

    model: str
    types: list
    options: dict = field(default_factory=dict)
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    estimate: str = "auto"
    premultiplied: bool = False
    composite_bg: str = "white"
    bits: int = 8
    tta: bool = False                  # generic flip TTA (models with their own TTA get the `tta` option instead)
    max_side: int | None = None        # run on inputs downscaled to this long side (memory), alpha scaled back
    runtime: str | None = None         # --runtime (None: $MATTECLI_RUNTIME, else auto)
    meta: dict = field(default_factory=dict)
    _backend: Any = field(default=None, init=False, repr=False, compare=False)
    _comp: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = state["_comp"] = None
        return state

    # -- loading (once per process) ----------------------------------------------------------------------------
    def load(self):
        if self._backend is None:
            import mattecli

            self._backend = mattecli.load_model(self.model, weights=self.weights, device=self.device,
                                                precision=self.precision, max_side=self.max_side,
                                                runtime=self.runtime, **self.options)
        return self._backend

    def composite_background(self):
        """(colour, image): one of them, from ``--composite-bg`` (a colour, or an image file)."""
        if self._comp is None:
            from ..imaging.colour import colour_or_none

            colour = colour_or_none(self.composite_bg)
            if colour is not None:
                self._comp = (colour, None)
            elif Path(self.composite_bg).is_file():
                from ..imaging.io import read_rgb, to_float

                self._comp = (None, to_float(read_rgb(self.composite_bg)))
            else:
                from ..imaging.colour import neither_colour_nor_file

                raise neither_colour_nor_file(self.composite_bg)
        return self._comp

    # -- one input ---------------------------------------------------------------------------------------------
    def predict(self, image, tri, plate):
        backend = self.load()
        backend.reset()
        r = backend.predict(image, trimap=tri, background=plate)
        if not self.tta:
            return r

        def flip(a):
            return None if a is None else np.ascontiguousarray(a[:, ::-1])

        backend.reset()
        r2 = backend.predict(flip(image), trimap=flip(tri), background=flip(plate))
        r.alpha = ((r.alpha + r2.alpha[:, ::-1]) * 0.5).astype(np.float32)
        if r.foreground is not None and r2.foreground is not None:
            r.foreground = ((r.foreground + r2.foreground[:, ::-1]) * 0.5).astype(np.float32)
        return r

    def __call__(self, it) -> dict:
        from ..errors import InputError
        from ..imaging import composite as C
        from ..imaging.foreground import estimate_foreground
        from ..imaging.io import read_rgb, to_float, write_image
        from ..imaging.trimap import read_trimap

        backend = self.load()
        entry = backend.entry
        outs = it.info["outputs"]
        if not it.is_stdin:
            backend.check_file(it.path)        # the memory guard, from the image header, before any decode
        image = read_rgb(it.path)
        H, W = image.shape[:2]
        tri = plate = None
        if "trimap" in it.partners and ("trimap" in entry.requires or "trimap" in entry.optional):
            tri = read_trimap(it.partners["trimap"], (H, W), it.path)
        if "bg" in it.partners and ("background" in entry.requires or "background" in entry.optional):
            plate = read_rgb(it.partners["bg"])
            if plate.shape[:2] != (H, W):
                p = it.partners["bg"]
                raise InputError(f"{p}: background plate is {plate.shape[1]}x{plate.shape[0]} but the image "
                                 f"{it.path} is {W}x{H}; they must have the same size", path=p)
            if plate.dtype != image.dtype:
                plate, image = to_float(plate), to_float(image)
        r = self.predict(image, tri, plate)
        alpha = np.clip(np.asarray(r.alpha, np.float32), 0, 1)
        if alpha.shape != (H, W):
            raise InputError(f"{it.path}: model returned a {alpha.shape[1]}x{alpha.shape[0]} alpha for a "
                             f"{W}x{H} image")
        fg = fg_source = None
        if set(self.types) & {"foreground", "rgba", "composite"}:
            if self.estimate in ("auto", "model") and r.foreground is not None:
                fg, fg_source = np.clip(r.foreground, 0, 1).astype(np.float32), "model"
            elif self.estimate == "model":
                raise InputError(f"{it.path}: {entry.name} returned no foreground; use --estimate ml")
            else:
                method = "ml" if self.estimate == "auto" else self.estimate
                fg, fg_source = estimate_foreground(image, alpha, method), method
        meta = dict(self.meta)
        for t, path in zip(self.types, outs):
            if t == "alpha":
                write_image(path, alpha, bits=self.bits, metadata=meta, what="alpha")
            elif t == "foreground":
                write_image(path, fg, bits=self.bits, metadata={**meta, "foreground": fg_source}, what="foreground")
            elif t == "rgba":
                mode = "premultiplied" if self.premultiplied else "straight"
                write_image(path, C.rgba(fg, alpha, self.premultiplied), bits=self.bits,
                            metadata={**meta, "alpha-mode": mode, "foreground": fg_source}, what="rgba")
            elif t == "composite":
                colour, img = self.composite_background()
                bgimg = (C.fit_background(img, (H, W), "cover") if img is not None
                         else np.broadcast_to(colour, (H, W, 3)))
                write_image(path, C.blend(fg, alpha, bgimg), bits=self.bits, metadata=meta, what="composite")
        return {"outputs": [p for p in outs if str(p) != "-"], "width": W, "height": H}
