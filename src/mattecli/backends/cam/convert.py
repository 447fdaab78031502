"""Context-Aware Matting: TensorFlow 1 checkpoints <-> our state dict, without TensorFlow.

Official layout = the TF variable names of the demo graph (``comp/encoder/xception_65/entry_flow/conv1_1/weights``
...) with TF shapes: conv kernels HWIO ``[kh, kw, in, out]``, depthwise kernels ``[kh, kw, in, multiplier]``,
BatchNorm ``gamma/beta/moving_mean/moving_variance``, ``global_step`` (int64 scalar).
Our names: '/' -> '.', ``weights``/``depthwise_weights`` -> ``weight`` (OIHW / [in*mult, 1, kh, kw]), ``biases`` ->
``bias``, BatchNorm leaves -> ``weight/bias/running_mean/running_var``.

Accepted files: a folder holding ``model.ckpt.index`` + ``model.ckpt.data-00000-of-00001`` (``model/lap/`` of the
authors' ``model.tgz``), the ``.index`` file itself (or the ``model.ckpt`` prefix), the authors' ``model.tgz``
(the sub-folder is picked by the weight set: ``lap``, ``lap_fea_da``, ``lap_fea_da_color``), or a mapping of TF names.
TF's Saver restores by name and ignores other variables in the file; we consume every name and only discard, by name,
the kinds of variables the released files may carry besides the restore list: optimiser slots (``.../Momentum``,
``.../Adam``, ``.../Adam_1``, ``.../ExponentialMovingAverage``...), ``beta1_power``/``beta2_power``, and, for the
alpha-only models, the colour decoder and its heads. Anything else raises ConverterError.
"""
from __future__ import annotations

import os
import tarfile
from typing import Any, Mapping

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker
from . import tfbundle

_SLOT_SUFFIXES = ("/Momentum", "/Adam", "/Adam_1", "/ExponentialMovingAverage", "/RMSProp", "/RMSProp_1",
                  "/Adagrad", "/Ftrl", "/Ftrl_1")
_GLOBAL_IGNORABLE = ("beta1_power", "beta2_power")
_BN_LEAVES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
TAG_DIRS = {"lap": "lap", "lap-fea-da": "lap_fea_da", "lap-fea-da-color": "lap_fea_da_color"}


def _our_keys(color: bool) -> list:
    from .net import CAMNet

    return list(CAMNet(color=color).state_dict().keys())


_KEYS_CACHE: dict = {}


def our_keys(color: bool) -> list:
    if color not in _KEYS_CACHE:
        _KEYS_CACHE[color] = _our_keys(color)
    return _KEYS_CACHE[color]


def tf_name(our_key: str) -> tuple[str, str]:
    """Our key -> (TF variable name, kind) with kind in conv | depthwise | vector | scalar."""
    if our_key == "global_step":
        return "global_step", "scalar"
    parts = our_key.split(".")
    leaf = parts[-1]
    if len(parts) >= 2 and parts[-2] == "BatchNorm":
        return "/".join(parts[:-1] + [_BN_LEAVES[leaf]]), "vector"
    owner = parts[-2]
    if leaf == "bias":
        return "/".join(parts[:-1] + ["biases"]), "vector"
    if owner.endswith("_depthwise"):
        return "/".join(parts[:-1] + ["depthwise_weights"]), "depthwise"
    return "/".join(parts[:-1] + ["weights"]), "conv"


def _as_tensor(v):
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return v
    return torch.from_numpy(np.array(v))


def _ignorable(name: str, color: bool) -> bool:
    if name in _GLOBAL_IGNORABLE or name.endswith(_SLOT_SUFFIXES):
        return True
    if not color and (name.startswith("patch/seg_decoder/") or name.startswith("logits/logits/patch_seg_logits_")):
        return True
    return False


