"""BiSeNetV2 (Yu et al. 2021) in the module layout of CoinCheung/BiSeNet, so its checkpoints load by name.

Inference graph only: the auxiliary training heads are not built (the converter validates and drops them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, ks=3, stride=1, padding=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _conv_bn(cin, cout, ks, stride=1, groups=1, relu=False):
    layers = [nn.Conv2d(cin, cout, ks, stride, ks // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class DetailBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.S1 = nn.Sequential(ConvBNReLU(3, 64, stride=2), ConvBNReLU(64, 64))
        self.S2 = nn.Sequential(ConvBNReLU(64, 64, stride=2), ConvBNReLU(64, 64), ConvBNReLU(64, 64))
        self.S3 = nn.Sequential(ConvBNReLU(64, 128, stride=2), ConvBNReLU(128, 128), ConvBNReLU(128, 128))

    def forward(self, x):
        return self.S3(self.S2(self.S1(x)))


class StemBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ConvBNReLU(3, 16, stride=2)
        self.left = nn.Sequential(ConvBNReLU(16, 8, 1, padding=0), ConvBNReLU(8, 16, stride=2))
        self.right = nn.MaxPool2d(3, 2, 1)
        self.fuse = ConvBNReLU(32, 16)

    def forward(self, x):
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], 1))


class CEBlock(nn.Module):
    """Context embedding: global average -> BN -> 1x1 ConvBNReLU, broadcast-added, then a 3x3 ConvBNReLU."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(128)
        self.conv_gap = ConvBNReLU(128, 128, 1, padding=0)
        self.conv_last = ConvBNReLU(128, 128)

    def forward(self, x):
        g = self.conv_gap(self.bn(x.mean(dim=(2, 3), keepdim=True)))
        return self.conv_last(g + x)


class GELayerS1(nn.Module):
    def __init__(self, cin, cout, exp=6):
        super().__init__()
        mid = cin * exp
        self.conv1 = ConvBNReLU(cin, cin)
        self.dwconv = nn.Sequential(*_conv_bn(cin, mid, 3, groups=cin, relu=True))
        self.conv2 = nn.Sequential(*_conv_bn(mid, cout, 1))

    def forward(self, x):
        y = self.conv2(self.dwconv(self.conv1(x)))
        return F.relu(y + x, inplace=True)


class GELayerS2(nn.Module):
    def __init__(self, cin, cout, exp=6):
        super().__init__()
        mid = cin * exp
        self.conv1 = ConvBNReLU(cin, cin)
        self.dwconv1 = nn.Sequential(*_conv_bn(cin, mid, 3, stride=2, groups=cin))
        self.dwconv2 = nn.Sequential(*_conv_bn(mid, mid, 3, groups=mid, relu=True))
        self.conv2 = nn.Sequential(*_conv_bn(mid, cout, 1))
        self.shortcut = nn.Sequential(*_conv_bn(cin, cin, 3, stride=2, groups=cin), *_conv_bn(cin, cout, 1))

    def forward(self, x):
        y = self.conv2(self.dwconv2(self.dwconv1(self.conv1(x))))
        return F.relu(y + self.shortcut(x), inplace=True)


class SegmentBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.S1S2 = StemBlock()
        self.S3 = nn.Sequential(GELayerS2(16, 32), GELayerS1(32, 32))
        self.S4 = nn.Sequential(GELayerS2(32, 64), GELayerS1(64, 64))
        self.S5_4 = nn.Sequential(GELayerS2(64, 128), GELayerS1(128, 128), GELayerS1(128, 128),
                                  GELayerS1(128, 128))
        self.S5_5 = CEBlock()

    def forward(self, x):
        return self.S5_5(self.S5_4(self.S4(self.S3(self.S1S2(x)))))


class BGALayer(nn.Module):
    """Bilateral guided aggregation (nearest x4 upsampling as in the official code)."""

    def __init__(self):
        super().__init__()
        self.left1 = nn.Sequential(*_conv_bn(128, 128, 3, groups=128), nn.Conv2d(128, 128, 1, bias=False))
        self.left2 = nn.Sequential(*_conv_bn(128, 128, 3, stride=2), nn.AvgPool2d(3, 2, 1))
        self.right1 = nn.Sequential(*_conv_bn(128, 128, 3))
        self.right2 = nn.Sequential(*_conv_bn(128, 128, 3, groups=128), nn.Conv2d(128, 128, 1, bias=False))
        self.conv = nn.Sequential(*_conv_bn(128, 128, 3, relu=True))

    def forward(self, detail, semantic):
        up = F.interpolate(self.right1(semantic), scale_factor=4.0, mode="nearest")
        left = self.left1(detail) * torch.sigmoid(up)
        right = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        right = F.interpolate(right, scale_factor=4.0, mode="nearest")
        return self.conv(left + right)


class SegmentHead(nn.Module):
    """Main head: ConvBNReLU(128 -> 1024), 1x1 classifier (``conv_out.1``), bilinear x8 (done by the caller)."""

    def __init__(self, n_classes: int, cin: int = 128, mid: int = 1024):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Sequential(nn.Identity(), nn.Conv2d(mid, n_classes, 1, bias=True))

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNetV2(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.detail = DetailBranch()
        self.segment = SegmentBranch()
        self.bga = BGALayer()
        self.head = SegmentHead(n_classes)

    def forward_lowres(self, x):
        """Class logits at 1/8 of the input (the classifier output before the final upsampling)."""
        return self.head(self.bga(self.detail(x), self.segment(x)))

    def forward(self, x):
        lo = self.forward_lowres(x)
        return F.interpolate(lo, scale_factor=8.0, mode="bilinear", align_corners=False)
