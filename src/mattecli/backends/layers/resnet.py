"""ResNet (BasicBlock / Bottleneck, torchvision v1.5 layout and parameter names).

Options the matting families need:
- ``in_channels``: first conv takes e.g. 6 (BGMv2: image + plate) or 11 (FBA) channels;
- ``replace_stride_with_dilation`` ([layer2, layer3, layer4]) or ``output_stride`` (8/16/32), torchvision semantics
  (the first block of a dilated stage keeps the previous dilation);
- ``norm_layer`` (e.g. GroupNorm(32) for FBA) and ``conv_layer`` (e.g. a weight-standardised conv);
- ``num_classes=None`` drops ``fc`` (``avgpool`` has no parameters either way);
- ``maxpool_indices=True`` makes the stem's max pool return indices (FBA's decoder unpools with them).

``forward_features(x)`` returns the feature pyramid ``[stem (1/2), layer1 (1/4), layer2, layer3, layer4]``.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
from torch import nn


def _conv3x3(conv_layer, in_planes, out_planes, stride=1, groups=1, dilation=1):
    return conv_layer(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                      bias=False, dilation=dilation)


def _conv1x1(conv_layer, in_planes, out_planes, stride=1):
    return conv_layer(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None, conv_layer=nn.Conv2d):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        # torchvision's BasicBlock refuses dilation > 1; matting backbones (GFM, BGMv2 variants) allow it
        self.conv1 = _conv3x3(conv_layer, inplanes, planes, stride, dilation=dilation)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(conv_layer, planes, planes, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None, conv_layer=nn.Conv2d):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(conv_layer, inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = _conv3x3(conv_layer, width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = _conv1x1(conv_layer, width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


def _dilation_flags(replace_stride_with_dilation, output_stride):
    if output_stride is not None:
        if replace_stride_with_dilation is not None:
            raise ValueError("give either output_stride or replace_stride_with_dilation")
        table = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
        if output_stride not in table:
            raise ValueError("output_stride must be 8, 16 or 32")
        return table[output_stride]
    flags = list(replace_stride_with_dilation or [False, False, False])
    if len(flags) != 3:
        raise ValueError("replace_stride_with_dilation needs 3 entries")
    return flags


class ResNet(nn.Module):
    def __init__(self, block, layers: Sequence[int], in_channels: int = 3, num_classes: int | None = 1000,
                 replace_stride_with_dilation: Sequence[bool] | None = None, output_stride: int | None = None,
                 norm_layer: Callable[[int], nn.Module] | None = None, conv_layer=nn.Conv2d, groups: int = 1,
                 width_per_group: int = 64, maxpool_indices: bool = False):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self._conv_layer = conv_layer
        self.inplanes = 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        flags = _dilation_flags(replace_stride_with_dilation, output_stride)
        self.conv1 = conv_layer(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=maxpool_indices)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=flags[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=flags[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=flags[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes) if num_classes else None

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer, conv_layer = self._norm_layer, self._conv_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(conv_layer, self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                        norm_layer, conv_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer, conv_layer=conv_layer))
        return nn.Sequential(*layers)

    def stem(self, x):
        return self.relu(self.bn1(self.conv1(x)))

    def forward_features(self, x, **stem_kwargs) -> list:
        x0 = self.stem(x, **stem_kwargs)
        x = self.maxpool(x0)
        if isinstance(x, tuple):
            x = x[0]
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x0, x1, x2, x3, x4]

    def forward(self, x):
        x = self.forward_features(x)[-1]
        if self.fc is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(**kw) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


def resnet34(**kw) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


def resnet50(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)


def resnet101(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kw)


def resnet152(**kw) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kw)


def group_norm(num_groups: int = 32) -> Callable[[int], nn.Module]:
    """Norm-layer factory: GroupNorm with ``num_groups`` groups (FBA uses 32)."""
    return partial(nn.GroupNorm, num_groups)
