"""DenseNet (BC) with torchvision parameter names, so torchvision-derived checkpoints load unchanged.

Layout (``densenet121``: growth 32, blocks (6, 12, 24, 16), 64 initial features, bottleneck 4x growth)::

    features.conv0 / norm0 / relu0 / pool0
    features.denseblock{1..4}.denselayer{j}.norm1 / relu1 / conv1 (1x1) / norm2 / relu2 / conv2 (3x3)
    features.transition{1..3}.norm / relu / conv (1x1) / pool (avg 2x2)
    features.norm5
    classifier (Linear; ``num_classes=None`` drops it)

``forward_features(x)`` returns ``features(x)`` after ``norm5`` (no ReLU), as torchvision's ``features``.
Families that tap intermediate stages (GFM) call the named sub-modules of ``features`` themselves.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, inputs) -> torch.Tensor:
        x = torch.cat(inputs, 1) if isinstance(inputs, (list, tuple)) else inputs
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float = 0.0):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0,
                 num_classes: int | None = 1000, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        n = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, n, bn_size, growth_rate, drop_rate))
            n = n + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(n, n // 2))
                n = n // 2
        self.features.add_module("norm5", nn.BatchNorm2d(n))
        self.num_features = n
        self.classifier = nn.Linear(n, num_classes) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.forward_features(x))
        if self.classifier is None:
            return x
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


def densenet121(**kw) -> DenseNet:
    return DenseNet(32, (6, 12, 24, 16), 64, **kw)


def densenet169(**kw) -> DenseNet:
    return DenseNet(32, (6, 12, 32, 32), 64, **kw)


def densenet201(**kw) -> DenseNet:
    return DenseNet(32, (6, 12, 48, 32), 64, **kw)
