"""The model contract shared by every family.

One inference path. A :class:`Batch` holds the canonical inputs as tensors on one device::

    image       [B,3,H,W]  uint8 (8-bit sources) or float in [0,1] (16-bit / float sources)
    trimap      [B,1,H,W]  uint8 in {0, 128, 255} (quantised by imaging.trimap: <= 25 bg, >= 230 fg)
    background  [B,3,H,W]  like image (background-plate models)

``Backend.predict_batch(batch) -> Prediction`` (tensors on the model's device: alpha [B,1,H,W] float32 in [0,1],
foreground/background [B,3,H,W] or None, extras) is the only inference path. ``Backend.predict(image, trimap,
background) -> MatteResult`` on numpy arrays is a thin wrapper: numpy -> a batch of one -> ``predict_batch`` -> numpy.

A neural family implements :class:`TorchBackend` in ``backends/<family>/adapter.py`` and declares:

* ``converter``: a :class:`Converter` (official checkpoint <-> our state dict, one signature for every family);
* ``build_net(state_dict)``: the network (``state_dict`` is the converted weights, for families whose architecture
  follows the file, e.g. RVM's backbone);
* ``encode(batch) -> (inputs, ctx)``: the authors' pre-processing on tensors (resize/pad rules, normalisation,
  trimap encoding); ``forward(inputs)``: the network (default ``self.net(*inputs)``);
* ``decode(outputs, batch, ctx) -> Prediction``: the authors' post-processing (undo geometry, fusion, clamping).

Its options are typed data in the registry entry (:mod:`mattecli.options`), validated once before the model loads.
By default the pipeline is exactly the authors' own; extras (TTA, tiling, plate alignment) are opt-in options.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import ConverterError, InputError, MatteError, MissingInput, UsageError
from ..registry import ModelEntry, Weights


# ---------------------------------------------------------------------------------------------------- results
@dataclass
class MatteResult:
    """One image's result, numpy (``Backend.predict``)."""

    alpha: np.ndarray                      # float32 HxW in [0,1]
    foreground: np.ndarray | None = None   # float32 HxWx3 in [0,1]
    background: np.ndarray | None = None   # float32 HxWx3 in [0,1]
    extras: dict = field(default_factory=dict)  # model-specific (error map, segmentation, logits...)


@dataclass
class Prediction:
    """A batch's result, tensors on the model's device (``Backend.predict_batch``).

    extras: name -> a tensor whose first dimension is the batch, a list with one value per item, or one value for
    the whole batch."""

    alpha: Any                       # [B,1,H,W] float32 in [0,1]
    foreground: Any = None           # [B,3,H,W] float32 in [0,1]
    background: Any = None           # [B,3,H,W] float32 in [0,1]
    extras: dict = field(default_factory=dict)

    def result(self, i: int = 0) -> MatteResult:
        """Item ``i`` as numpy arrays (HxW alpha, HxWx3 colours)."""
        n = int(self.alpha.shape[0])

        def hwc(t):
            return None if t is None else np.ascontiguousarray(t[i].float().permute(1, 2, 0).cpu().numpy())

        extras = {}
        for k, v in self.extras.items():
            if hasattr(v, "detach") and v.dim() > 0 and v.shape[0] == n:
                a = v[i].detach().cpu().numpy()
                extras[k] = np.ascontiguousarray(a[0] if a.ndim == 3 and a.shape[0] == 1 else a)
            elif isinstance(v, list) and len(v) == n:
                extras[k] = v[i]
            else:
                extras[k] = v
        return MatteResult(alpha=np.ascontiguousarray(self.alpha[i, 0].float().cpu().numpy()),
                           foreground=hwc(self.foreground), background=hwc(self.background), extras=extras)

    @staticmethod
    def cat(parts: list["Prediction"]) -> "Prediction":
        """Concatenate the predictions of consecutive sub-batches."""
        import torch

        if len(parts) == 1:
            return parts[0]

        def cat(ts):
            return None if any(t is None for t in ts) else torch.cat(ts)

        extras: dict = {}
        for k in parts[0].extras:
            vals = [p.extras.get(k) for p in parts]
            if all(hasattr(v, "detach") for v in vals):
                extras[k] = torch.cat(vals)
            elif all(isinstance(v, list) for v in vals):
                extras[k] = [x for v in vals for x in v]
            else:
                extras[k] = vals[0]
        return Prediction(cat([p.alpha for p in parts]), cat([p.foreground for p in parts]),
                          cat([p.background for p in parts]), extras)


