"""Deep Image Matting networks (two community ports; there is no official Adobe code).

- :class:`DIMVGG16`: huochaitiantang/pytorch-deep-image-matting @ f5f909d, ``core/net.py`` ``VGG16`` stage 1 with the
  skip additions (conv6_1 3x3). Parameter names are the official ones.
- :class:`DIMSegNet`: foamliu/Deep-Image-Matting-PyTorch @ db6a96d, ``models.py`` ``DIMModel`` (SegNet-style,
  BatchNorm, no ReLU in the decoder). Parameter names are the official ones (``down1.conv1.cbr_unit.0.weight`` ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin, cout, k):
    return nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=k // 2, bias=True)


def max_unpool(x, idx, size):
    """``F.max_unpool2d(x, idx, 2, 2, output_size=size)``; while tracing for ONNX (backends/runtimes) the same
    scatter of each value to its flat index, in operators the exporter knows (free sizes)."""
    if torch.jit.is_tracing():
        n, c = x.shape[0], x.shape[1]
        out = x.new_zeros((n, c, size[0] * size[1]))
        out = out.scatter(2, idx.flatten(2), x.flatten(2))
        return out.view(n, c, size[0], size[1])
    return F.max_unpool2d(x, idx, 2, 2, output_size=size)


class DIMVGG16(nn.Module):
    """Encoder-decoder of the DIM paper (stage 1). Input [B,4,H,W] (H, W multiples of 32), output [B,1,H,W] alpha."""

    _ENC = (("conv1_1", 4, 64), ("conv1_2", 64, 64),
            ("conv2_1", 64, 128), ("conv2_2", 128, 128),
            ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
            ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
            ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512))
    _STAGES = (("conv1_1", "conv1_2"), ("conv2_1", "conv2_2"), ("conv3_1", "conv3_2", "conv3_3"),
               ("conv4_1", "conv4_2", "conv4_3"), ("conv5_1", "conv5_2", "conv5_3"))

    def __init__(self):
        super().__init__()
        for name, cin, cout in self._ENC:
            setattr(self, name, _conv(cin, cout, 3))
        self.conv6_1 = _conv(512, 512, 3)
        self.deconv6_1 = _conv(512, 512, 1)
        self.deconv5_1 = _conv(512, 512, 5)
        self.deconv4_1 = _conv(512, 256, 5)
        self.deconv3_1 = _conv(256, 128, 5)
        self.deconv2_1 = _conv(128, 64, 5)
        self.deconv1_1 = _conv(64, 64, 5)
        self.deconv1 = _conv(64, 1, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, indices = [], []
        for stage in self._STAGES:
            for name in stage:
                x = F.relu(getattr(self, name)(x))
            skips.append(x)
            x, idx = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
            indices.append(idx)
        x = F.relu(self.conv6_1(x))
        x = F.relu(self.deconv6_1(x))
        for dec, skip, idx in zip((self.deconv5_1, self.deconv4_1, self.deconv3_1, self.deconv2_1, self.deconv1_1),
                                  reversed(skips), reversed(indices)):
            x = max_unpool(x, idx, skip.shape[-2:]) + skip
            x = F.relu(dec(x))
        return torch.sigmoid(self.deconv1(x))


class _CBR(nn.Module):
    """conv2DBatchNormRelu: ``cbr_unit`` = Sequential(conv, BN[, ReLU])."""

    def __init__(self, cin, cout, k, relu=True):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=k // 2, bias=True), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        self.cbr_unit = nn.Sequential(*layers)

    def forward(self, x):
        return self.cbr_unit(x)


class _Down(nn.Module):
    def __init__(self, cin, cout, n):
        super().__init__()
        self.n = n
        self.conv1 = _CBR(cin, cout, 3)
        self.conv2 = _CBR(cout, cout, 3)
        if n == 3:
            self.conv3 = _CBR(cout, cout, 3)

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        if self.n == 3:
            x = self.conv3(x)
        shape = x.shape[-2:]
        x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        return x, idx, shape


class _Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _CBR(cin, cout, 5, relu=False)

    def forward(self, x, idx, shape):
        return self.conv(max_unpool(x, idx, shape))


class DIMSegNet(nn.Module):
    """foamliu's DIMModel(n_classes=1, in_channels=4). Input [B,4,H,W] (any size), output [B,1,H,W] alpha."""

    def __init__(self):
        super().__init__()
        self.down1 = _Down(4, 64, 2)
        self.down2 = _Down(64, 128, 2)
        self.down3 = _Down(128, 256, 3)
        self.down4 = _Down(256, 512, 3)
        self.down5 = _Down(512, 512, 3)
        self.up5 = _Up(512, 512)
        self.up4 = _Up(512, 256)
        self.up3 = _Up(256, 128)
        self.up2 = _Up(128, 64)
        self.up1 = _Up(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = []
        for down in (self.down1, self.down2, self.down3, self.down4, self.down5):
            x, idx, shape = down(x)
            saved.append((idx, shape))
        for up, (idx, shape) in zip((self.up5, self.up4, self.up3, self.up2, self.up1), reversed(saved)):
            x = up(x, idx, shape)
        return torch.sigmoid(x)
