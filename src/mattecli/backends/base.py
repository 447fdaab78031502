"""Backend contract shared by every model family.

``Backend.predict(image, trimap=None, background=None)`` takes one image (HxWx3 uint8 RGB, or float32 in [0,1]) and
returns a :class:`MatteResult` at exactly the input size. By default it reproduces the authors' own inference
pipeline. ``predict_batch`` is the batched, device-resident form used by the video pipeline.

``TorchBackend`` handles everything common to the paper models: option parsing (official option names),
device/precision, reading weights (cache, a file in the official format or our converted format, or a mapping in the
official key layout), strict conversion and loading.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ConverterError, InputError, MissingInput, UsageError
from ..registry import ModelEntry, Weights


@dataclass
class MatteResult:
    alpha: np.ndarray                      # float32 HxW in [0,1]
    foreground: np.ndarray | None = None   # float32 HxWx3 in [0,1]
    background: np.ndarray | None = None   # float32 HxWx3 in [0,1]
    extras: dict = field(default_factory=dict)  # model-specific (error map, segmentation, logits...)


def as_float_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """HxWx3 uint8/uint16/float -> float32 [0,1]."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{what} must be HxWx3 RGB, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def as_uint8_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{what} must be HxWx3 RGB, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    return (np.clip(a.astype(np.float32), 0, 1) * 255.0 + 0.5).astype(np.uint8)


def as_float_trimap(trimap: np.ndarray) -> np.ndarray:
    """HxW uint8 0/128/255 or float {0,.5,1} -> float32 {0, .5, 1}."""
    t = np.asarray(trimap)
    if t.ndim == 3:
        t = t[..., 0]
    if t.dtype == np.uint8:
        t = t.astype(np.float32) / 255.0
    t = t.astype(np.float32)
    out = np.full(t.shape, 0.5, np.float32)
    out[t <= 0.1] = 0.0
    out[t >= 0.9] = 1.0
    return out


def as_uint8_trimap(trimap: np.ndarray) -> np.ndarray:
    """HxW uint8 0/128/255 (uint8 input kept as is) or float {0,.5,1} -> uint8 0/128/255."""
    t = np.asarray(trimap)
    if t.ndim == 3:
        t = t[..., 0]
    if t.dtype == np.uint8:
        return t
    f = as_float_trimap(t)
    out = np.full(f.shape, 128, np.uint8)
    out[f == 0] = 0
    out[f == 1] = 255
    return out


class Backend:
    """One loaded model. Subclasses implement ``predict``."""

    entry: ModelEntry
    weights_set: Weights | None = None
    weights_sha256: str | None = None   # of the file the weights came from (for run reports)
    weights_path: str | None = None

    def __init__(self, entry: ModelEntry, weights_set: Weights | None = None, **options: Any):
        self.entry = entry
        self.weights_set = weights_set
        self.options = self.parse_options(options)

    # -- options ---------------------------------------------------------------------------------------------
    def parse_options(self, options: Mapping[str, Any]) -> dict:
        allowed = dict(self.entry.options)
        unknown = [k for k in options if k not in allowed]
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise UsageError(f"model {self.entry.name}: unknown option(s) {', '.join(unknown)}; known: {known}")
        allowed.update(options)
        return allowed

    @staticmethod
    def check_trimap_size(image_shape, trimap_shape) -> None:
        """One message for every trimap-based family: a trimap must be made for this image."""
        if tuple(trimap_shape[:2]) != tuple(image_shape[:2]):
            raise InputError(f"trimap size {trimap_shape[1]}x{trimap_shape[0]} differs from image size "
                             f"{image_shape[1]}x{image_shape[0]}; pass the trimap made for this image")

    def uint8_image_and_trimap(self, image, trimap):
        """Check the inputs the entry requires, then HxWx3 uint8 image + HxW uint8 0/128/255 trimap of equal size."""
        self.check_inputs(trimap, None)
        img = as_uint8_image(image)
        tri = as_uint8_trimap(trimap)
        self.check_trimap_size(img.shape, tri.shape)
        return img, tri

    def check_inputs(self, trimap, background) -> None:
        if "trimap" in self.entry.requires and trimap is None:
            raise MissingInput(f"model {self.entry.name} needs a trimap: pass --trimap FILE|DIR (or make one with `mattecli trimap`)")
        if "background" in self.entry.requires and background is None:
            raise MissingInput(f"model {self.entry.name} needs a clean background plate: pass --bg FILE|DIR")

    # -- inference -------------------------------------------------------------------------------------------
    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None,
                background: np.ndarray | None = None) -> MatteResult:
        raise NotImplementedError

    def predict_batch(self, images, trimaps=None, backgrounds=None) -> dict:
        """Batched form used by the video pipeline.

        images: torch tensor [B,3,H,W] float in [0,1] (any device); trimaps [B,1,H,W] in {0,.5,1}; backgrounds like
        images. Returns {"alpha": [B,1,H,W], "foreground": [B,3,H,W] or absent} as torch tensors on the input device.
        Default: one ``predict`` per frame (temporal families override this to carry state).
        """
        import torch

        alphas, fgs = [], []
        for i in range(images.shape[0]):
            img = images[i].permute(1, 2, 0).float().cpu().numpy()
            tri = None if trimaps is None else trimaps[i, 0].float().cpu().numpy()
            bg = None if backgrounds is None else backgrounds[i].permute(1, 2, 0).float().cpu().numpy()
            r = self.predict(img, trimap=tri, background=bg)
            alphas.append(torch.from_numpy(np.ascontiguousarray(r.alpha))[None])
            if r.foreground is not None:
                fgs.append(torch.from_numpy(np.ascontiguousarray(r.foreground)).permute(2, 0, 1))
        out = {"alpha": torch.stack(alphas).to(images.device)}
        if fgs and len(fgs) == len(alphas):
            out["foreground"] = torch.stack(fgs).to(images.device)
        return out

    def reset(self) -> None:
        """Clear temporal state (recurrent models). No-op for image models."""


