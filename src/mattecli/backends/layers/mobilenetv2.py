"""MobileNetV2 with torchvision parameter names (``features.N...``, ``classifier.1``).

``in_channels`` changes the first conv (BGMv2 feeds image + plate = 6 channels). ``dilate_from(index, dilation)``
turns the stride-2 depthwise conv of block ``index`` into stride 1 and dilates that block and all later ones, the way
BGMv2's encoder reaches output stride 16. ``forward_features`` returns the outputs after the blocks listed in
``feature_indices`` (default: the ends of the 1/2, 1/4, 1/8, 1/16, 1/32 stages).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    """torchvision's Conv2dNormActivation with ReLU6 (children 0 conv, 1 bn, 2 relu6)."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1, dilation=1):
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, dilation=dilation, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio, dilation=1):
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1))
        layers += [
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, dilation=dilation),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    @property
    def depthwise(self) -> nn.Conv2d:
        return self.conv[-3][0]

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


INVERTED_RESIDUAL_SETTING = (
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int | None = 1000, width_mult: float = 1.0,
                 round_nearest: int = 8, dropout: float = 0.2):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU(in_channels, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = (nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
                           if num_classes else None)

    def dilate_from(self, index: int, dilation: int = 2) -> None:
        """Remove the stride of block ``index`` and dilate it and every later inverted-residual block."""
        first = self.features[index]
        first.depthwise.stride = (1, 1)
        for block in list(self.features)[index + 1:]:
            if isinstance(block, InvertedResidual):
                dw = block.depthwise
                dw.dilation = (dilation, dilation)
                dw.padding = (dilation, dilation)

    def forward_features(self, x, feature_indices: Sequence[int] = (1, 3, 6, 13, 18)) -> list:
        feats = []
        wanted = set(feature_indices)
        for i, block in enumerate(self.features):
            x = block(x)
            if i in wanted:
                feats.append(x)
        return feats

    def forward(self, x):
        x = self.features(x)
        if self.classifier is None:
            return x
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))
