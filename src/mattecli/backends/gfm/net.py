"""GFM (Glance and Focus Matting, Li et al., IJCV 2022) network, after JizhiziLi/GFM ``core/gfm.py``.

A shared encoder feeds a glance decoder (PSP-guided semantic map: TT 3 classes bg/transition/fg, FT and BT 2 classes)
and a focus decoder (detail alpha, U-Net skips); collaborative matting fuses them. ``rosta="RIM"`` has three glance
and three focus heads (TT, FT, BT) merged by the RoSTa Integration Module (1x1 conv -> SE -> 1x1 conv).

Backbones: ``r34`` / ``r101`` (torchvision ResNet: stem at 1/2, layer1..4 at 1/4..1/32), ``r34_2b`` (a new
stride-1 3x3 stem instead of the ResNet stem, layer1..4 at 1/1..1/8, two extra blocks of three BasicBlocks at 1/16 and
1/32), ``d121`` (torchvision DenseNet-121 without pool0: denseblockN + transitionN at 1/4..1/16, denseblock4 + 3x3 conv
1024->512 + BN + ReLU + 2x2 max pool at 1/32).

Parameter names are the official ones, minus the aliases the official module registers twice: the backbone object
(``resnet.*`` / ``densenet.*``) is kept, its re-registrations as ``encoderN.*`` are not (``convert.py`` checks the
copies). Modules the official forward never uses are kept so a checkpoint round-trips losslessly: ``resnet.fc``,
``densenet.classifier``, ``densenet.features.norm5``, and for ``r34_2b`` ``resnet.conv1``/``bn1`` and ``psp1``.
The network takes RGB in 0..255 (not normalised), H and W multiples of 32.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..layers.densenet import densenet121
from ..layers.reductions import first_argmax
from ..layers.resnet import BasicBlock, resnet34, resnet101

BACKBONES = ("r34", "r34_2b", "r101", "d121")
ROSTAS = ("TT", "FT", "BT", "RIM")


def conv_up_psp(cin: int, cout: int, up: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Upsample(scale_factor=up, mode="bilinear", align_corners=False))


def build_bb(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, dilation=2, padding=2), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 3, dilation=2, padding=2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, dilation=2, padding=2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def build_decoder(cin: int, mid1: int, mid2: int, cout: int, last_bnrelu: bool, upsample: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, mid1, 3, padding=1), nn.BatchNorm2d(mid1), nn.ReLU(inplace=True),
              nn.Conv2d(mid1, mid2, 3, padding=1), nn.BatchNorm2d(mid2), nn.ReLU(inplace=True),
              nn.Conv2d(mid2, cout, 3, padding=1)]
    if last_bnrelu:
        layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if upsample:
        layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
    return nn.Sequential(*layers)


class PSPModule(nn.Module):
    def __init__(self, features: int, out_features: int, sizes=(1, 3, 5)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d((s, s)), nn.Conv2d(features, features, 1, bias=False)) for s in sizes)
        self.bottleneck = nn.Conv2d(features * (len(sizes) + 1), out_features, 1)
        self.relu = nn.ReLU()

    def forward(self, feats):
        h, w = feats.shape[2:]
        priors = [F.interpolate(stage(feats), size=(h, w), mode="bilinear", align_corners=True)
                  for stage in self.stages]
        return self.relu(self.bottleneck(torch.cat(priors + [feats], 1)))


class SELayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y


def collaborative_matting(rosta: str, glance: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
    """Official fusion: idx = argmax over the glance channels (first max on ties)."""
    idx = first_argmax(glance, dim=1, keepdim=True).to(focus.dtype)
    if rosta == "TT":
        return focus * (idx == 1).to(focus.dtype) + (idx == 2).to(focus.dtype)
    if rosta == "BT":
        return torch.clamp(idx - focus, min=0)
    return torch.clamp(idx + focus, max=1)  # FT


class GFM(nn.Module):
    def __init__(self, backbone: str = "r34", rosta: str = "TT"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"GFM backbone must be one of {BACKBONES}, got {backbone!r}")
        if rosta not in ROSTAS:
            raise ValueError(f"GFM rosta must be one of {ROSTAS}, got {rosta!r}")
        self.backbone, self.rosta = backbone, rosta
        gd = 3 if rosta == "TT" else 2
        if backbone == "r34_2b":
            self.resnet = resnet34()
            self.encoder0 = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
            self.encoder5 = nn.Sequential(nn.MaxPool2d(2, 2, ceil_mode=True), *[BasicBlock(512, 512) for _ in range(3)])
            self.encoder6 = nn.Sequential(nn.MaxPool2d(2, 2, ceil_mode=True), *[BasicBlock(512, 512) for _ in range(3)])
            self.psp_module = PSPModule(512, 512, (1, 3, 5))
            self.psp6 = conv_up_psp(512, 512, 2)
            self.psp5 = conv_up_psp(512, 512, 4)
            self.psp4 = conv_up_psp(512, 256, 8)
            self.psp3 = conv_up_psp(512, 128, 16)
            self.psp2 = conv_up_psp(512, 64, 32)
            self.psp1 = conv_up_psp(512, 64, 32)  # registered by the official code, never used
            self.decoder6_g = build_decoder(1024, 512, 512, 512, True, True)
            self.decoder5_g = build_decoder(1024, 512, 512, 512, True, True)
            self.decoder4_g = build_decoder(1024, 512, 512, 256, True, True)
            self.decoder3_g = build_decoder(512, 256, 256, 128, True, True)
            self.decoder2_g = build_decoder(256, 128, 128, 64, True, True)
            self.decoder1_g = build_decoder(128, 64, 64, 64, True, False)
            self.bridge_block = build_bb(512, 512, 512)
            self.decoder6_f = build_decoder(1024, 512, 512, 512, True, True)
            self.decoder5_f = build_decoder(1024, 512, 512, 512, True, True)
            self.decoder4_f = build_decoder(1024, 512, 512, 256, True, True)
            self.decoder3_f = build_decoder(512, 256, 256, 128, True, True)
            self.decoder2_f = build_decoder(256, 128, 128, 64, True, True)
            self.decoder1_f = build_decoder(128, 64, 64, 64, True, False)

            def head(c):
                return nn.Sequential(nn.Conv2d(64, c, 3, padding=1))
        else:
            if backbone == "d121":
                self.densenet = densenet121()
                # index 0 of the official encoder4 is the aliased denseblock4 (kept under densenet.features)
                self.encoder4 = nn.Sequential(nn.Identity(), nn.Conv2d(1024, 512, 3, padding=1), nn.BatchNorm2d(512),
                                              nn.ReLU(inplace=True), nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                self.resnet = resnet34() if backbone == "r34" else resnet101()
            if backbone == "r101":
                self.psp_module = PSPModule(2048, 2048, (1, 3, 5))
                self.bridge_block = build_bb(2048, 2048, 2048)
                self.psp4 = conv_up_psp(2048, 1024, 2)
                self.psp3 = conv_up_psp(2048, 512, 4)
                self.psp2 = conv_up_psp(2048, 256, 8)
                self.psp1 = conv_up_psp(2048, 64, 16)
                self.decoder4_g = build_decoder(4096, 2048, 1024, 1024, True, True)
                self.decoder3_g = build_decoder(2048, 1024, 512, 512, True, True)
                self.decoder2_g = build_decoder(1024, 512, 256, 256, True, True)
                self.decoder1_g = build_decoder(512, 256, 128, 64, True, True)
                self.decoder4_f = build_decoder(4096, 2048, 1024, 1024, True, True)
                self.decoder3_f = build_decoder(2048, 1024, 512, 512, True, True)
                self.decoder2_f = build_decoder(1024, 512, 256, 256, True, True)
                self.decoder1_f = build_decoder(512, 256, 128, 64, True, True)
            else:
                self.psp_module = PSPModule(512, 512, (1, 3, 5))
                self.psp4 = conv_up_psp(512, 256, 2)
                self.psp3 = conv_up_psp(512, 128, 4)
                self.psp2 = conv_up_psp(512, 64, 8)
                self.psp1 = conv_up_psp(512, 64, 16)
                self.decoder4_g = build_decoder(1024, 512, 512, 256, True, True)
                self.decoder3_g = build_decoder(512, 256, 256, 128, True, True)
                self.decoder2_g = build_decoder(256, 128, 128, 64, True, True)
                self.decoder1_g = build_decoder(128, 64, 64, 64, True, True)
                self.bridge_block = build_bb(512, 512, 512)
                skip = (256, 128, 64) if backbone == "r34" else (512, 256, 128)  # e3, e2, e1 channels
                self.decoder4_f = build_decoder(1024, 512, 512, 256, True, True)
                self.decoder3_f = build_decoder(256 + skip[0], 256, 256, 128, True, True)
                self.decoder2_f = build_decoder(128 + skip[1], 128, 128, 64, True, True)
                self.decoder1_f = build_decoder(64 + skip[2], 64, 64, 64, True, True)

            def head(c):
                return build_decoder(128, 64, 64, c, False, True)
        if rosta == "RIM":
            self.decoder0_g_tt, self.decoder0_g_ft, self.decoder0_g_bt = head(3), head(2), head(2)
            self.decoder0_f_tt, self.decoder0_f_ft, self.decoder0_f_bt = head(1), head(1), head(1)
            self.rim = nn.Sequential(nn.Conv2d(3, 16, 1), SELayer(16), nn.Conv2d(16, 1, 1))
        else:
            self.decoder0_g = head(gd)
            self.decoder0_f = head(1)

    # -- encoder ---------------------------------------------------------------------------------------------
    def encode(self, x) -> list:
        if self.backbone == "d121":
            f = self.densenet.features
            e0 = f.relu0(f.norm0(f.conv0(x)))
            e1 = f.transition1(f.denseblock1(e0))
            e2 = f.transition2(f.denseblock2(e1))
            e3 = f.transition3(f.denseblock3(e2))
            e4 = f.denseblock4(e3)
            for i in range(1, len(self.encoder4)):
                e4 = self.encoder4[i](e4)
            return [e0, e1, e2, e3, e4]
        r = self.resnet
        if self.backbone == "r34_2b":
            e0 = self.encoder0(x)
            e1 = r.layer1(e0)
        else:
            e0 = r.relu(r.bn1(r.conv1(x)))
            e1 = r.layer1(r.maxpool(e0))
        e2 = r.layer2(e1)
        e3 = r.layer3(e2)
        e4 = r.layer4(e3)
        if self.backbone == "r34_2b":
            e5 = self.encoder5(e4)
            return [e0, e1, e2, e3, e4, e5, self.encoder6(e5)]
        return [e0, e1, e2, e3, e4]

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(self, x) -> dict:
        """x: [B,3,H,W] RGB in 0..255. Returns a dict of logits, sigmoid maps and fused alpha.

        TT/FT/BT: ``glance_logits, focus_logits, glance, focus, fusion``; RIM: the same names with suffixes
        ``_tt, _ft, _bt`` plus ``fusion_rim`` (raw RIM output, neither clamped nor passed through a sigmoid).
        """
        e = self.encode(x)
        two_b = self.backbone == "r34_2b"
        if two_b:
            e0, e1, e2, e3, e4, e5, e6 = e
            psp = self.psp_module(e6)
            d6_g = self.decoder6_g(torch.cat((psp, e6), 1))
            d5_g = self.decoder5_g(torch.cat((self.psp6(psp), d6_g), 1))
            d4_g = self.decoder4_g(torch.cat((self.psp5(psp), d5_g), 1))
        else:
            e0, e1, e2, e3, e4 = e
            psp = self.psp_module(e4)
            d4_g = self.decoder4_g(torch.cat((psp, e4), 1))
        d3_g = self.decoder3_g(torch.cat((self.psp4(psp), d4_g), 1))
        d2_g = self.decoder2_g(torch.cat((self.psp3(psp), d3_g), 1))
        d1_g = self.decoder1_g(torch.cat((self.psp2(psp), d2_g), 1))
        g_in = d1_g if two_b else torch.cat((self.psp1(psp), d1_g), 1)

        if two_b:
            bb = self.bridge_block(e6)
            d6_f = self.decoder6_f(torch.cat((bb, e6), 1))
            d5_f = self.decoder5_f(torch.cat((d6_f, e5), 1))
            d4_f = self.decoder4_f(torch.cat((d5_f, e4), 1))
        else:
            bb = self.bridge_block(e4)
            d4_f = self.decoder4_f(torch.cat((bb, e4), 1))
        d3_f = self.decoder3_f(torch.cat((d4_f, e3), 1))
        d2_f = self.decoder2_f(torch.cat((d3_f, e2), 1))
        d1_f = self.decoder1_f(torch.cat((d2_f, e1), 1))
        f_in = d1_f if two_b else torch.cat((d1_f, e0), 1)

        out = {}
        if self.rosta == "RIM":
            fusions = []
            for r in ("tt", "ft", "bt"):
                gl = getattr(self, f"decoder0_g_{r}")(g_in)
                fl = getattr(self, f"decoder0_f_{r}")(f_in)
                g, f = torch.sigmoid(gl), torch.sigmoid(fl)
                fu = collaborative_matting(r.upper(), g, f)
                out.update({f"glance_logits_{r}": gl, f"focus_logits_{r}": fl, f"glance_{r}": g, f"focus_{r}": f,
                            f"fusion_{r}": fu})
                fusions.append(fu)
            out["fusion_rim"] = self.rim(torch.cat(fusions, 1))
            return out
        gl, fl = self.decoder0_g(g_in), self.decoder0_f(f_in)
        g, f = torch.sigmoid(gl), torch.sigmoid(fl)
        out.update({"glance_logits": gl, "focus_logits": fl, "glance": g, "focus": f,
                    "fusion": collaborative_matting(self.rosta, g, f)})
        return out
