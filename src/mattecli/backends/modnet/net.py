"""MODNet (Ke et al., AAAI 2022) re-written with the official parameter names.

Follows github.com/ZHKKKe/MODNet @ 28165a45 (src/models/modnet.py, backbones/mobilenetv2.py, wrapper.py).
MODNet uses its own MobileNetV2 (from Human-Segmentation-PyTorch), not torchvision's: the inverted-residual blocks
are flat ``nn.Sequential``s (``features.1.conv.0/1/3/4``, ``features.N.conv.0/1/3/4/6/7``), and features 18 is the
1x1 conv to 1280 channels, which MODNet keeps (enc32x).

The official module registers the backbone twice (``backbone`` and ``lr_branch.backbone`` are one object), so its
state dict lists every backbone tensor twice. Ours registers it once, as ``backbone``; the converter folds the alias
copies (see convert.py).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


# -- MODNet's MobileNetV2 ----------------------------------------------------------------------------------------
def _make_divisible(v, divisor, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn(inp, oup, stride, k=3):
    return nn.Sequential(nn.Conv2d(inp, oup, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(oup),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expansion):
        super().__init__()
        hidden = round(inp * expansion)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))

    def __init__(self, in_channels: int = 3):
        super().__init__()
        inp = _make_divisible(32, 8)
        feats: list[nn.Module] = [_conv_bn(in_channels, inp, 2)]
        for t, c, n, s in self.SETTING:
            out = _make_divisible(int(c), 8)
            for i in range(n):
                feats.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        feats.append(_conv_bn(inp, 1280, 1, k=1))
        self.features = nn.Sequential(*feats)


class MobileNetV2Backbone(nn.Module):
    enc_channels = (16, 24, 32, 96, 1280)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.model = MobileNetV2(in_channels)

    def forward(self, x):
        f = self.model.features
        outs = []
        for lo, hi in ((0, 2), (2, 4), (4, 7), (7, 14), (14, 19)):
            for i in range(lo, hi):
                x = f[i](x)
            outs.append(x)
        return outs  # enc2x, enc4x, enc8x, enc16x, enc32x


# -- MODNet blocks -----------------------------------------------------------------------------------------------
class IBNorm(nn.Module):
    """BatchNorm on the first C//2 channels, InstanceNorm (no affine, no running stats) on the rest."""

    def __init__(self, channels):
        super().__init__()
        self.bnorm_channels = int(channels / 2)
        self.inorm_channels = channels - self.bnorm_channels
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(self.inorm_channels, affine=False)

    def forward(self, x):
        bn = self.bnorm(x[:, :self.bnorm_channels].contiguous())
        inn = self.inorm(x[:, self.bnorm_channels:].contiguous())
        return torch.cat((bn, inn), 1)


class Conv2dIBNormRelu(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, with_ibn=True, with_relu=True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                             bias=True)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class SEBlock(nn.Module):
    def __init__(self, in_channels, out_channels, reduction=1):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, int(in_channels // reduction), bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(int(in_channels // reduction), out_channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c = x.shape[:2]
        w = self.fc(self.pool(x).view(b, c)).view(b, c, 1, 1)
        return x * w.expand_as(x)


def _up(x, scale):
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class LRBranch(nn.Module):
    """Low-resolution (semantic) branch. The backbone is passed at call time (registered once, on MODNet)."""

    def __init__(self, enc_channels):
        super().__init__()
        self.se_block = SEBlock(enc_channels[4], enc_channels[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc_channels[4], enc_channels[3], 5, stride=1, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc_channels[3], enc_channels[2], 5, stride=1, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc_channels[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def forward(self, enc_features, inference: bool):
        enc2x, enc4x, enc32x = enc_features[0], enc_features[1], enc_features[4]
        enc32x = self.se_block(enc32x)
        lr16x = self.conv_lr16x(_up(enc32x, 2))
        lr8x = self.conv_lr8x(_up(lr16x, 2))
        pred_semantic = None if inference else torch.sigmoid(self.conv_lr(lr8x))
        return pred_semantic, lr8x, [enc2x, enc4x]


class HRBranch(nn.Module):
    def __init__(self, hr, enc_channels):
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc_channels[0], hr, 1, stride=1, padding=0)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc_channels[1], hr, 1, stride=1, padding=0)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1)
        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1),
        )
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, 1, 1, stride=1, padding=0, with_ibn=False, with_relu=False),
        )

    def forward(self, img, enc2x, enc4x, lr8x, inference: bool):
        img2x = _up(img, 1 / 2)
        img4x = _up(img, 1 / 4)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        enc4x = self.tohr_enc4x(enc4x)
        hr4x = self.conv_enc4x(torch.cat((hr4x, enc4x), dim=1))
        lr4x = _up(lr8x, 2)
        hr4x = self.conv_hr4x(torch.cat((hr4x, lr4x, img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((_up(hr4x, 2), enc2x), dim=1))
        pred_detail = None
        if not inference:
            hr = self.conv_hr(torch.cat((_up(hr2x, 2), img), dim=1))
            pred_detail = torch.sigmoid(hr)
        return pred_detail, hr2x


class FusionBranch(nn.Module):
    def __init__(self, hr, enc_channels):
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc_channels[2], hr, 5, stride=1, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, int(hr / 2), 3, stride=1, padding=1),
            Conv2dIBNormRelu(int(hr / 2), 1, 1, stride=1, padding=0, with_ibn=False, with_relu=False),
        )

    def forward(self, img, lr8x, hr2x):
        lr4x = self.conv_lr4x(_up(lr8x, 2))
        lr2x = _up(lr4x, 2)
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        f = self.conv_f(torch.cat((_up(f2x, 2), img), dim=1))
        return torch.sigmoid(f)


class MODNet(nn.Module):
    """forward(img in [-1,1], inference) -> (pred_semantic, pred_detail, pred_matte) as the official module."""

    def __init__(self, in_channels: int = 3, hr_channels: int = 32):
        super().__init__()
        self.backbone = MobileNetV2Backbone(in_channels)
        enc = MobileNetV2Backbone.enc_channels
        self.lr_branch = LRBranch(enc)
        self.hr_branch = HRBranch(hr_channels, enc)
        self.f_branch = FusionBranch(hr_channels, enc)

    def forward(self, img, inference: bool = True):
        pred_semantic, lr8x, (enc2x, enc4x) = self.lr_branch(self.backbone(img), inference)
        pred_detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        pred_matte = self.f_branch(img, lr8x, hr2x)
        return pred_semantic, pred_detail, pred_matte
