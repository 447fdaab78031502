"""MobileNetV3 (Large and Small) with torchvision parameter names.

Layout as torchvision's ``MobileNetV3``: ``features.0`` = stem (conv 3x3/2 + BN + hardswish), ``features.1..N`` =
inverted residual blocks (``block.<i>``: optional 1x1 expand, depthwise, optional squeeze-excitation ``fc1``/``fc2``,
1x1 project; each conv-BN(-act) is a ``Sequential`` with children 0 conv, 1 BN, 2 activation), ``features.N+1`` = last
1x1 conv (6x the last block's channels) + BN + hardswish, then ``classifier`` = Linear, Hardswish, Dropout, Linear.
BatchNorm uses eps=0.001, momentum=0.01 (torchvision's MobileNetV3 default).

``dilated=True`` gives the last stage dilation 2 and output stride 16 (torchvision's ``dilated`` flag; this is the
backbone of Robust Video Matting). ``num_classes=None`` drops ``avgpool``/``classifier``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .mobilenetv2 import _make_divisible

BN_EPS = 0.001
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class BlockConfig:
    """torchvision's InvertedResidualConfig (with width_mult already applied by :func:`block_config`)."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool
    stride: int
    dilation: int


def block_config(input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride, dilation,
                 width_mult: float = 1.0) -> BlockConfig:
    def adjust(c):
        return _make_divisible(c * width_mult, 8)

    return BlockConfig(adjust(input_channels), kernel, adjust(expanded_channels), adjust(out_channels), bool(use_se),
                       activation == "HS", stride, dilation)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class ConvBNAct(nn.Sequential):
    """torchvision ``Conv2dNormActivation``: children 0 conv (no bias), 1 BN, [2 activation]."""

    def __init__(self, in_ch, out_ch, kernel_size=3, stride=1, groups=1, dilation=1, activation=None):
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            _norm(out_ch),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision ``SqueezeExcitation`` with ReLU and hardsigmoid (``fc1``/``fc2`` are 1x1 convs with bias)."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        s = self.avgpool(x)
        s = self.scale_activation(self.fc2(self.activation(self.fc1(s))))
        return s * x


class InvertedResidual(nn.Module):
    def __init__(self, cnf: BlockConfig):
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        # torchvision: the residual test uses the configured stride, even when dilation replaces it
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(ConvBNAct(cnf.input_channels, cnf.expanded_channels, 1, activation=act))
        stride = 1 if cnf.dilation > 1 else cnf.stride
        layers.append(ConvBNAct(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel, stride,
                                groups=cnf.expanded_channels, dilation=cnf.dilation, activation=act))
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.expanded_channels, _make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(ConvBNAct(cnf.expanded_channels, cnf.out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, x):
        y = self.block(x)
        if self.use_res_connect:
            y = y + x
        return y


def large_config(width_mult: float = 1.0, dilated: bool = False, reduced_tail: bool = False):
    """(block configs, last_channel) of torchvision's ``mobilenet_v3_large``."""
    d = 2 if dilated else 1
    r = 2 if reduced_tail else 1
    b = partial(block_config, width_mult=width_mult)
    cfg = [
        b(16, 3, 16, 16, False, "RE", 1, 1),
        b(16, 3, 64, 24, False, "RE", 2, 1),  # C1
        b(24, 3, 72, 24, False, "RE", 1, 1),
        b(24, 5, 72, 40, True, "RE", 2, 1),  # C2
        b(40, 5, 120, 40, True, "RE", 1, 1),
        b(40, 5, 120, 40, True, "RE", 1, 1),
        b(40, 3, 240, 80, False, "HS", 2, 1),  # C3
        b(80, 3, 200, 80, False, "HS", 1, 1),
        b(80, 3, 184, 80, False, "HS", 1, 1),
        b(80, 3, 184, 80, False, "HS", 1, 1),
        b(80, 3, 480, 112, True, "HS", 1, 1),
        b(112, 3, 672, 112, True, "HS", 1, 1),
        b(112, 5, 672, 160 // r, True, "HS", 2, d),  # C4
        b(160 // r, 5, 960 // r, 160 // r, True, "HS", 1, d),
        b(160 // r, 5, 960 // r, 160 // r, True, "HS", 1, d),
    ]
    return cfg, _make_divisible(1280 // r * width_mult, 8)


def small_config(width_mult: float = 1.0, dilated: bool = False, reduced_tail: bool = False):
    """(block configs, last_channel) of torchvision's ``mobilenet_v3_small``."""
    d = 2 if dilated else 1
    r = 2 if reduced_tail else 1
    b = partial(block_config, width_mult=width_mult)
    cfg = [
        b(16, 3, 16, 16, True, "RE", 2, 1),  # C1
        b(16, 3, 72, 24, False, "RE", 2, 1),  # C2
        b(24, 3, 88, 24, False, "RE", 1, 1),
        b(24, 5, 96, 40, True, "HS", 2, 1),  # C3
        b(40, 5, 240, 40, True, "HS", 1, 1),
        b(40, 5, 240, 40, True, "HS", 1, 1),
        b(40, 5, 120, 48, True, "HS", 1, 1),
        b(48, 5, 144, 48, True, "HS", 1, 1),
        b(48, 5, 288, 96 // r, True, "HS", 2, d),  # C4
        b(96 // r, 5, 576 // r, 96 // r, True, "HS", 1, d),
        b(96 // r, 5, 576 // r, 96 // r, True, "HS", 1, d),
    ]
    return cfg, _make_divisible(1024 // r * width_mult, 8)


class MobileNetV3(nn.Module):
    def __init__(self, inverted_residual_setting: Sequence[BlockConfig], last_channel: int,
                 num_classes: int | None = 1000, dropout: float = 0.2, in_channels: int = 3):
        super().__init__()
        cfgs = list(inverted_residual_setting)
        first = cfgs[0].input_channels
        layers: list[nn.Module] = [ConvBNAct(in_channels, first, 3, stride=2, activation=nn.Hardswish)]
        layers += [InvertedResidual(c) for c in cfgs]
        last_in = cfgs[-1].out_channels
        self.last_conv_channels = 6 * last_in
        layers.append(ConvBNAct(last_in, self.last_conv_channels, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        if num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Linear(self.last_conv_channels, last_channel),
                nn.Hardswish(),
                nn.Dropout(p=dropout),
                nn.Linear(last_channel, num_classes),
            )
        else:
            self.avgpool = None
            self.classifier = None

    def forward_features(self, x, feature_indices: Sequence[int] = (1, 3, 6, 12, 16)) -> list:
        """Outputs after the listed ``features`` indices (default for Large: 1/2, 1/4, 1/8, 1/16, last conv)."""
        feats = []
        wanted = set(feature_indices)
        last = max(wanted)
        for i, block in enumerate(self.features):
            x = block(x)
            if i in wanted:
                feats.append(x)
            if i >= last:
                break
        return feats

    def forward(self, x):
        x = self.features(x)
        if self.classifier is None:
            return x
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def mobilenet_v3_large(num_classes: int | None = 1000, width_mult: float = 1.0, dilated: bool = False,
                       reduced_tail: bool = False, **kw) -> MobileNetV3:
    cfg, last = large_config(width_mult, dilated, reduced_tail)
    return MobileNetV3(cfg, last, num_classes=num_classes, **kw)


def mobilenet_v3_small(num_classes: int | None = 1000, width_mult: float = 1.0, dilated: bool = False,
                       reduced_tail: bool = False, **kw) -> MobileNetV3:
    cfg, last = small_config(width_mult, dilated, reduced_tail)
    return MobileNetV3(cfg, last, num_classes=num_classes, **kw)
