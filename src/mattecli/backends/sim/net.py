"""SIM, Semantic Image Matting (Sun, Tang & Tai, CVPR 2021): matting network and semantic-trimap classifier.

After nowsyn/SIM@dc5ed5a (networks/model.py, util.py, ppm.py, layers_WS.py, resnet_bn.py, resnet.py); parameter
names as in the official modules, so ``ckpt_best.pth`` and ``classifier_resnet50_best.pth.tar`` load unchanged.

Matting network: ResNet-50-v1c (deep stem, BatchNorm, dilated to output stride 8) taking
cat(image_n, 6 click maps, 2-channel trimap) (11 ch); the 20-channel semantic trimap goes through ``conv1_side``
(7x7/2) and is added to conv1's output before bn1. Decoder: ASPP(12, 24, 36) + weight-standardised convs with
BatchNorm (standardised on the fly, SIM's variant), alpha head ``conv_up4_alpha`` clamped to [0, 1]. The F/B and
attention heads (training only) are kept so the checkpoint loads strictly and can be inspected (``aux=True``).

Classifier: torchvision-style ResNet-50 with 4 input channels (image_n + trimap/255) and 20 classes; returns
logits, the class activation maps ``einsum('dc,nchw->ndhw', fc.weight, layer4)`` and the pooled features.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..layers.resnet import resnet50
from ..layers.resnet_v1c import ResNetV1c
from ..layers.ws_conv import WSConv2dFwd as WSConv

CLASSES = ("defocus", "fire", "fur", "glass_ice", "hair_easy", "hair_hard", "insect", "motion", "net",
           "plant_flower", "plant_leaf", "plant_tree", "plastic_bag", "sharp", "smoke_cloud", "spider_web",
           "texture_holed", "texture_smooth", "water_drop", "water_spray")


class SIMEncoder(ResNetV1c):
    def __init__(self, in_channels: int = 11, num_classes: int = 20):
        super().__init__(in_channels=in_channels, replace_stride_with_dilation=[False, True, True],
                         maxpool_indices=True)
        self.conv1_side = nn.Conv2d(num_classes, 64, 7, 2, 3, bias=False)

    def forward(self, x, smap):
        return [x] + self.forward_features(x, add=self.conv1_side(smap))


def _bn(c):
    return nn.BatchNorm2d(c)


class ASPPPooling(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.AdaptiveAvgPool2d(1), WSConv(cin, cout, 1, bias=False), _bn(cout), nn.ReLU())

    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin=2048, rates=(12, 24, 36), cout=256):
        super().__init__()
        mods = [nn.Sequential(WSConv(cin, cout, 1, bias=False), _bn(cout), nn.ReLU())]
        for r in rates:
            mods.append(nn.Sequential(WSConv(cin, cout, 3, padding=r, dilation=r, bias=False), _bn(cout), nn.ReLU()))
        mods.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(mods)
        self.project = nn.Sequential(WSConv(len(mods) * cout, cout, 1, bias=False), _bn(cout), nn.ReLU(),
                                     nn.Dropout(0.5))

    def forward(self, x):
        return self.project(torch.cat([c(x) for c in self.convs], dim=1))


def _head(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, 32, 3, padding=1, bias=True), nn.LeakyReLU(),
                         nn.Conv2d(32, 16, 3, padding=1, bias=True), nn.LeakyReLU(),
                         nn.Conv2d(16, cout, 1, padding=0, bias=False))


class SIMDecoder(nn.Module):
    def __init__(self, atrous_rates=(12, 24, 36), aspp_channel=256):
        super().__init__()
        self.global_module = ASPP(2048, atrous_rates, aspp_channel)
        self.conv_up1 = nn.Sequential(
            WSConv(2048 + aspp_channel, 256, 3, padding=1, bias=True), _bn(256), nn.LeakyReLU(),
            WSConv(256, 256, 3, padding=1), _bn(256), nn.LeakyReLU())
        self.conv_up2 = nn.Sequential(WSConv(512, 256, 3, padding=1, bias=True), _bn(256), nn.LeakyReLU())
        self.conv_up3 = nn.Sequential(WSConv(256 + 128, 64, 3, padding=1, bias=True), _bn(64), nn.LeakyReLU())
        self.conv_up4_alpha = _head(64 + 3 + 3 + 2, 1)
        self.conv_up4_fb = _head(64 + 3 + 3 + 2, 6)
        self.conv_up4_attn = _head(64, 3)

    def forward(self, conv_out, img, two_chan_trimap, aux: bool = False):
        conv5 = conv_out[-1]
        x = torch.cat([conv5, self.global_module(conv5)], 1)
        x = self.conv_up1(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv_up2(torch.cat((x, conv_out[-4]), 1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv_up3(torch.cat((x, conv_out[-5]), 1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = torch.cat((x, conv_out[-6][:, :3], img, two_chan_trimap), 1)
        raw = self.conv_up4_alpha(y)
        out = {"alpha": torch.clamp(raw, 0, 1)}
        if aux:
            fb = self.conv_up4_fb(y)
            attn = torch.sigmoid(self.conv_up4_attn(x))
            out.update(alpha_raw=raw, fg=torch.sigmoid(fb[:, 0:3]), bg=torch.sigmoid(fb[:, 3:6]),
                       r1=attn[:, 0:1], r2=attn[:, 1:2], r3=attn[:, 2:3])
        return out


class SIMNet(nn.Module):
    """``forward(image, two_chan_trimap, image_n, trimap_transformed, smap)`` -> {'alpha': (N,1,H,W)}."""

    def __init__(self):
        super().__init__()
        self.encoder = SIMEncoder(11, 20)
        self.decoder = SIMDecoder()

    def forward(self, image, two_chan_trimap, image_n, trimap_transformed, smap, aux: bool = False):
        x = torch.cat((image_n, trimap_transformed, two_chan_trimap), 1)
        conv_out = self.encoder(x, smap)
        return self.decoder(conv_out, image, two_chan_trimap, aux=aux)


class SIMClassifier(nn.Module):
    """ResNet-50 (4 input channels, 20 classes). Keys without prefix: conv1, bn1, layer1..4, fc."""

    def __init__(self, in_channels: int = 4, num_classes: int = 20):
        super().__init__()
        r = resnet50(in_channels=in_channels, num_classes=num_classes)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        self.fc = r.fc

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        cam = torch.einsum("dc,nchw->ndhw", self.fc.weight, x)
        pooled = F.adaptive_avg_pool2d(x, 1)
        logits = self.fc(torch.flatten(pooled, 1))
        return logits, cam, pooled
