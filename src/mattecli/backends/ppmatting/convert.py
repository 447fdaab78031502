"""PP-Matting checkpoints: Paddle ``.pdparams`` (Paddle-native names are the official layout).

Official -> ours: BatchNorm statistics ``_mean``/``_variance`` become ``running_mean``/``running_var`` and a zero
``num_batches_tracked`` is added; every other name is identical. Every key is consumed and shape-checked. The
authors' file wrapping is ``paddle.save(state_dict)``: a pickle of ``{name: (name, ndarray)}`` (see ``pdparams.py``).
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, to_tensor_dict
from .pdparams import read_pdparams, write_pdparams


def official_name(ours_key: str) -> str:
    if ours_key.endswith(".running_mean"):
        return ours_key[: -len("running_mean")] + "_mean"
    if ours_key.endswith(".running_var"):
        return ours_key[: -len("running_var")] + "_variance"
    return ours_key


@lru_cache(maxsize=None)
def _template() -> dict:
    """{our key: (shape, dtype)}, built once per process."""
    from .net import PPMatting

    return {k: (tuple(v.shape), v.dtype) for k, v in PPMatting().state_dict().items()}


class PPMattingConverter(Converter):
    def read(self, path, spec) -> dict:
        p = os.fspath(path)
        with open(p, "rb") as f:
            head = f.read(2)
        if head[:1] != b"\x80":
            raise ConverterError(f"{p}: not a Paddle .pdparams pickle (expected the file from the PaddleSeg model "
                                 "zoo)", path=p)
        return to_tensor_dict(read_pdparams(p))

    def to_ours(self, official, spec) -> dict:
        import torch

        taker = KeyTaker(official, "PP-Matting checkpoint")
        ours = {}
        for key, (shape, dtype) in _template().items():
            if key.endswith("num_batches_tracked"):
                ours[key] = torch.zeros((), dtype=torch.long)
                continue
            v = taker.take(official_name(key))
            if not isinstance(v, torch.Tensor):
                v = torch.from_numpy(np.asarray(v))
            if tuple(v.shape) != shape:
                raise ConverterError(f"PP-Matting checkpoint: {official_name(key)} has shape {tuple(v.shape)}, "
                                     f"expected {shape}")
            ours[key] = v.to(dtype)
        taker.finish()
        return ours

    def to_official(self, ours, spec) -> dict:
        return {official_name(k): v for k, v in ours.items() if not k.endswith("num_batches_tracked")}

    def write(self, ours, path, spec) -> None:
        write_pdparams({k: v.detach().cpu().numpy() for k, v in self.to_official(ours, spec).items()}, path)

    def convert_file(self, path, spec):
        return self.to_ours(self.read(path, spec), spec), {"source_format": "pdparams"}
