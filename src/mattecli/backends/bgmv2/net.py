"""Background Matting V2 (Lin et al., CVPR 2021): ``MattingRefine`` re-written with the official parameter names.

Architecture follows github.com/PeterL1n/BackgroundMattingV2 @ a8e82df9 (model/model.py, decoder.py, refiner.py):
a DeepLabV3-style base network (ResNet-50/101 or MobileNetV2 encoder on image + plate = 6 channels, ASPP, a
4-stage decoder) runs at ``backbone_scale`` of the input and predicts coarse alpha, foreground residual, error and a
32-channel hidden map; the refiner upsamples to full resolution, either everywhere (``full``) or on the 4x4 patches
with the largest predicted error (``sampling``: top-k, ``thresholding``: error > threshold).

State-dict keys are exactly the official ones (``backbone.*``, ``aspp.*``, ``decoder.*``, ``refiner.*``), so the
released ``pytorch_<backbone>.pth`` files load unchanged (strict).

Differences from the official module (documented, all opt-out-free because they only affect inputs the official
code rejects or crashes on):
- ``sampling`` mode clamps ``k = refine_sample_pixels // 16`` to the number of quarter-resolution pixels; the
  official ``topk`` raises "selected index k out of range" for images under ``refine_sample_pixels`` pixels.
- H and W must be divisible by 4 (as officially); the adapter pads and crops so any size works.
- the selective modes refine the patches in chunks of ``Refiner.chunk`` (16384) patches: identical results, but the
  memory stays bounded when most of a large frame is selected (the official code materialises every patch at once:
  over 8 GB at 1920x1080 with 80 % of the patches selected).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

BACKBONES = ("resnet50", "resnet101", "mobilenetv2")
REFINE_MODES = ("full", "sampling", "thresholding")


# -- ASPP (torchvision.models.segmentation.deeplabv3.ASPP parameter layout) ------------------------------------
class _ASPPConv(nn.Sequential):
    def __init__(self, in_channels, out_channels, dilation):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class _ASPPPooling(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3, image pooling; 1x1 projection (keys convs.N,
    project.N)."""

    def __init__(self, in_channels: int, atrous_rates=(3, 6, 9), out_channels: int = 256):
        super().__init__()
        mods = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                              nn.ReLU())]
        for rate in atrous_rates:
            mods.append(_ASPPConv(in_channels, out_channels, rate))
        mods.append(_ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(mods)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x):
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


# -- encoder ---------------------------------------------------------------------------------------------------
class _ResNetEncoder(nn.Module):
    """torchvision ResNet-50/101, 6 input channels, layer4 dilated (output stride 16); keys = ResNet's."""

    def __init__(self, variant: str, in_channels: int = 6):
        super().__init__()
        from ..layers import resnet

        net = getattr(resnet, variant)(in_channels=in_channels, num_classes=None,
                                       replace_stride_with_dilation=[False, False, True])
        # adopt the ResNet's children so the keys read backbone.conv1..., backbone.layer4...
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(net, name))
        self.channels = (2048, 512, 256, 64)

    def forward(self, x):
        x0 = x
        x = self.relu(self.bn1(self.conv1(x)))
        x1 = x
        x = self.layer1(self.maxpool(x))
        x2 = x
        x = self.layer2(x)
        x3 = x
        x = self.layer4(self.layer3(x))
        return x, x3, x2, x1, x0


class _MobileNetV2Encoder(nn.Module):
    """torchvision MobileNetV2 features[:-1], 6 input channels, block 14 stride 1 and 15-17 dilated 2."""

    def __init__(self, in_channels: int = 6):
        super().__init__()
        from ..layers.mobilenetv2 import MobileNetV2

        net = MobileNetV2(in_channels=in_channels, num_classes=None)
        net.dilate_from(14, 2)
        self.features = net.features[:-1]
        self.channels = (320, 32, 24, 16)

    def forward(self, x):
        x0 = x
        f = self.features
        for i in range(0, 2):
            x = f[i](x)
        x1 = x
        for i in range(2, 4):
            x = f[i](x)
        x2 = x
        for i in range(4, 7):
            x = f[i](x)
        x3 = x
        for i in range(7, 18):
            x = f[i](x)
        return x, x3, x2, x1, x0


