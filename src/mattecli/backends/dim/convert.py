"""Deep Image Matting checkpoints <-> our state dicts: one converter per port.

huochaitiantang (``dim`` / ``dim.huochaitiantang``): ``stage1_skip_sad_52.9.pth`` = ``{'epoch', 'state_dict',
'best_sad'}``, state dict of the bare ``VGG16`` (no prefix). Our module uses the official key names.

foamliu (``dim.foamliu``): ``BEST_checkpoint.tar`` = a torch pickle of whole objects ``{'epoch',
'epochs_since_improvement', 'loss', 'model': nn.DataParallel(DIMModel), 'optimizer': torch.optim...}``. It is read with
:mod:`.restricted_pickle` (placeholders for the classes, nothing executed) and the DataParallel module's tree is
flattened to ``model.module.state_dict()`` keys, which our module uses unchanged.
"""
from __future__ import annotations

import os
from typing import Mapping

from ...errors import ConverterError
from ..base import Converter
from ..checkpoint import KeyTaker, safe_torch_load, strip_prefix, unwrap

HUO_KEYS = tuple(
    [f"{n}.{p}" for n in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
                          "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "conv6_1", "deconv6_1", "deconv5_1",
                          "deconv4_1", "deconv3_1", "deconv2_1", "deconv1_1", "deconv1") for p in ("weight", "bias")])


def _foamliu_keys() -> tuple:
    keys = []
    for block, n in (("down1", 2), ("down2", 2), ("down3", 3), ("down4", 3), ("down5", 3)):
        for i in range(1, n + 1):
            keys.append(f"{block}.conv{i}.cbr_unit")
    keys += [f"up{i}.conv.cbr_unit" for i in (5, 4, 3, 2, 1)]
    out = []
    for k in keys:
        out += [f"{k}.0.weight", f"{k}.0.bias", f"{k}.1.weight", f"{k}.1.bias", f"{k}.1.running_mean",
                f"{k}.1.running_var", f"{k}.1.num_batches_tracked"]
    return tuple(out)


FOAMLIU_KEYS = _foamliu_keys()


class HuoConverter(Converter):
    """huochaitiantang: ``stage1_skip_sad_52.9.pth`` (or a plain / 'module.'-prefixed state dict)."""

    def read(self, path, spec):
        path = os.fspath(path)
        try:
            obj = safe_torch_load(path)
        except ConverterError as e:
            if "pickles Python objects" in str(e):
                raise ConverterError(f"{e}; for foamliu's BEST_checkpoint.tar use --model dim.foamliu",
                                     path=path) from None
            raise
        return strip_prefix(unwrap(obj))

    def to_ours(self, official, spec):
        kt = KeyTaker(strip_prefix(dict(official)), what="dim (huochaitiantang VGG16 stage 1) checkpoint")
        if any(k.startswith("refine_") for k in kt.src):
            raise ConverterError("dim checkpoint has refine_* layers (stage 2/3); only the released stage-1 model "
                                 "(stage1_skip_sad_52.9.pth) is supported")
        out = {k: kt.take(k) for k in HUO_KEYS}
        kt.finish()
        return out

    def to_official(self, ours, spec):
        return {k: ours[k] for k in HUO_KEYS}

    def write(self, ours, path, spec):
        """The authors' wrapping (core/train.py): ``{'epoch', 'state_dict', 'best_sad'}``."""
        import torch

        sd = {k: v.detach().clone() for k, v in self.to_official(ours, spec).items()}
        torch.save({"epoch": 0, "state_dict": sd, "best_sad": 0.0}, os.fspath(path))


