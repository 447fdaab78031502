"""Robust Video Matting (Lin et al., WACV 2022): the official ``MattingNetwork`` architecture.

Follows https://github.com/PeterL1n/RobustVideoMatting @ 53d74c6 (model/*.py); parameter names are the official
ones, so an official ``rvm_*.pth`` state dict loads unchanged. Encoder: MobileNetV3-Large (dilated last stage,
ImageNet normalisation inside) or ResNet-50 (dilated layer4, no normalisation); LR-ASPP; recurrent decoder with
ConvGRUs at 1/16, 1/8, 1/4, 1/2; 1x1 projections; Deep Guided Filter refiner (or the parameter-free Fast Guided
Filter) when the network runs on a downsampled copy of the input.

Inputs are ``[B,3,H,W]`` (one frame per sequence) or ``[B,T,3,H,W]`` (T frames; everything but the GRUs runs on the
flattened B*T frames, the GRUs step through T). :func:`fold_batchnorm` folds every BatchNorm into the convolution
before it (the layout of the authors' ONNX export; also faster on CPU).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.mobilenetv3 import mobilenet_v3_large
from ..layers.normalize import IMAGENET_MEAN, IMAGENET_STD
from ..layers.resnet import resnet50

VARIANTS = ("mobilenetv3", "resnet50")
REFINERS = ("deep_guided_filter", "fast_guided_filter")


def cat_channels(tensors: list[Tensor]) -> Tensor:
    """``torch.cat(tensors, 1)`` that keeps NHWC when any input is NHWC (plain cat returns NCHW for mixed or
    strided inputs, which costs a layout copy before every following convolution)."""
    if not any(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in tensors):
        return torch.cat(tensors, dim=1)
    n, _, h, w = tensors[0].shape
    c = sum(t.shape[1] for t in tensors)
    out = torch.empty((n, c, h, w), dtype=tensors[0].dtype, device=tensors[0].device,
                      memory_format=torch.channels_last)
    return torch.cat(tensors, dim=1, out=out)


class MobileNetV3LargeEncoder(nn.Module):
    """torchvision MobileNetV3-Large features[0..16] (dilated C4), input normalised with ImageNet statistics."""

    taps = (1, 3, 6, 16)

    def __init__(self):
        super().__init__()
        self.features = mobilenet_v3_large(num_classes=None, dilated=True).features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out


class ResNet50Encoder(nn.Module):
    """torchvision ResNet-50 with replace_stride_with_dilation=[False, False, True]; raw [0,1] input."""

    def __init__(self):
        super().__init__()
        net = resnet50(num_classes=None, replace_stride_with_dilation=[False, False, True])
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(self.maxpool(f1))
        f2 = x
        x = self.layer2(x)
        f3 = x
        f4 = self.layer4(self.layer3(x))
        return [f1, f2, f3, f4]


class LRASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.aspp1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
        )
        self.aspp2 = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, kernel_size, padding=padding), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, kernel_size, padding=padding), nn.Tanh())

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        r, z = self.ih(cat_channels([x, h])).split(self.channels, dim=1)
        c = self.hh(cat_channels([x, r * h]))
        return (1 - z) * h + z * c

    def forward(self, x: Tensor, h: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """x: [B,T,C,H,W]; h: [B,C,H,W] or None (zeros). Returns (outputs [B,T,C,H,W], last state)."""
        if h is None:
            h = torch.zeros((x.size(0), x.size(2), x.size(3), x.size(4)), device=x.device, dtype=x.dtype)
            if x.stride(2) == 1 and x.size(2) > 1:  # NHWC activations: keep the state NHWC too
                h = h.contiguous(memory_format=torch.channels_last)
        else:
            h = h.to(x.dtype)
            if h.shape != (x.size(0), x.size(2), x.size(3), x.size(4)):   # the authors' [1,1,1,1] zeros and the like
                h = h.expand(x.size(0), x.size(2), x.size(3), x.size(4))
        if x.size(1) == 1:
            h = self.step(x[:, 0], h)
            return h.unsqueeze(1), h
        outs = []
        for t in range(x.size(1)):
            h = self.step(x[:, t], h)
            outs.append(h)
        return torch.stack(outs, dim=1), h


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Optional[Tensor], bt: tuple[int, int]):
        B, T = bt
        a, b = x.split(self.channels // 2, dim=1)
        b, r = self.gru(b.unflatten(0, (B, T)), r)
        return cat_channels([a, b.flatten(0, 1)]), r


class UpsamplingBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, src_channels: int, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels + src_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
        )
        self.gru = ConvGRU(out_channels // 2)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Optional[Tensor], bt: tuple[int, int]):
        B, T = bt
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = x[:, :, :s.size(2), :s.size(3)]
        x = self.conv(cat_channels([x, f, s]))
        a, b = x.split(self.out_channels // 2, dim=1)
        b, r = self.gru(b.unflatten(0, (B, T)), r)
        return cat_channels([a, b.flatten(0, 1)]), r


class OutputBlock(nn.Module):
    def __init__(self, in_channels: int, src_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + src_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = x[:, :, :s.size(2), :s.size(3)]
        return self.conv(cat_channels([x, s]))


class RecurrentDecoder(nn.Module):
    def __init__(self, feature_channels, decoder_channels):
        super().__init__()
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)

    def forward(self, s0, f1, f2, f3, f4, r1, r2, r3, r4, bt: tuple[int, int]):
        s1 = self.pool(s0)
        s2 = self.pool(s1)
        s3 = self.pool(s2)
        x4, r4 = self.decode4(f4, r4, bt)
        x3, r3 = self.decode3(x4, f3, s3, r3, bt)
        x2, r2 = self.decode2(x3, f2, s2, r2, bt)
        x1, r1 = self.decode1(x2, f1, s1, r1, bt)
        x0 = self.decode0(x1, s0)
        return x0, r1, r2, r3, r4


class Projection(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class DeepGuidedFilterRefiner(nn.Module):
    def __init__(self, hid_channels: int = 16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        with torch.no_grad():
            self.box_filter.weight.fill_(1 / 9)
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True),
        )

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid):
        return self.apply(fine_src, self.coefficients(base_src, base_fgr, base_pha, base_hid))

    def coefficients(self, base_src, base_fgr, base_pha, base_hid) -> Tensor:
        """The filter's A and b at the network's resolution, [B,8,h,w] (A: 4 channels, then b)."""
        base_x = cat_channels([base_src, base_src.mean(1, keepdim=True)])
        base_y = cat_channels([base_fgr, base_pha])
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        A = self.conv(cat_channels([cov_xy, var_x, base_hid]))
        b = mean_y - A * mean_x
        return torch.cat([A, b], dim=1)

    @staticmethod
    def apply(fine_src, Ab):
        """official: A, b bilinearly resized to the full size; out = A * [fine_src, mean(fine_src)] + b, split 3/1.
        Same arithmetic per element, organised for speed at full resolution: one resize of [A, b] in NCHW (like the
        full-size input) and no full-size concatenation of the guide (runtimes.kernels fuses it on the CPU)."""
        H, W = fine_src.shape[2:]
        Ab = F.interpolate(Ab.contiguous(), (H, W), mode="bilinear", align_corners=False)
        fgr = Ab[:, 0:3] * fine_src
        fgr += Ab[:, 4:7]
        pha = fine_src.mean(1, keepdim=True)
        pha *= Ab[:, 3:4]
        pha += Ab[:, 7:8]
        return fgr, pha


class FastGuidedFilterRefiner(nn.Module):
    """Parameter-free guided filter (radius 1, eps 1e-5) with a separable box blur, as the official code."""

    def __init__(self, r: int = 1, eps: float = 1e-5):
        super().__init__()
        self.r = r
        self.eps = eps

    def box(self, x: Tensor) -> Tensor:
        k = 2 * self.r + 1
        c = x.shape[1]
        kx = torch.full((c, 1, 1, k), 1 / k, device=x.device, dtype=x.dtype)
        ky = torch.full((c, 1, k, 1), 1 / k, device=x.device, dtype=x.dtype)
        x = F.conv2d(x, kx, padding=(0, self.r), groups=c)
        return F.conv2d(x, ky, padding=(self.r, 0), groups=c)

    def coefficients(self, base_src, base_fgr, base_pha, base_hid=None) -> Tensor:
        """A and b at the network's resolution, [B,8,h,w] (the refiner step :meth:`forward` upsamples)."""
        lr_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        lr_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = self.box(lr_x)
        mean_y = self.box(lr_y)
        cov_xy = self.box(lr_x * lr_y) - mean_x * mean_y
        var_x = self.box(lr_x * lr_x) - mean_x * mean_x
        A = cov_xy / (var_x + self.eps)
        return torch.cat([A, mean_y - A * mean_x], dim=1)

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid=None):
        lr_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        lr_y = torch.cat([base_fgr, base_pha], dim=1)
        hr_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], dim=1)
        mean_x = self.box(lr_x)
        mean_y = self.box(lr_y)
        cov_xy = self.box(lr_x * lr_y) - mean_x * mean_y
        var_x = self.box(lr_x * lr_x) - mean_x * mean_x
        A = cov_xy / (var_x + self.eps)
        b = mean_y - A * mean_x
        A = F.interpolate(A, hr_x.shape[2:], mode="bilinear", align_corners=False)
        b = F.interpolate(b, hr_x.shape[2:], mode="bilinear", align_corners=False)
        return (A * hr_x + b).split([3, 1], dim=1)