class Decoder(nn.Module):
    def __init__(self, channels, feature_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(True)

    def forward(self, x4, x3, x2, x1, x0):
        x = F.interpolate(x4, size=x3.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn1(self.conv1(torch.cat([x, x3], dim=1))))
        x = F.interpolate(x, size=x2.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn2(self.conv2(torch.cat([x, x2], dim=1))))
        x = F.interpolate(x, size=x1.shape[2:], mode="bilinear", align_corners=False)
        x = self.relu(self.bn3(self.conv3(torch.cat([x, x1], dim=1))))
        x = F.interpolate(x, size=x0.shape[2:], mode="bilinear", align_corners=False)
        return self.conv4(torch.cat([x, x0], dim=1))


# -- refiner ---------------------------------------------------------------------------------------------------
class Refiner(nn.Module):
    def __init__(self, mode: str = "sampling", sample_pixels: int = 80_000, threshold: float = 0.1,
                 kernel_size: int = 3, prevent_oversampling: bool = True):
        super().__init__()
        if mode not in REFINE_MODES:
            raise ValueError(f"refine_mode must be one of {', '.join(REFINE_MODES)}")
        if kernel_size not in (1, 3):
            raise ValueError("refine_kernel_size must be 1 or 3")
        self.mode = mode
        self.sample_pixels = int(sample_pixels)
        self.threshold = float(threshold)
        self.kernel_size = kernel_size
        self.prevent_oversampling = bool(prevent_oversampling)
        self.chunk = 16384  # patches per step in the selective modes
        ch = [32, 24, 16, 12, 4]
        self.conv1 = nn.Conv2d(ch[0] + 6 + 4, ch[1], kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(ch[1])
        self.conv2 = nn.Conv2d(ch[1], ch[2], kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(ch[2])
        self.conv3 = nn.Conv2d(ch[2] + 6, ch[3], kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(ch[3])
        self.conv4 = nn.Conv2d(ch[3], ch[4], kernel_size, bias=True)
        self.relu = nn.ReLU(True)

    def _head_half(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    def _head_full(self, x):
        return self.conv4(self.relu(self.bn3(self.conv3(x))))

    def forward(self, src, bgr, pha, fgr, err, hid):
        H, W = src.shape[2:]
        Hh, Wh = H // 2, W // 2
        Hq, Wq = H // 4, W // 4
        src_bgr = torch.cat([src, bgr], dim=1)
        k3 = self.kernel_size == 3

        if self.mode == "full":
            x = F.interpolate(torch.cat([hid, pha, fgr], dim=1), (Hh, Wh), mode="bilinear", align_corners=False)
            y = F.interpolate(src_bgr, (Hh, Wh), mode="bilinear", align_corners=False)
            if k3:
                x = F.pad(x, (3, 3, 3, 3))
                y = F.pad(y, (3, 3, 3, 3))
            x = self._head_half(torch.cat([x, y], dim=1))
            if k3:
                x = F.interpolate(x, (H + 4, W + 4), mode="nearest")
                y = F.pad(src_bgr, (2, 2, 2, 2))
            else:
                x = F.interpolate(x, (H, W), mode="nearest")
                y = src_bgr
            x = self._head_full(torch.cat([x, y], dim=1))
            ref = torch.ones((src.shape[0], 1, Hq, Wq), device=src.device, dtype=src.dtype)
            return x[:, :1], x[:, 1:], ref

        err = F.interpolate(err, (Hq, Wq), mode="bilinear", align_corners=False)
        ref = self.select_refinement_regions(err)
        idx = torch.nonzero(ref.squeeze(1))
        b, yy, xx = idx[:, 0], idx[:, 1], idx[:, 2]
        if b.numel() == 0:
            pha = F.interpolate(pha, (H, W), mode="bilinear", align_corners=False)
            fgr = F.interpolate(fgr, (H, W), mode="bilinear", align_corners=False)
            return pha, fgr, ref

        p_half, p_full = (3, 2) if k3 else (0, 0)
        xh = F.interpolate(torch.cat([hid, pha, fgr], dim=1), (Hh, Wh), mode="bilinear", align_corners=False)
        yh = F.interpolate(src_bgr, (Hh, Wh), mode="bilinear", align_corners=False)
        if p_half:
            xh = F.pad(xh, (p_half,) * 4)
            yh = F.pad(yh, (p_half,) * 4)
        yf = F.pad(src_bgr, (p_full,) * 4) if p_full else src_bgr
        out = F.interpolate(torch.cat([pha, fgr], dim=1), (H, W), mode="bilinear", align_corners=False)
        # ours: patches in chunks (identical per-patch results; bounded memory when many patches are selected)
        for s in range(0, b.numel(), self.chunk):
            bs, ys, xs = b[s:s + self.chunk], yy[s:s + self.chunk], xx[s:s + self.chunk]
            x = self._crop(xh, bs, ys, xs, 2, 2 + 2 * p_half)
            y = self._crop(yh, bs, ys, xs, 2, 2 + 2 * p_half)
            x = self._head_half(torch.cat([x, y], dim=1))
            x = F.interpolate(x, 8 if k3 else 4, mode="nearest")
            y = self._crop(yf, bs, ys, xs, 4, 4 + 2 * p_full)
            self._replace(out, self._head_full(torch.cat([x, y], dim=1)), bs, ys, xs)
        return out[:, :1], out[:, 1:], ref

    def select_refinement_regions(self, err):
        if self.mode == "sampling":
            bsz, _, h, w = err.shape
            flat = err.reshape(bsz, -1)
            # ours: clamp k (the official topk raises for images under refine_sample_pixels pixels)
            k = max(0, min(self.sample_pixels // 16, flat.shape[1]))
            ref = torch.zeros_like(flat)
            if k > 0:
                top = flat.topk(k, dim=1, sorted=False).indices
                ref.scatter_(1, top, 1.0)
            if self.prevent_oversampling:
                ref.mul_(flat.gt(0).to(flat.dtype))
            return ref.view(bsz, 1, h, w)
        return err.gt(self.threshold).to(err.dtype)

    @staticmethod
    def _crop(x, b, yy, xx, stride, size):
        """(P, C, size, size) patches at the quarter-resolution indices of an already padded map (official
        'unfold' crop method)."""
        return x.permute(0, 2, 3, 1).unfold(1, size, stride).unfold(2, size, stride)[b, yy, xx]

    @staticmethod
    def _replace(x, y, b, yy, xx):
        """Write the (P, C, h, w) patches into x (B, C, H, W) in place (official 'scatter_nd' method)."""
        B, C, H, W = x.shape
        _, _, h, w = y.shape
        x.view(B, C, H // h, h, W // w, w).permute(0, 2, 4, 1, 3, 5)[b, yy, xx] = y


class MattingRefine(nn.Module):
    """``MattingRefine(backbone, backbone_scale, refine_mode, refine_sample_pixels, refine_threshold,
    refine_kernel_size, refine_prevent_oversampling)`` -> forward(src, bgr) = (pha, fgr, pha_sm, fgr_sm, err_sm,
    ref_sm), as the official module (src/bgr RGB in [0,1], H and W divisible by 4)."""

    def __init__(self, backbone: str = "resnet50", backbone_scale: float = 0.25, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1, refine_kernel_size: int = 3,
                 refine_prevent_oversampling: bool = True):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}")
        if not 0 < float(backbone_scale) <= 0.5:
            raise ValueError("backbone_scale must be in (0, 1/2]")
        self.backbone_name = backbone
        self.backbone_scale = float(backbone_scale)
        if backbone == "mobilenetv2":
            self.backbone = _MobileNetV2Encoder(6)
        else:
            self.backbone = _ResNetEncoder(backbone, 6)
        top, c3, c2, c1 = self.backbone.channels
        self.aspp = ASPP(top, (3, 6, 9))
        self.decoder = Decoder([256, 128, 64, 48, 1 + 3 + 1 + 32], [c3, c2, c1, 6])
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling)

    def base(self, src_sm, bgr_sm):
        """Raw decoder output (B, 37, h, w) at the backbone scale."""
        x, *shortcuts = self.backbone(torch.cat([src_sm, bgr_sm], dim=1))
        return self.decoder(self.aspp(x), *shortcuts)

    def forward(self, src, bgr):
        if src.shape != bgr.shape:
            raise ValueError("src and bgr must have the same shape")
        if src.shape[2] % 4 or src.shape[3] % 4:
            raise ValueError("src and bgr must have width and height that are divisible by 4")
        src_sm = F.interpolate(src, scale_factor=self.backbone_scale, mode="bilinear", align_corners=False,
                               recompute_scale_factor=True)
        bgr_sm = F.interpolate(bgr, scale_factor=self.backbone_scale, mode="bilinear", align_corners=False,
                               recompute_scale_factor=True)
        x = self.base(src_sm, bgr_sm)
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        fgr_sm = x[:, 1:4]
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid_sm = x[:, 5:].relu()
        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        pha = pha.clamp(0.0, 1.0)
        fgr = (fgr + src).clamp(0.0, 1.0)
        fgr_sm = (src_sm + fgr_sm).clamp(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
