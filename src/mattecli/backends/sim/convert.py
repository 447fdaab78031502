"""SIM checkpoints <-> our weights.

Matting network (``checkpoints/SIM/ckpt_best.pth``, ``checkpoints/Adobe/ckpt_best.pth``): either a plain state dict
or ``{'epoch', 'state_dict', 'best_sad'}`` (utils/util.py save_checkpoint), keys ``encoder.*`` / ``decoder.*``
without prefix; ``scripts/main.py build_sim_model`` unwraps 'state_dict' and loads strictly.

Classifier (``checkpoints/classifier_resnet50_best.pth.tar``): ``{'state_dict': {'module.' + key}}``;
``build_classifier`` drops the FIRST dotted component of every key (``utils.remove_prefix``) and loads strictly.
"""
from __future__ import annotations

import os
from typing import Mapping

from ...errors import ConverterError
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix

_KEYS: dict = {}


def _keys(which: str) -> list:
    if which not in _KEYS:
        from .net import SIMClassifier, SIMNet

        _KEYS[which] = list((SIMNet() if which == "matting" else SIMClassifier()).state_dict().keys())
    return _KEYS[which]


def _load_mapping(path) -> Mapping:
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConverterError(f"{path}: not a SIM checkpoint (expected a state dict or {{'state_dict': ...}})")
    return obj


def remove_prefix(sd: Mapping) -> dict:
    """The official ``utils.util.remove_prefix``: drop the first dotted component of every key."""
    return {".".join(k.split(".")[1:]): v for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------- matting net
def read_checkpoint(path: str | os.PathLike) -> dict:
    return dict(_load_mapping(path))


def to_ours(official: Mapping) -> dict:
    kt = KeyTaker(strip_prefix(dict(official)), what="SIM matting checkpoint")
    ours = {k: kt.take(k) for k in _keys("matting")}
    kt.finish()
    return ours


def to_official(ours: Mapping) -> dict:
    return {k: ours[k] for k in _keys("matting")}


def write_checkpoint(ours: Mapping, path: str | os.PathLike, epoch: int = 0, best_sad: float = 0.0) -> None:
    """The authors' wrapping (utils/util.py save_checkpoint): {'epoch', 'state_dict', 'best_sad'}."""
    import torch

    sd = {k: v.detach().clone() for k, v in to_official(ours).items()}
    torch.save({"epoch": int(epoch), "state_dict": sd, "best_sad": float(best_sad)}, os.fspath(path))


# ---------------------------------------------------------------------------------------------- classifier
def read_classifier_checkpoint(path: str | os.PathLike) -> dict:
    sd = _load_mapping(path)
    keys = list(sd)
    if keys and all(k.startswith("module.") for k in keys):
        return remove_prefix(sd)
    return dict(sd)


def classifier_to_ours(official: Mapping) -> dict:
    sd = dict(official)
    if sd and all(k.startswith("module.") for k in sd):
        sd = remove_prefix(sd)
    kt = KeyTaker(sd, what="SIM classifier checkpoint")
    ours = {k: kt.take(k) for k in _keys("classifier")}
    kt.finish()
    return ours


def classifier_to_official(ours: Mapping) -> dict:
    return {"module." + k: ours[k] for k in _keys("classifier")}


def write_classifier_checkpoint(ours: Mapping, path: str | os.PathLike) -> None:
    """The authors' wrapping: {'state_dict': {'module.' + key}}."""
    import torch

    sd = {k: v.detach().clone() for k, v in classifier_to_official(ours).items()}
    torch.save({"state_dict": sd}, os.fspath(path))


def convert_file(path: str | os.PathLike, wset=None):
    """Import hook used by ``mattecli models import``: the classifier file (tag ``classifier``) and the matting
    checkpoints have different layouts. Returns (our state dict, meta)."""
    if wset is not None and getattr(wset, "tag", None) == "classifier":
        return classifier_to_ours(read_classifier_checkpoint(path)), {"part": "classifier"}
    return to_ours(read_checkpoint(path)), {"part": "matting"}
