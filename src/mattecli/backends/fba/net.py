"""FBA Matting network (Forte & Pitie 2020): ResNet-50 GN+WS encoder (output stride 8, 11 input channels) and the
fba_decoder with its F/B/alpha fusion. Parameter names follow the official ``MattingModule`` so ``FBA.pth`` loads
as is. Architecture after MarcoForte/FBA_Matting@8dd100d (networks/models.py)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..layers.resnet import group_norm, resnet50
from ..layers.ws_conv import WSConv2d


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c)


class FBAEncoder(nn.Module):
    """Dilated ResNet-50 (GN + WS). ``forward`` returns ``[input, stem, layer1, layer2, layer3, layer4]``."""

    def __init__(self, in_channels: int = 11):
        super().__init__()
        r = resnet50(in_channels=in_channels, num_classes=None, norm_layer=group_norm(32), conv_layer=WSConv2d,
                     replace_stride_with_dilation=[False, True, True], maxpool_indices=True)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4

    def forward(self, x):
        out = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        out.append(x)
        x, _ = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out


def fba_fusion(alpha, img, F_, B):
    F_ = alpha * img + (1 - alpha ** 2) * F_ - alpha * (1 - alpha) * B
    B = (1 - alpha) * img + (2 * alpha - alpha ** 2) * B - alpha * (1 - alpha) * F_
    F_ = torch.clamp(F_, 0, 1)
    B = torch.clamp(B, 0, 1)
    la = 0.1
    alpha = (alpha * la + torch.sum((img - B) * (F_ - B), 1, keepdim=True)) / (
        torch.sum((F_ - B) * (F_ - B), 1, keepdim=True) + la)
    alpha = torch.clamp(alpha, 0, 1)
    return alpha, F_, B


class FBADecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.ppm = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(s), WSConv2d(2048, 256, kernel_size=1, bias=True), _gn(256),
                          nn.LeakyReLU())
            for s in (1, 2, 3, 6)
        ])
        self.conv_up1 = nn.Sequential(
            WSConv2d(2048 + 4 * 256, 256, kernel_size=3, padding=1, bias=True), _gn(256), nn.LeakyReLU(),
            WSConv2d(256, 256, kernel_size=3, padding=1), _gn(256), nn.LeakyReLU())
        self.conv_up2 = nn.Sequential(WSConv2d(512, 256, kernel_size=3, padding=1, bias=True), _gn(256),
                                      nn.LeakyReLU())
        self.conv_up3 = nn.Sequential(WSConv2d(256 + 64, 64, kernel_size=3, padding=1, bias=True), _gn(64),
                                      nn.LeakyReLU())
        self.conv_up4 = nn.Sequential(
            nn.Conv2d(64 + 3 + 3 + 2, 32, kernel_size=3, padding=1, bias=True), nn.LeakyReLU(),
            nn.Conv2d(32, 16, kernel_size=3, padding=1, bias=True), nn.LeakyReLU(),
            nn.Conv2d(16, 7, kernel_size=1, padding=0, bias=True))

    def forward(self, conv_out, img, two_chan_trimap, return_raw: bool = False):
        conv5 = conv_out[-1]
        size = conv5.shape[2:]
        ppm_out = [conv5] + [F.interpolate(p(conv5), size, mode="bilinear", align_corners=False) for p in self.ppm]
        x = self.conv_up1(torch.cat(ppm_out, 1))
        del ppm_out
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv_up2(torch.cat((x, conv_out[-4]), 1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv_up3(torch.cat((x, conv_out[-5]), 1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = torch.cat((x, conv_out[-6][:, :3], img, two_chan_trimap), 1)
        raw = self.conv_up4(x)
        alpha = torch.clamp(raw[:, 0:1], 0, 1)
        fg = torch.sigmoid(raw[:, 1:4])
        bg = torch.sigmoid(raw[:, 4:7])
        alpha, fg, bg = fba_fusion(alpha, img, fg, bg)
        out = torch.cat((alpha, fg, bg), 1)
        return (out, raw) if return_raw else out


class FBANet(nn.Module):
    """``forward(image, two_chan_trimap, image_n, trimap_transformed)`` -> (B,7,H,W) = [alpha, F rgb, B rgb]."""

    def __init__(self):
        super().__init__()
        self.encoder = FBAEncoder(11)
        self.decoder = FBADecoder()

    def forward(self, image, two_chan_trimap, image_n, trimap_transformed, return_raw: bool = False):
        x = torch.cat((image_n, trimap_transformed, two_chan_trimap), 1)
        conv_out = self.encoder(x)
        return self.decoder(conv_out, image, two_chan_trimap, return_raw=return_raw)
