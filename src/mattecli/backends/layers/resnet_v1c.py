"""ResNet-v1c ("deep stem", as in SIM's ``networks/resnet_bn.py`` / mmcv's resnet50_v1c).

Stem: conv1 3x3/2 (in->64) + bn1 + relu1, conv2 3x3 (64->64) + bn2 + relu2, conv3 3x3 (64->128) + bn3 + relu3,
then max pool 3x3/2 and torchvision-style bottleneck stages (layer1 takes 128 channels). Parameter names
``conv1/bn1/conv2/bn2/conv3/bn3/layerN...`` as in the official code. Built on :mod:`.resnet`'s blocks and
``_make_layer`` (same dilation semantics: ``replace_stride_with_dilation``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .resnet import Bottleneck, ResNet, _dilation_flags


class ResNetV1c(nn.Module):
    _make_layer = ResNet._make_layer

    def __init__(self, block=Bottleneck, layers: Sequence[int] = (3, 4, 6, 3), in_channels: int = 3,
                 num_classes: int | None = None, replace_stride_with_dilation=None, output_stride=None,
                 norm_layer=None, conv_layer=nn.Conv2d, maxpool_indices: bool = False):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self._conv_layer = conv_layer
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        flags = _dilation_flags(replace_stride_with_dilation, output_stride)
        nl = self._norm_layer
        self.conv1 = conv_layer(in_channels, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nl(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv_layer(64, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nl(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv_layer(64, 128, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn3 = nl(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=maxpool_indices)
        self.inplanes = 128
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=flags[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=flags[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=flags[2])
        self.fc = nn.Linear(512 * block.expansion, num_classes) if num_classes else None

    def stem(self, x, add=None):
        """``add`` (optional) is added to conv1's output before bn1 (SIM's semantic-trimap side branch)."""
        x = self.conv1(x)
        if add is not None:
            x = x + add
        x = self.relu1(self.bn1(x))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.relu3(self.bn3(self.conv3(x)))

    forward_features = ResNet.forward_features   # stem(x, add=...) then max pool and the four stages

    def forward(self, x):
        x = self.forward_features(x)[-1]
        if self.fc is None:
            return x
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def resnet50_v1c(**kw) -> ResNetV1c:
    return ResNetV1c(Bottleneck, [3, 4, 6, 3], **kw)
