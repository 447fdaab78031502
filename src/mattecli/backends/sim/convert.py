"""SIM checkpoints <-> our weights: two files, told apart by the weight set (``spec.tag == 'classifier'``).

Matting network (``checkpoints/SIM/ckpt_best.pth``, ``checkpoints/Adobe/ckpt_best.pth``): either a plain state dict
or ``{'epoch', 'state_dict', 'best_sad'}`` (utils/util.py save_checkpoint), keys ``encoder.*`` / ``decoder.*``
without prefix; ``scripts/main.py build_sim_model`` unwraps 'state_dict' and loads strictly.

Classifier (``checkpoints/classifier_resnet50_best.pth.tar``, weight set ``sim.classifier``):
``{'state_dict': {'module.' + key}}``; ``build_classifier`` drops the FIRST dotted component of every key
(``utils.remove_prefix``) and loads strictly.
"""
from __future__ import annotations

import os
from typing import Mapping

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix

CLASSIFIER = "classifier"
_KEYS: dict = {}


def is_classifier(spec) -> bool:
    return spec is not None and spec.tag == CLASSIFIER


def our_keys(classifier: bool) -> list:
    if classifier not in _KEYS:
        from .net import SIMClassifier, SIMNet

        _KEYS[classifier] = list((SIMClassifier() if classifier else SIMNet()).state_dict().keys())
    return _KEYS[classifier]


def remove_prefix(sd: Mapping) -> dict:
    """The official ``utils.util.remove_prefix``: drop the first dotted component of every key."""
    return {".".join(k.split(".")[1:]): v for k, v in sd.items()}


def _drop_module(sd: Mapping) -> dict:
    if sd and all(k.startswith("module.") for k in sd):
        return remove_prefix(sd)
    return dict(sd)


class SIMConverter(Converter):
    def read(self, path, spec):
        obj = safe_torch_load(path)
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise ConverterError(f"{path}: not a SIM checkpoint (expected a state dict or {{'state_dict': ...}})",
                                 path=path)
        return _drop_module(obj) if is_classifier(spec) else dict(obj)

    def to_ours(self, official, spec):
        if is_classifier(spec):
            kt = KeyTaker(_drop_module(official), what="SIM classifier checkpoint")
        else:
            kt = KeyTaker(strip_prefix(dict(official)), what="SIM matting checkpoint")
        ours = {k: kt.take(k) for k in our_keys(is_classifier(spec))}
        kt.finish()
        return ours

    def to_official(self, ours, spec):
        """Matting network: the plain keys; classifier: ``'module.' + key`` as in the authors' file."""
        if is_classifier(spec):
            return {"module." + k: ours[k] for k in our_keys(True)}
        return {k: ours[k] for k in our_keys(False)}

    def write(self, ours, path, spec):
        """The authors' wrappings: ``{'state_dict'}`` (classifier), ``{'epoch', 'state_dict', 'best_sad'}``
        (utils/util.py save_checkpoint, matting network)."""
        import torch

        sd = {k: v.detach().clone() for k, v in self.to_official(ours, spec).items()}
        obj = {"state_dict": sd} if is_classifier(spec) else {"epoch": 0, "state_dict": sd, "best_sad": 0.0}
        torch.save(obj, os.fspath(path))

    def convert_file(self, path, spec):
        return self.to_ours(self.read(path, spec), spec), {"part": CLASSIFIER if is_classifier(spec) else "matting"}