class FoamliuConverter(Converter):
    """foamliu: ``BEST_checkpoint.tar`` (pickled DataParallel(DIMModel), read by the restricted unpickler) or a
    plain state dict."""

    def read(self, path, spec):
        import torch

        from .restricted_pickle import Placeholder, module_state_dict, restricted_torch_load

        path = os.fspath(path)
        obj = restricted_torch_load(path)
        model = obj.get("model") if isinstance(obj, Mapping) else obj
        if isinstance(model, Placeholder):
            if model._qualname == "DataParallel" or "module" in (model.state().get("_modules") or {}):
                mods = model.state().get("_modules") or {}
                if "module" not in mods:
                    raise ConverterError(f"{path}: DataParallel object without a module", path=path)
                model = mods["module"]
            return module_state_dict(model)
        if isinstance(obj, Mapping):
            try:
                return strip_prefix(unwrap(obj))
            except ConverterError:
                pass
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return strip_prefix(dict(obj))
        raise ConverterError(f"{path}: no model in this checkpoint (expected foamliu's BEST_checkpoint.tar)",
                             path=path)

    def to_ours(self, official, spec):
        import torch

        kt = KeyTaker(strip_prefix(dict(official)), what="dim.foamliu (DIMModel) checkpoint")
        out = {}
        for k in FOAMLIU_KEYS:
            if k.endswith("num_batches_tracked") and k not in kt.src:  # files saved by torch < 0.4.1 lack it
                out[k] = torch.zeros((), dtype=torch.long)
                continue
            out[k] = kt.take(k)
        kt.finish()
        return out

    def to_official(self, ours, spec):
        return {k: ours[k] for k in FOAMLIU_KEYS}

    def write(self, ours, path, spec, legacy: bool = True):
        """foamliu's wrapping: ``torch.save({'epoch', 'epochs_since_improvement', 'loss', 'model':
        nn.DataParallel(DIMModel), 'optimizer': Adam})`` with classes pickled as ``models.DIMModel`` etc.

        ``legacy=True`` writes the pre-1.6 stream format the released file uses; False the zip container.
        A temporary ``models`` module is registered in ``sys.modules`` while pickling (pickle looks classes up by
        name)."""
        import sys
        import types
        import warnings

        import torch
        from torch import nn

        classes = _official_foamliu_classes()
        fake = types.ModuleType("models")
        for name, c in classes.items():
            setattr(fake, name, c)
        model = classes["DIMModel"]()
        model.load_state_dict(self.to_official(ours, spec), strict=True)
        wrapped = nn.DataParallel(model)
        optimizer = torch.optim.Adam(wrapped.parameters(), lr=1e-4)
        state = {"epoch": 0, "epochs_since_improvement": 0, "loss": 0.05, "model": wrapped, "optimizer": optimizer}
        previous = sys.modules.get("models")
        sys.modules["models"] = fake
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Couldn't retrieve source code for container ..." (legacy format)
                torch.save(state, os.fspath(path), _use_new_zipfile_serialization=not legacy)
        finally:
            if previous is None:
                sys.modules.pop("models", None)
            else:
                sys.modules["models"] = previous


def _official_foamliu_classes():
    """nn.Module classes named like foamliu's ``models.py`` ones (``models.DIMModel`` ...), for writing test files."""
    from torch import nn

    class conv2DBatchNormRelu(nn.Module):  # noqa: N801 (official name)
        def __init__(self, cin, cout, k, relu=True):
            super().__init__()
            layers = [nn.Conv2d(cin, cout, k, padding=k // 2, stride=1, bias=True), nn.BatchNorm2d(cout)]
            if relu:
                layers.append(nn.ReLU(inplace=True))
            self.cbr_unit = nn.Sequential(*layers)

    class segnetDown2(nn.Module):  # noqa: N801
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = conv2DBatchNormRelu(cin, cout, 3)
            self.conv2 = conv2DBatchNormRelu(cout, cout, 3)
            self.maxpool_with_argmax = nn.MaxPool2d(2, 2, return_indices=True)

    class segnetDown3(nn.Module):  # noqa: N801
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = conv2DBatchNormRelu(cin, cout, 3)
            self.conv2 = conv2DBatchNormRelu(cout, cout, 3)
            self.conv3 = conv2DBatchNormRelu(cout, cout, 3)
            self.maxpool_with_argmax = nn.MaxPool2d(2, 2, return_indices=True)

    class segnetUp1(nn.Module):  # noqa: N801
        def __init__(self, cin, cout):
            super().__init__()
            self.unpool = nn.MaxUnpool2d(2, 2)
            self.conv = conv2DBatchNormRelu(cin, cout, 5, relu=False)

    class DIMModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_channels, self.is_unpooling, self.pretrain = 4, True, False
            self.down1, self.down2 = segnetDown2(4, 64), segnetDown2(64, 128)
            self.down3, self.down4, self.down5 = segnetDown3(128, 256), segnetDown3(256, 512), segnetDown3(512, 512)
            self.up5, self.up4, self.up3 = segnetUp1(512, 512), segnetUp1(512, 256), segnetUp1(256, 128)
            self.up2, self.up1 = segnetUp1(128, 64), segnetUp1(64, 1)
            self.sigmoid = nn.Sigmoid()

    classes = (conv2DBatchNormRelu, segnetDown2, segnetDown3, segnetUp1, DIMModel)
    for c in classes:
        c.__module__ = "models"
        c.__qualname__ = c.__name__
    return {c.__name__: c for c in classes}