def check_finite(backend, pred: "Prediction") -> None:
    """A prediction with NaN or infinite alpha is an error (numeric overflow), never a silently black matte."""
    import torch

    alpha = getattr(pred, "alpha", None)
    if alpha is not None and torch.is_tensor(alpha) and not bool(torch.isfinite(alpha).all()):
        raise MatteError(f"model {backend.entry.name} produced non-finite alpha (NaN or inf: a numeric overflow in "
                         "the network); try --precision fp32, another model, or report the input")


# ---------------------------------------------------------------------------------------------------- inputs
@dataclass
class Batch:
    """Canonical model inputs (see the module docstring). All tensors share a device and a size."""

    image: Any
    trimap: Any = None
    background: Any = None

    def __post_init__(self):
        if self.image.dim() != 4 or self.image.shape[1] != 3:
            raise InputError(f"image batch must be [B,3,H,W], got {tuple(self.image.shape)}")
        size = tuple(self.image.shape[-2:])
        if self.trimap is not None and tuple(self.trimap.shape[-2:]) != size:
            h, w = self.trimap.shape[-2:]
            raise InputError(f"trimap size {w}x{h} differs from image size {size[1]}x{size[0]}; pass the trimap "
                             "made for this image")
        if self.background is not None and tuple(self.background.shape[-2:]) != size \
                and self.background.shape[0] not in (1, self.image.shape[0]):
            raise InputError("background batch does not match the image batch")

    @property
    def n(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    @property
    def device(self):
        return self.image.device

    # -- views in the forms the official pipelines start from -------------------------------------------------------
    def float_image(self, dtype=None):
        """[B,3,H,W] in [0,1]: ``uint8 / 255`` in ``dtype`` (float32 default), as ``ToTensor`` / ``img / 255.``."""
        from ..imaging.arrays import tensor_to_float

        return tensor_to_float(self.image, dtype)

    def float_background(self, dtype=None):
        from ..imaging.arrays import tensor_to_float

        return None if self.background is None else tensor_to_float(self.background, dtype)

    def uint8_image(self):
        """[B,3,H,W] uint8 (float sources rounded)."""
        import torch

        if self.image.dtype == torch.uint8:
            return self.image
        return (self.float_image(torch.float32) * 255.0 + 0.5).to(torch.uint8)

    def trimap_levels(self, dtype=None):
        """[B,1,H,W] float {0, 0.5, 1}."""
        import torch

        t = self.trimap
        out = torch.full(t.shape, 0.5, dtype=dtype or torch.float32, device=t.device)
        out[t == 0] = 0.0
        out[t == 255] = 1.0
        return out

    # -- moves and slices ----------------------------------------------------------------------------------------------
    def to(self, device, non_blocking: bool = False) -> "Batch":
        def mv(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        if self.image.device == device or str(self.image.device) == str(device):
            return self
        return Batch(mv(self.image), mv(self.trimap), mv(self.background))

    def slice(self, i: int, j: int) -> "Batch":
        bg = self.background
        if bg is not None and bg.shape[0] != 1:
            bg = bg[i:j]
        return Batch(self.image[i:j], None if self.trimap is None else self.trimap[i:j], bg)

    def map(self, fn) -> "Batch":
        """The same batch with ``fn`` applied to each [B,C,H,W] tensor (flips, crops)."""
        return Batch(fn(self.image), None if self.trimap is None else fn(self.trimap),
                     None if self.background is None else fn(self.background))

    @staticmethod
    def from_numpy(image: np.ndarray, trimap: np.ndarray | None = None,
                   background: np.ndarray | None = None) -> "Batch":
        """One HxWx3 image (uint8 / uint16 / float), an optional HxW trimap (0/128/255 or any grey levels, or float
        {0,.5,1}; quantised by the one trimap rule) and plate -> a batch of one on the CPU."""
        import torch

        from ..imaging.arrays import check_rgb
        from ..imaging.trimap import quantise_trimap

        def img_tensor(a, what):
            a = np.asarray(a)
            check_rgb(a, what)
            if a.dtype == np.uint16:
                a = a.astype(np.float32) / np.float32(65535.0)
            elif a.dtype != np.uint8 and a.dtype not in (np.float32, np.float64):
                a = a.astype(np.float32)
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]

        img = img_tensor(image, "image")
        tri = None
        if trimap is not None:
            t = np.asarray(trimap)
            if t.ndim == 3 and t.shape[2] == 1:
                t = t[..., 0]
            tri = torch.from_numpy(np.ascontiguousarray(quantise_trimap(t)))[None, None]
        bg = None if background is None else img_tensor(background, "background plate")
        return Batch(img, tri, bg)


# ---------------------------------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class ModelSpec:
    """What a converter and a network builder may need to know: the entry, the weight set and the typed options."""

    entry: ModelEntry
    weights_set: Weights | None
    options: Mapping[str, Any]

    @property
    def tag(self) -> str | None:
        return None if self.weights_set is None else self.weights_set.tag


class Converter:
    """Official checkpoint <-> our state dict; one object per family, one signature for all.

    * ``read(path, spec) -> mapping``: the official file -> a mapping in the OFFICIAL key layout (safe loaders only:
      ``torch.load(weights_only=True)``, restricted unpicklers, format parsers);
    * ``to_ours(official, spec) -> dict``: every key consumed (leftovers raise ConverterError);
    * ``to_official(ours, spec) -> dict``: the inverse (round trip);
    * ``write(ours, path, spec)``: our weights in the authors' own file wrapping (returns the file to load back
      where a multi-file format differs from ``path``);
    * ``convert_file(path, spec) -> (ours, meta)``: read + to_ours, what fetch/import store (meta: facts about the
      file worth keeping, e.g. RVM's variant).
    """

    def read(self, path: str | os.PathLike, spec: ModelSpec) -> dict:
        from .checkpoint import safe_torch_load, strip_prefix, unwrap

        return strip_prefix(unwrap(safe_torch_load(path)))

    def to_ours(self, official: Mapping, spec: ModelSpec) -> dict:
        raise NotImplementedError

    def to_official(self, ours: Mapping, spec: ModelSpec) -> dict:
        raise NotImplementedError

    def write(self, ours: Mapping, path: str | os.PathLike, spec: ModelSpec):
        import torch

        torch.save({k: v.detach().clone() for k, v in self.to_official(ours, spec).items()}, os.fspath(path))
        return path

    def convert_file(self, path: str | os.PathLike, spec: ModelSpec) -> tuple[dict, dict]:
        return self.to_ours(self.read(path, spec), spec), {}


class SameKeys(Converter):
    """For families whose module uses the official names: a strict key check, both ways (``module.`` prefixes from
    DataParallel re-saves tolerated). ``keys(spec)`` lists our keys."""

    def keys(self, spec: ModelSpec) -> list:
        raise NotImplementedError

    def to_ours(self, official, spec):
        from .checkpoint import strip_prefix, take_exactly

        return take_exactly(strip_prefix(dict(official)), self.keys(spec), what=f"{spec.entry.name} checkpoint")

    def to_official(self, ours, spec):
        return {k: ours[k] for k in self.keys(spec)}


# ---------------------------------------------------------------------------------------------------- backends
class Backend:
    """One loaded model. ``predict_batch`` is the inference path; ``predict`` wraps it for one numpy image.

    Every family's ``predict_batch`` runs behind :mod:`mattecli.memory`'s guard (wrapped once per class): the
    entry's estimated peak memory for the batch's size is checked against what is free before the model's work
    (``TooLarge``, one line). ``max_side`` (``load_model(..., max_side=N)``): a batch whose long side exceeds N is
    area-downscaled to it (the trimap so that its unknown band survives), predicted, and its alpha and colours
    scaled back (bilinear), the trimap's known regions exact."""

    entry: ModelEntry
    weights_set: Weights | None = None
    weights_sha256: str | None = None   # of the file the weights came from (for run reports)
    weights_path: str | None = None
    device: Any = "cpu"
    dtype: Any = None
    max_side: int | None = None
    items_at_once: bool = True          # False: a batch's items run one after the other (peak = the largest item)

    def __init__(self, entry: ModelEntry, weights_set: Weights | None = None, max_side: int | None = None,
                 runtime: str | None = None, **options: Any):
        from .runtimes import Choice, check_name

        self.runtime = Choice("torch", check_name(runtime), "no network to export")   # TorchBackend resolves it
        if self.runtime.requested not in ("auto", "torch") and not isinstance(self, TorchBackend):
            raise UsageError(f"model {entry.name} has no network to run on --runtime {self.runtime.requested} "
                             "(a numerical solver); use --runtime auto or torch")
        self.entry = entry
        self.weights_set = weights_set
        self.options = entry.validate_options(options)
        self.spec = ModelSpec(entry, weights_set, self.options)
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16):
            raise UsageError(f"--max-side {max_side!r}: give a whole number of pixels, at least 16")
        self.max_side = max_side

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        from ..memory import guarded

        if "predict_batch" in cls.__dict__:
            cls.predict_batch = guarded(cls.__dict__["predict_batch"])

    def check_file(self, path, size: tuple[int, int] | None = None) -> int | None:
        """Before decoding ``path``: refuse (``TooLarge``) if this model's run at its header's size would not fit
        (see :func:`mattecli.memory.check_file`)."""
        from ..memory import check_file

        return check_file(self, path, size)

    # -- inputs ------------------------------------------------------------------------------------------------
    def check_inputs(self, trimap, background) -> None:
        """The inputs the entry requires are present (the message names the CLI flag)."""
        if "trimap" in self.entry.requires and trimap is None:
            raise MissingInput(f"model {self.entry.name} needs a trimap: pass --trimap FILE|DIR (or make one with "
                               "`mattecli trimap`)")
        if "background" in self.entry.requires and background is None:
            raise MissingInput(f"model {self.entry.name} needs a clean background plate: pass --bg FILE|DIR")

    # -- inference -------------------------------------------------------------------------------------------------
    def predict(self, image: np.ndarray, trimap: np.ndarray | None = None,
                background: np.ndarray | None = None) -> MatteResult:
        """One HxWx3 image (uint8 RGB, uint16, or float in [0,1]) -> :class:`MatteResult` at the input size."""
        self.check_inputs(trimap, background)
        return self.predict_batch(Batch.from_numpy(image, trimap, background)).result(0)

    def predict_batch(self, batch: Batch) -> Prediction:
        raise NotImplementedError

    def reset(self) -> None:
        """Clear temporal state (recurrent models). No-op for image models."""

    def runtime_line(self) -> str:
        """``runtime: openvino 2025.1 for rvm (auto: measured fastest on cpu)``: the run's first line."""
        from .runtimes import describe

        return describe(self)


