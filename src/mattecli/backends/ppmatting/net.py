"""PP-Matting (Chen et al. 2022) with the HRNet-W18 backbone, re-written in PyTorch.

Module names follow PaddleSeg's ``Matting/ppmatting`` structure (HRNet from ``ppmatting/models/backbone/hrnet.py``,
SCB / HRDB / gated spatial convolutions from ``ppmatting/models/ppmatting.py``), so a ``.pdparams`` state dict maps
onto ours by renaming only the BatchNorm statistics (``_mean``/``_variance`` -> ``running_mean``/``running_var``).

Paddle's ``padding='same'`` (used throughout this HRNet) pads like TensorFlow: for a stride-2 3x3 convolution on an
even input the extra row/column goes to the bottom/right only. :class:`SameConv2d` reproduces that.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.reductions import first_argmax


class SameConv2d(nn.Conv2d):
    """Conv2d with Paddle/TensorFlow 'SAME' padding (asymmetric when the total is odd: extra on bottom/right)."""

    def __init__(self, *args, **kwargs):
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)

    def forward(self, x):
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin, cout, k, stride=1, padding="same", dilation=1, bias=True):
    if padding == "same":
        return SameConv2d(cin, cout, k, stride=stride, dilation=dilation, bias=bias)
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=bias)


class ConvBN(nn.Module):
    """paddleseg.models.layers.ConvBN / ConvBNReLU (``_conv``, ``_batch_norm``)."""

    def __init__(self, cin, cout, k, stride=1, padding="same", dilation=1, bias=True, relu=False):
        super().__init__()
        self._conv = _conv(cin, cout, k, stride, padding, dilation, bias)
        self._batch_norm = nn.BatchNorm2d(cout, eps=1e-5)
        self.relu = relu

    def forward(self, x):
        x = self._batch_norm(self._conv(x))
        return F.relu(x) if self.relu else x


def ConvBNReLU(*args, **kwargs):
    return ConvBN(*args, relu=True, **kwargs)


# ---------------------------------------------------------------------------------------------------- HRNet
class HRBottleneck(nn.Module):
    def __init__(self, cin, filters, downsample):
        super().__init__()
        self.conv1 = ConvBNReLU(cin, filters, 1, bias=False)
        self.conv2 = ConvBNReLU(filters, filters, 3, bias=False)
        self.conv3 = ConvBN(filters, filters * 4, 1, bias=False)
        self.conv_down = ConvBN(cin, filters * 4, 1, bias=False) if downsample else None

    def forward(self, x):
        y = self.conv3(self.conv2(self.conv1(x)))
        res = self.conv_down(x) if self.conv_down is not None else x
        return F.relu(y + res)


class HRBasic(nn.Module):
    def __init__(self, cin, filters):
        super().__init__()
        self.conv1 = ConvBNReLU(cin, filters, 3, bias=False)
        self.conv2 = ConvBN(filters, filters, 3, bias=False)

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + x)


class Layer1(nn.Module):
    def __init__(self, cin, filters, blocks, name="layer2"):
        super().__init__()
        self.names = []
        for i in range(blocks):
            n = f"bb_{name}_{i + 1}"
            self.add_module(n, HRBottleneck(cin if i == 0 else filters * 4, filters, downsample=(i == 0)))
            self.names.append(n)

    def forward(self, x):
        for n in self.names:
            x = getattr(self, n)(x)
        return x


class Transition(nn.Module):
    def __init__(self, cins, couts, name):
        super().__init__()
        self.slots = []
        for i, cout in enumerate(couts):
            n = f"transition_{name}_layer_{i + 1}"
            if i < len(cins):
                if cins[i] != cout:
                    self.add_module(n, ConvBNReLU(cins[i], cout, 3, bias=False))
                    self.slots.append(n)
                else:
                    self.slots.append(None)
            else:
                self.add_module(n, ConvBNReLU(cins[-1], cout, 3, stride=2, bias=False))
                self.slots.append(n)

    def forward(self, xs):
        outs = []
        for i, n in enumerate(self.slots):
            if n is None:
                outs.append(xs[i])
            else:
                outs.append(getattr(self, n)(xs[i] if i < len(xs) else xs[-1]))
        return outs


class Branches(nn.Module):
    def __init__(self, blocks, cins, couts, name):
        super().__init__()
        self.names = []
        for i, cout in enumerate(couts):
            row = []
            for j in range(blocks[i]):
                n = f"bb_{name}_branch_layer_{i + 1}_{j + 1}"
                self.add_module(n, HRBasic(cins[i] if j == 0 else cout, cout))
                row.append(n)
            self.names.append(row)

    def forward(self, xs):
        outs = []
        for x, row in zip(xs, self.names):
            for n in row:
                x = getattr(self, n)(x)
            outs.append(x)
        return outs


class FuseLayers(nn.Module):
    def __init__(self, cins, couts, name):
        super().__init__()
        self.n = len(cins)
        self.plan = []  # (i, j, [module names])
        for i in range(self.n):
            for j in range(self.n):
                if j > i:
                    m = f"residual_{name}_layer_{i + 1}_{j + 1}"
                    self.add_module(m, ConvBN(cins[j], couts[i], 1, bias=False))
                    self.plan.append((i, j, [m]))
                elif j < i:
                    pre = cins[j]
                    names = []
                    for k in range(i - j):
                        m = f"residual_{name}_layer_{i + 1}_{j + 1}_{k + 1}"
                        if k == i - j - 1:
                            self.add_module(m, ConvBN(pre, couts[i], 3, stride=2, bias=False))
                            pre = couts[i]
                        else:
                            self.add_module(m, ConvBNReLU(pre, couts[j], 3, stride=2, bias=False))
                            pre = couts[j]
                        names.append(m)
                    self.plan.append((i, j, names))

    def forward(self, xs):
        outs = []
        for i in range(self.n):
            res = xs[i]
            for (pi, j, names) in self.plan:
                if pi != i:
                    continue
                y = xs[j]
                for m in names:
                    y = getattr(self, m)(y)
                if j > i:
                    y = F.interpolate(y, size=res.shape[-2:], mode="bilinear", align_corners=False)
                res = res + y
            outs.append(F.relu(res))
        return outs


class HRModule(nn.Module):
    def __init__(self, channels, blocks, name):
        super().__init__()
        self.branches_func = Branches(blocks, channels, channels, name)
        self.fuse_func = FuseLayers(channels, channels, name)

    def forward(self, xs):
        return self.fuse_func(self.branches_func(xs))


class Stage(nn.Module):
    def __init__(self, channels, modules, blocks, name):
        super().__init__()
        self.names = []
        for i in range(modules):
            n = f"stage_{name}_{i + 1}"
            self.add_module(n, HRModule(channels, blocks, f"{name}_{i + 1}"))
            self.names.append(n)

    def forward(self, xs):
        for n in self.names:
            xs = getattr(self, n)(xs)
        return xs


class HRNetW18(nn.Module):
    """ppmatting HRNet_W18: returns [stem conv1 output (1/2, 64 ch)] + the four stage-4 branches."""

    feat_channels = (64, 18, 36, 72, 144)

    def __init__(self):
        super().__init__()
        self.conv_layer1_1 = ConvBNReLU(3, 64, 3, stride=2, bias=False)
        self.conv_layer1_2 = ConvBNReLU(64, 64, 3, stride=2, bias=False)
        self.la1 = Layer1(64, 64, 4)
        self.tr1 = Transition([256], [18, 36], "tr1")
        self.st2 = Stage([18, 36], 1, [4, 4], "st2")
        self.tr2 = Transition([18, 36], [18, 36, 72], "tr2")
        self.st3 = Stage([18, 36, 72], 4, [4, 4, 4], "st3")
        self.tr3 = Transition([18, 36, 72], [18, 36, 72, 144], "tr3")
        self.st4 = Stage([18, 36, 72, 144], 3, [4, 4, 4, 4], "st4")

    def forward(self, x):
        c1 = self.conv_layer1_1(x)
        x = self.la1(self.conv_layer1_2(c1))
        x = self.st2(self.tr1([x]))
        x = self.st3(self.tr2(x))
        x = self.st4(self.tr3(x))
        return [c1] + x


# ---------------------------------------------------------------------------------------------------- heads
class PPModule(nn.Module):
    """Pyramid pooling (bins 1, 3, 5, no dimension reduction); concatenation order [input, bin5, bin3, bin1]."""

    def __init__(self, cin, cout, bins=(1, 3, 5)):
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNReLU(cin, cin, 1)) for b in bins)
        self.conv_bn_relu2 = ConvBNReLU(cin * (len(bins) + 1), cout, 3, padding=1)

    def forward(self, x):
        pooled = [F.interpolate(s(x), size=x.shape[2:], mode="bilinear", align_corners=False) for s in self.stages]
        return self.conv_bn_relu2(torch.cat([x] + pooled[::-1], 1))


def _up(x, factor):
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class _UpStage(nn.Module):
    def __init__(self, cin, mid, cout, dil):
        super().__init__()
        self.add_module("0", ConvBNReLU(cin, mid, 3, padding=1))
        self.add_module("1", ConvBNReLU(mid, mid, 3, padding=dil, dilation=dil))
        self.add_module("2", ConvBNReLU(mid, cout, 3, padding=dil, dilation=dil))

    def forward(self, x):
        for i in range(3):
            x = self._modules[str(i)](x)
        return _up(x, 2)


class _LastStage(nn.Module):
    def __init__(self, cin, mid, cout):
        super().__init__()
        self.add_module("0", ConvBNReLU(cin, mid, 3, padding=1))
        self.add_module("1", ConvBNReLU(mid, mid, 3, padding=1))
        self.add_module("2", nn.Conv2d(mid, cout, 3, padding=1))

    def forward(self, x):
        for i in range(3):
            x = self._modules[str(i)](x)
        return x


class _PspUp(nn.Module):
    def __init__(self, cin, cout, factor):
        super().__init__()
        self.add_module("0", ConvBNReLU(cin, cout, 3, padding=1))
        self.factor = factor

    def forward(self, x):
        return _up(self._modules["0"](x), self.factor)


class SCB(nn.Module):
    """Semantic context branch: returns the list of stage outputs; the last is the 3-class semantic logit map."""

    def __init__(self, cin):
        super().__init__()
        ins = [512 + cin, 512, 256, 128, 128, 64]
        mids = [512, 256, 128, 128, 64, 64]
        self.out_channels = [256, 128, 64, 64, 64, 3]
        self.psp_module = PPModule(cin, 512)
        self.psps = nn.ModuleList(_PspUp(512, self.out_channels[i], f) for i, f in enumerate((2, 4, 8, 16)))
        stages = [_UpStage(ins[i], mids[i], self.out_channels[i], 2 if i == 0 else 1) for i in range(5)]
        stages.append(_LastStage(ins[5], mids[5], self.out_channels[5]))
        self.scb_stages = nn.ModuleList(stages)

    def forward(self, x):
        psp_x = self.psp_module(x)
        psps = [p(psp_x) for p in self.psps]
        logits = []
        for i, stage in enumerate(self.scb_stages):
            if i == 0:
                x = stage(torch.cat((psp_x, x), 1))
            elif i <= len(psps):
                x = stage(torch.cat((psps[i - 1], x), 1))
            else:
                x = stage(x)
            logits.append(x)
        return logits


class VdBasicBlock(nn.Module):
    """ppmatting resnet_vd.BasicBlock (``conv0``, ``conv1``, optional 1x1 ``short``)."""

    def __init__(self, cin, cout, shortcut=True):
        super().__init__()
        self.conv0 = ConvBNReLU(cin, cout, 3, padding=1, bias=False)
        self.conv1 = ConvBN(cout, cout, 3, padding=1, bias=False)
        self.short = None if shortcut else ConvBN(cin, cout, 1, padding=0, bias=False)

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return F.relu(y + (x if self.short is None else self.short(x)))


class GatedSpatialConv2d(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self._gate_conv = nn.Sequential(
            nn.BatchNorm2d(cin + 1), nn.Conv2d(cin + 1, cin + 1, 1), nn.ReLU(), nn.Conv2d(cin + 1, 1, 1),
            nn.BatchNorm2d(1), nn.Sigmoid())
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x, gate):
        a = self._gate_conv(torch.cat([x, gate], 1))
        return self.conv(x * (a + 1))


class HRDB(nn.Module):
    """High-resolution detail branch guided by SCB outputs 0, 2 and 4."""

    def __init__(self, cin, scb_channels, gf_index=(0, 2, 4)):
        super().__init__()
        self.gf_index = gf_index
        self.gf_list = nn.ModuleList(nn.Conv2d(scb_channels[i], 1, 1) for i in gf_index)
        ch = [64, 32, 16, 8]
        self.res_list = nn.ModuleList([VdBasicBlock(cin, ch[0], shortcut=False)] +
                                      [VdBasicBlock(c, c) for c in ch[1:-1]])
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 1) for i in range(len(ch) - 1))
        self.gates = nn.ModuleList(GatedSpatialConv2d(c, c) for c in ch[1:])
        self.detail_conv = nn.Conv2d(ch[-1], 1, 1, bias=False)

    def forward(self, x, scb_logits):
        for i in range(len(self.res_list)):
            x = self.convs[i](self.res_list[i](x))
            gf = self.gf_list[i](scb_logits[self.gf_index[i]])
            gf = F.interpolate(gf, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = self.gates[i](x, gf)
        return self.detail_conv(x)


def heads(semantic_logits, detail_logits) -> dict:
    """The eval-time head: semantic softmax, detail sigmoid and their fusion. Semantic channels: 0 foreground,
    1 transition, 2 background (argmax of the softmax, first max on ties)."""
    semantic = torch.softmax(semantic_logits, dim=1)
    detail = torch.sigmoid(detail_logits)
    index = first_argmax(semantic, dim=1, keepdim=True)
    fusion = detail * (index == 1).to(detail.dtype) + (index == 0).to(detail.dtype)
    return {"fusion": fusion, "semantic_map": semantic, "detail_map": detail}


class PPMatting(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = HRNetW18()
        ch = self.backbone.feat_channels
        self.scb = SCB(ch[-1])
        self.hrdb = HRDB(ch[0] + ch[1], self.scb.out_channels)

    def forward_all(self, x) -> dict:
        feats = self.backbone(x)
        scb_logits = self.scb(feats[-1])
        size = x.shape[2:]
        f0 = F.interpolate(feats[0], size=size, mode="bilinear", align_corners=False)
        f1 = F.interpolate(feats[1], size=size, mode="bilinear", align_corners=False)
        detail_logits = self.hrdb(torch.cat([f0, f1], 1), scb_logits)
        return dict(heads(scb_logits[-1], detail_logits), semantic_logits=scb_logits[-1], detail_logits=detail_logits)

    def forward(self, x):
        return self.forward_all(x)["fusion"]