def index_path(path: str | os.PathLike, tag: str = "lap") -> str | None:
    """A folder, a ``.index`` file or a ``model.ckpt`` prefix -> the ``.index`` path (None if there is none).

    The authors' ``model/`` folder (sub-folders ``lap``, ``lap_fea_da``, ``lap_fea_da_color``) is accepted too: the
    sub-folder of the weight set ``tag`` is used.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for cand in (os.path.join(path, "model.ckpt.index"),
                     os.path.join(path, TAG_DIRS.get(tag, tag), "model.ckpt.index")):
            if os.path.isfile(cand):
                return cand
        found = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        return os.path.join(path, found[0]) if len(found) == 1 else None
    if path.endswith(".index") and os.path.isfile(path):
        return path
    if os.path.isfile(path + ".index"):
        return path + ".index"
    return None


def _read_tgz(path: str, tag: str) -> dict:
    sub = TAG_DIRS.get(tag, tag)
    try:
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise ConverterError(f"{path}: not a readable tar archive ({e})", path=path) from None
    with tf:
        members = {m.name.lstrip("./"): m for m in tf.getmembers() if m.isfile()}
        idx = [n for n in members if n.endswith(".index") and os.path.basename(os.path.dirname(n)) == sub]
        if len(idx) != 1:
            raise ConverterError(f"{path}: no {sub}/model.ckpt.index in the archive (expected the authors' "
                                 "model.tgz with model/lap, model/lap_fea_da, model/lap_fea_da_color)", path=path)
        prefix = idx[0][: -len(".index")]
        index = tf.extractfile(members[idx[0]]).read()

        def read_shard(sid, n):
            name = tfbundle.shard_name(prefix, sid, n)
            if name not in members:
                raise ConverterError(f"{path}: {name} missing from the archive", path=path)
            return tf.extractfile(members[name]).read()

        return tfbundle.read_bundle(index, read_shard)



def _read_files(path: str, tag: str) -> dict:
    """Any accepted file form -> {TF name: numpy array}."""
    if os.path.isfile(path) and tarfile.is_tarfile(path):
        return _read_tgz(path, tag)
    idx = index_path(path, tag)
    if idx is None:
        raise ConverterError(f"{path}: not a TensorFlow checkpoint: pass the folder holding model.ckpt.index and "
                             "model.ckpt.data-00000-of-00001, the .index file, or the authors' model.tgz", path=path)
    try:
        return tfbundle.read_bundle_files(idx[: -len(".index")])
    except ConverterError as e:
        raise ConverterError(f"{idx}: {e}" if idx not in str(e) else str(e), path=idx) from None
    except OSError as e:
        raise ConverterError(f"{idx}: cannot read ({e})", path=idx) from None


def tag_of(spec) -> str:
    return spec.tag or "lap"


def is_color(spec) -> bool:
    return "foreground" in spec.entry.outputs or tag_of(spec).endswith("color")


class CAMConverter(Converter):
    """TF1 Saver-V2 bundles <-> our state dict (see the module docstring); the weight set's tag picks the
    sub-folder of the authors' ``model/`` folder or ``model.tgz``, the entry's outputs pick alpha / alpha+colour."""

    def read(self, path, spec) -> dict:
        return _read_files(os.fspath(path), tag_of(spec))

    def to_ours(self, official: Mapping[str, Any], spec) -> dict:
        """TF-named mapping (HWIO) -> our state dict (OIHW). Every name is consumed; see the module doc for discards."""
        import torch

        color = is_color(spec)
        kt = KeyTaker(dict(official),
                      what=f"Context-Aware Matting ({'alpha+colour' if color else 'alpha'}) checkpoint")
        out = {}
        for key in our_keys(color):
            name, kind = tf_name(key)
            v = _as_tensor(kt.take(name))
            if kind == "conv":
                if v.ndim != 4:
                    raise ConverterError(f"{name}: expected a 4-d HWIO kernel, got shape {tuple(v.shape)}")
                v = v.permute(3, 2, 0, 1)
            elif kind == "depthwise":
                if v.ndim != 4:
                    raise ConverterError(f"{name}: expected a 4-d depthwise kernel, got shape {tuple(v.shape)}")
                kh, kw, cin, mult = v.shape
                v = v.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            elif kind == "scalar":
                v = v.reshape(()).to(dtype=torch.int64)
            out[key] = v.contiguous()
        for name in list(kt.src):
            if _ignorable(name, color):
                kt.discard(name)
        kt.finish()
        return out

    def to_official(self, ours: Mapping[str, Any], spec) -> dict:
        """Our state dict -> {TF name: numpy array in TF layout}."""
        import numpy as np

        out = {}
        for key, v in ours.items():
            name, kind = tf_name(key)
            a = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            if kind == "conv":
                a = a.transpose(2, 3, 1, 0)
            elif kind == "depthwise":
                cout, _, kh, kw = a.shape
                a = a.reshape(cout, 1, kh, kw).transpose(2, 3, 0, 1)
            elif kind == "scalar":
                a = np.asarray(a, dtype=np.int64).reshape(())
            out[name] = np.asarray(a, order="C")
        return out

    def write(self, ours: Mapping[str, Any], path, spec):
        """A TF1 Saver-V2 bundle: ``path`` is a folder (-> ``model.ckpt.*`` inside) or a ``.../model.ckpt`` prefix.
        Returns the ``.index`` file to load back."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "model.ckpt")
        elif path.endswith(".index"):
            path = path[: -len(".index")]
        files = tfbundle.write_bundle(self.to_official(ours, spec), path)
        return next(f for f in map(os.fspath, files) if f.endswith(".index"))