class TorchBackend(Backend):
    """A neural family: weights (cache, file or official mapping) -> ``build_net`` -> encode/forward/decode."""

    converter: Converter = Converter()

    def __init__(self, entry: ModelEntry, weights_set: Weights | None = None, weights: Any = None,
                 device: str | None = "cpu", precision: str | None = "fp32", **options: Any):
        super().__init__(entry, weights_set, **options)
        from ..runtime import pick_device, pick_dtype

        self.device = pick_device(device)
        self.dtype = pick_dtype(precision, self.device, entry.precisions)
        ours = self.load_state_dict(weights)
        self.net = self.build_net(ours)
        from .checkpoint import check_state_dict

        check_state_dict(self.net, ours, what=f"{self.entry.name} weights")
        self.net.load_state_dict(ours, strict=True)
        self.net.eval()
        self.after_load()
        self.net.to(self.device)
        if self.dtype != self.net_dtype():
            self.net.to(self.dtype)
        self.use_runtime(self.runtime.requested)

    # -- runtimes (see backends/runtimes) --------------------------------------------------------------------------
    #: what --runtime onnxruntime/openvino runs (runtimes.Part: a module's method); () = the family does not export
    runtime_parts: tuple = ()
    #: why a family exports nothing or only a part (runtimes.describe, `models info`)
    runtime_note: str = ""

    def use_runtime(self, runtime: str | None) -> "TorchBackend":
        """Run the declared parts on ``runtime`` from now on (auto, torch, onnxruntime, openvino)."""
        from .runtimes import attach

        attach(self, runtime)
        return self

    def export_mode(self):
        """Context for exporting a part (RVM: its NCHW layout); the network as it is by default."""
        from contextlib import nullcontext

        return nullcontext()

    @staticmethod
    def net_dtype():
        import torch

        return torch.float32

    def networks(self) -> list:
        """Every nn.Module this backend runs (families with a second network, e.g. SIM's classifier, add it)."""
        return [self.net]

    def to_dtype(self, dtype) -> "TorchBackend":
        """Compute in ``dtype`` from now on (tests use float64 as the rounding-free yardstick)."""
        for net in self.networks():
            net.to(dtype)
        self.dtype = dtype
        return self

    # -- to implement ------------------------------------------------------------------------------------------------
    def build_net(self, state_dict: Mapping):
        raise NotImplementedError

    def encode(self, batch: Batch):
        """-> (network inputs, ctx for decode)."""
        raise NotImplementedError

    def forward(self, inputs):
        return self.net(*inputs)

    def decode(self, outputs, batch: Batch, ctx) -> Prediction:
        raise NotImplementedError

    def after_load(self) -> None:
        """Load-time transforms (BN folding, memory format) after the strict load, before moving to the device."""

    # -- inference -------------------------------------------------------------------------------------------------
    def predict_batch(self, batch: Batch) -> Prediction:
        import torch

        batch = batch.to(self.device)
        with torch.inference_mode():
            inputs, ctx = self.encode(batch)
            return self.decode(self.forward(inputs), batch, ctx)

    # -- weights -----------------------------------------------------------------------------------------------------
    def load_state_dict(self, weights: Any) -> dict:
        """Our state dict from ``weights``: None (the cache), a file (official or our converted format) or a mapping
        in the official key layout."""
        from .checkpoint import to_tensor_dict

        if weights is None:
            from .install import cached_state_dict

            ours, self.weights_path, self.weights_sha256 = cached_state_dict(self.entry, self.weights_set,
                                                                             self.converter, self.spec)
            return ours
        if isinstance(weights, Mapping):
            self.weights_path = self.weights_sha256 = None
            return self.convert(to_tensor_dict(weights), None)
        path = os.fspath(weights)
        if not os.path.exists(path):
            raise InputError(f"{path}: weights file not found; pass an existing file to --weights", path=path)
        if os.path.isdir(path):      # some formats are folders (CAM's unpacked model/): the converter decides
            try:
                return self.convert(self.converter.read(path, self.spec), path)
            except (ConverterError, OSError):
                raise InputError(f"{path}: is a folder; pass the weights file to --weights (`mattecli models info "
                                 f"{self.entry.name}` names it)", path=path) from None
        from ..weights import file_sha256
        from .install import read_ours

        self.weights_path, self.weights_sha256 = path, file_sha256(path)
        ours = read_ours(path, self.entry.family)
        if ours is not None:
            return ours
        try:
            official = self.converter.read(path, self.spec)
        except ConverterError as e:
            raise ConverterError(str(e) if path in str(e) else f"{path}: {e}", path=path) from None
        return self.convert(official, path)

    def convert(self, official: Mapping, path: str | None) -> dict:
        try:
            return self.converter.to_ours(official, self.spec)
        except ConverterError as e:
            if path and path not in str(e):
                raise ConverterError(f"{path}: {e}", path=path) from None
            raise