class TorchBackend(Backend):
    """Common machinery for the neural families.

    Subclasses implement ``build_net()`` -> nn.Module and ``convert(official) -> our state dict`` (usually by calling
    their ``convert.to_ours``); they may override ``read_checkpoint(path)`` (official file -> official-layout mapping)
    and ``after_load()`` (load-time transforms such as FBA's weight standardisation).
    """

    def __init__(self, entry: ModelEntry, weights_set: Weights | None = None, weights: Any = None,
                 device: str | None = "cpu", precision: str | None = "fp32", **options: Any):
        super().__init__(entry, weights_set, **options)
        from ..runtime import pick_device, pick_dtype

        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device, entry.precisions)
        self.net = self.build_net()
        self.load_weights(weights)
        self.net.eval()
        self.net.to(self.device)
        if self.dtype != self.net_dtype_default():
            self.net.to(self.dtype)

    @staticmethod
    def net_dtype_default():
        import torch

        return torch.float32

    # -- to implement -----------------------------------------------------------------------------------------
    def build_net(self):
        raise NotImplementedError

    def convert(self, official: dict) -> dict:
        """Official-layout mapping -> our state dict (every key consumed, leftovers raise)."""
        raise NotImplementedError

    def read_checkpoint(self, path: str) -> dict:
        """Official checkpoint file -> official-layout mapping. Default: torch state dict, any common wrapping."""
        from .checkpoint import safe_torch_load, strip_prefix, unwrap

        return strip_prefix(unwrap(safe_torch_load(path)))

    def after_load(self) -> None:
        pass

    # -- loading ----------------------------------------------------------------------------------------------
    def load_weights(self, weights: Any) -> None:
        from .checkpoint import check_state_dict, is_ours, safe_torch_load, to_tensor_dict

        if weights is None:
            from ..weights import require

            weights = require(self.entry, self.weights_set)
        if isinstance(weights, Mapping):
            ours = self.convert(to_tensor_dict(weights))
            self.weights_path, self.weights_sha256 = None, None
        else:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise InputError(f"{path}: weights file not found; pass an existing file to --weights", path=path)
            self.weights_path = path
            from ..weights import file_sha256

            self.weights_sha256 = file_sha256(path)
            ours = None
            if path.endswith((".pt", ".pth", ".ckpt", ".tar", ".pth.tar")):
                try:
                    obj = safe_torch_load(path)
                except ConverterError:
                    obj = None
                if is_ours(obj):
                    meta = obj["mattecli"]
                    if meta.get("family") not in (None, self.entry.family):
                        raise ConverterError(
                            f"{path}: converted weights are for family {meta.get('family')}, not {self.entry.family}",
                            path=path)
                    ours = to_tensor_dict(obj["state_dict"])
            if ours is None:
                try:
                    official = self.read_checkpoint(path)
                except ConverterError as e:
                    raise ConverterError(f"{path}: {e}" if path not in str(e) else str(e), path=path) from None
                try:
                    ours = self.convert(official)
                except ConverterError as e:
                    raise ConverterError(f"{path}: {e}", path=path) from None
        check_state_dict(self.net, ours, what=f"{self.entry.name} weights")
        self.net.load_state_dict(ours, strict=True)
        self.after_load()