class MattingNetwork(nn.Module):
    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter", segmentation: bool = True):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        if refiner not in REFINERS:
            raise ValueError(f"refiner must be one of {REFINERS}")
        self.variant = variant
        self.refiner_name = refiner
        self.channels_last = False  # see use_channels_last()
        if variant == "mobilenetv3":
            self.backbone = MobileNetV3LargeEncoder()
            self.aspp = LRASPP(960, 128)
            self.decoder = RecurrentDecoder([16, 24, 40, 128], [80, 40, 32, 16])
        else:
            self.backbone = ResNet50Encoder()
            self.aspp = LRASPP(2048, 256)
            self.decoder = RecurrentDecoder([64, 256, 512, 256], [128, 64, 32, 16])
        self.project_mat = Projection(16, 4)
        # the segmentation head is in the official checkpoints (not in the ONNX export); matting never uses it
        self.project_seg = Projection(16, 1) if segmentation else None
        self.refiner = DeepGuidedFilterRefiner() if refiner == "deep_guided_filter" else FastGuidedFilterRefiner()

    def use_channels_last(self, on: bool = True) -> "MattingNetwork":
        """NHWC activations and weights: 2-3x faster convolutions on CPU (oneDNN) for the thin full-resolution
        decoder layers; same results up to float rounding."""
        self.channels_last = on
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    @property
    def state_channels(self) -> tuple[int, int, int, int]:
        return (16, 20, 40, 64) if self.variant == "mobilenetv3" else (16, 32, 64, 128)

    def core(self, x_sm: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor, refine: bool = True):
        """Everything at the network's resolution, for frames of independent one-frame steps ([N,3,h,w], states
        [N,C,h/2^k,w/2^k]): -> (out, r1, r2, r3, r4) with out = the refiner's coefficients [N,8,h,w] (``refine``)
        or project_mat's [fgr_residual, pha] [N,4,h,w]. What the runtimes export (the full-size step runs outside
        the graph, see runtimes.kernels); the same operations as :meth:`forward`."""
        f1, f2, f3, f4 = self.backbone(x_sm)
        f4 = self.aspp(f4)
        hid, r1, r2, r3, r4 = self.decoder(x_sm, f1, f2, f3, f4, r1, r2, r3, r4, (x_sm.size(0), 1))
        out = self.project_mat(hid)
        if refine:
            fgr_residual, pha = out.split([3, 1], dim=1)
            out = self.refiner.coefficients(x_sm, fgr_residual, pha, hid)
        return out, r1, r2, r3, r4

    def state_shapes(self, n: int, h: int, w: int) -> list[tuple]:
        """Recurrent state shapes for n frames of h x w at the network's resolution (strides 2, 4, 8, 16,
        rounded up)."""
        out = []
        for k, c in zip((2, 4, 8, 16), self.state_channels):
            out.append((n, c, -(-h // k), -(-w // k)))
        return out

    def forward(self, src: Tensor, r1: Optional[Tensor] = None, r2: Optional[Tensor] = None,
                r3: Optional[Tensor] = None, r4: Optional[Tensor] = None, downsample_ratio: float = 1.0,
                segmentation_pass: bool = False, refine: Optional[bool] = None):
        """The official forward. ``refine=None``: the refiner runs iff downsample_ratio != 1 (official PyTorch
        behaviour); ``refine=True`` runs it at every ratio (the authors' ONNX export does that)."""
        five = src.ndim == 5
        if not five:
            src = src.unsqueeze(1)
        B, T = src.shape[:2]
        bt = (B, T)
        x = src.flatten(0, 1)
        if downsample_ratio != 1:
            x_sm = F.interpolate(x, scale_factor=downsample_ratio, mode="bilinear", align_corners=False,
                                 recompute_scale_factor=False)
        else:
            x_sm = x
        if self.channels_last:  # the network runs NHWC; full-size tensors of the refiner stay NCHW
            x_sm = x_sm.contiguous(memory_format=torch.channels_last)
        f1, f2, f3, f4 = self.backbone(x_sm)
        f4 = self.aspp(f4)
        hid, r1, r2, r3, r4 = self.decoder(x_sm, f1, f2, f3, f4, r1, r2, r3, r4, bt)

        def shape(t: Tensor) -> Tensor:
            t = t.unflatten(0, (B, T))
            return t if five else t[:, 0]

        if segmentation_pass:
            if self.project_seg is None:
                raise RuntimeError("these weights have no segmentation head (project_seg)")
            return [shape(self.project_seg(hid)), r1, r2, r3, r4]
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=1)
        if refine is None:
            refine = downsample_ratio != 1
        if refine:
            fgr_residual, pha = self.refiner(x, x_sm, fgr_residual, pha, hid)
            fgr = fgr_residual.add_(x).clamp_(0.0, 1.0)  # a fresh full-size tensor: update it in place
        else:
            fgr = (fgr_residual + x).clamp(0.0, 1.0)
        pha = pha.clamp(0.0, 1.0)
        return [shape(fgr), shape(pha), r1, r2, r3, r4]


# -- BatchNorm folding ----------------------------------------------------------------------------------------------
def _conv_bn_pairs(module: nn.Module):
    """(parent, conv name, bn name) for every BatchNorm2d that directly follows a Conv2d."""
    pairs = []
    for parent in module.modules():
        names = list(parent._modules)
        for i, name in enumerate(names):
            bn = parent._modules[name]
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            if isinstance(parent, nn.Sequential):
                conv_name = names[i - 1] if i > 0 else None
            else:  # ResNet style: bn1 <- conv1, bn <- conv
                conv_name = "conv" + name[2:] if name.startswith("bn") else None
            conv = parent._modules.get(conv_name) if conv_name is not None else None
            if not isinstance(conv, nn.Conv2d):
                raise ValueError(f"BatchNorm {name} in {type(parent).__name__} does not follow a convolution")
            pairs.append((parent, conv_name, name))
    return pairs


def fold_batchnorm(module: nn.Module, values: bool = True) -> nn.Module:
    """Fold every BatchNorm2d into the preceding conv (the conv gets a bias; the BN becomes ``nn.Identity``).

    values=False only changes the structure (the folded parameters are loaded afterwards, e.g. from ONNX).
    In place; returns ``module``.
    """
    for parent, conv_name, bn_name in _conv_bn_pairs(module):
        conv: nn.Conv2d = parent._modules[conv_name]
        bn: nn.BatchNorm2d = parent._modules[bn_name]
        w = conv.weight.detach()
        out_ch = w.shape[0]
        if values:
            scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
            new_w = (w.double() * scale.view(-1, 1, 1, 1)).to(w.dtype)
            b0 = conv.bias.detach().double() if conv.bias is not None else torch.zeros(out_ch, dtype=torch.float64)
            new_b = ((b0 - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()).to(w.dtype)
        else:
            new_w, new_b = w.clone(), torch.zeros(out_ch, dtype=w.dtype, device=w.device)
        conv.weight = nn.Parameter(new_w)
        conv.bias = nn.Parameter(new_b)
        parent._modules[bn_name] = nn.Identity()
    return module


def is_folded(module: nn.Module) -> bool:
    return not any(isinstance(m, nn.BatchNorm2d) for m in module.modules())
