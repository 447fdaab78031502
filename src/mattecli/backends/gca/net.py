"""GCA Matting (Li & Lu, AAAI 2020): resnet_gca_encoder_29 + res_gca_decoder_22 with Guided Contextual Attention.

Parameter names follow Yaoyi-Li/GCA-Matting@5a999be (networks/), so ``gca-dist-all-data.pth`` loads after the
``module.`` prefix is removed. Spectral norm is stored as ``<conv>.module.weight_{u,v,bar}``; in eval the weight is
``weight_bar / sigma`` with ``sigma = u . (weight_bar.view(shape[0], -1) @ v)`` (no power iteration).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _SNParams(nn.Module):
    """Holds ``weight_u``, ``weight_v``, ``weight_bar`` (the official names, as Parameters) and the conv geometry."""

    def __init__(self, shape):
        super().__init__()
        h = shape[0]
        w = 1
        for s in shape[1:]:
            w *= s
        self.weight_u = nn.Parameter(torch.zeros(h), requires_grad=False)
        self.weight_v = nn.Parameter(torch.zeros(w), requires_grad=False)
        self.weight_bar = nn.Parameter(torch.zeros(*shape))

    def weight(self):
        w = self.weight_bar
        h = w.shape[0]
        sigma = self.weight_u.dot(w.view(h, -1).mv(self.weight_v))
        return w / sigma.expand_as(w)


class SNConv2d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.module = _SNParams((cout, cin, k, k))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.module.weight(), None, self.stride, self.padding)


class SNConvTranspose2d(nn.Module):
    def __init__(self, cin, cout, k=4, stride=2, padding=1):
        super().__init__()
        self.module = _SNParams((cin, cout, k, k))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv_transpose2d(x, self.module.weight(), None, self.stride, self.padding)


# --------------------------------------------------------------------------------------------------- encoder
class EncBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = SNConv2d(inplanes, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.activation = nn.ReLU(inplace=True)
        self.conv2 = SNConv2d(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.activation(out + identity)


def _shortcut(cin, c):
    return nn.Sequential(SNConv2d(cin, c, 3, 1, 1), nn.ReLU(inplace=True), nn.BatchNorm2d(c),
                         SNConv2d(c, c, 3, 1, 1), nn.ReLU(inplace=True), nn.BatchNorm2d(c))


class GCAEncoder(nn.Module):
    def __init__(self, layers=(3, 4, 4, 2), trimap_channel: int = 3):
        super().__init__()
        cin = 3 + trimap_channel
        self.trimap_channel = trimap_channel
        self.conv1 = SNConv2d(cin, 32, 3, 2, 1)
        self.conv2 = SNConv2d(32, 32, 3, 1, 1)
        self.conv3 = SNConv2d(32, 64, 3, 2, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm2d(32), nn.BatchNorm2d(32), nn.BatchNorm2d(64)
        self.activation = nn.ReLU(inplace=True)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer_bottleneck = self._make_layer(512, layers[3], 2)
        self.shortcut = nn.ModuleList([_shortcut(i, o) for i, o in
                                       zip((cin, 32, 64, 128, 256), (32, 32, 64, 128, 256))])
        self.guidance_head = nn.Sequential(
            nn.ReflectionPad2d(1), SNConv2d(3, 16, 3, 2, 0), nn.ReLU(inplace=True), nn.BatchNorm2d(16),
            nn.ReflectionPad2d(1), SNConv2d(16, 32, 3, 2, 0), nn.ReLU(inplace=True), nn.BatchNorm2d(32),
            nn.ReflectionPad2d(1), SNConv2d(32, 128, 3, 2, 0), nn.ReLU(inplace=True), nn.BatchNorm2d(128))
        self.gca = GuidedCxtAtten(128, 128)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1:
            downsample = nn.Sequential(nn.AvgPool2d(2, stride), SNConv2d(self.inplanes, planes, 1),
                                       nn.BatchNorm2d(planes))
        elif self.inplanes != planes:
            downsample = nn.Sequential(SNConv2d(self.inplanes, planes, 1), nn.BatchNorm2d(planes))
        layers = [EncBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [EncBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.activation(self.bn1(self.conv1(x)))
        x1 = self.activation(self.bn2(self.conv2(out)))
        out = self.activation(self.bn3(self.conv3(x1)))
        im_fea = self.guidance_head(x[:, :3])
        if self.trimap_channel == 3:
            unknown = F.interpolate(x[:, 4:5], scale_factor=1 / 8, mode="nearest")
        else:
            unknown = F.interpolate(x[:, 3:].eq(1.0).float(), scale_factor=1 / 8, mode="nearest")
        x2 = self.layer1(out)
        x3 = self.layer2(x2)
        x3, offset = self.gca(im_fea, x3, unknown)
        x4 = self.layer3(x3)
        out = self.layer_bottleneck(x4)
        feas = (self.shortcut[0](x), self.shortcut[1](x1), self.shortcut[2](x2), self.shortcut[3](x3),
                self.shortcut[4](x4))
        return out, {"shortcut": feas, "image_fea": im_fea, "unknown": unknown, "offset_1": offset}


# --------------------------------------------------------------------------------------------------- decoder
class DecBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, upsample=None):
        super().__init__()
        if stride > 1:
            self.conv1 = SNConvTranspose2d(inplanes, inplanes, 4, 2, 1)
        else:
            self.conv1 = SNConv2d(inplanes, inplanes, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.activation = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = SNConv2d(inplanes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.upsample = upsample

    def forward(self, x):
        identity = x if self.upsample is None else self.upsample(x)
        out = self.activation(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.activation(out + identity)


class GCADecoder(nn.Module):
    def __init__(self, layers=(2, 3, 3, 2)):
        super().__init__()
        self.inplanes = 512
        self.conv1 = SNConvTranspose2d(32, 32, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(32)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = nn.Conv2d(32, 1, kernel_size=3, stride=1, padding=1)
        self.tanh = nn.Tanh()
        self.layer1 = self._make_layer(256, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(64, layers[2])
        self.layer4 = self._make_layer(32, layers[3])
        self.gca = GuidedCxtAtten(128, 128)

    def _make_layer(self, planes, blocks, stride=2):
        upsample = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), SNConv2d(self.inplanes, planes, 1),
                                 nn.BatchNorm2d(planes))
        layers = [DecBlock(self.inplanes, planes, stride, upsample)]
        self.inplanes = planes
        layers += [DecBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x, mid):
        fea1, fea2, fea3, fea4, fea5 = mid["shortcut"]
        x = self.layer1(x) + fea5
        x = self.layer2(x) + fea4
        x, offset = self.gca(mid["image_fea"], x, mid["unknown"])
        x = self.layer3(x) + fea3
        x = self.layer4(x) + fea2
        x = self.leaky_relu(self.bn1(self.conv1(x))) + fea1
        x = self.conv2(x)
        alpha = (self.tanh(x) + 1.0) / 2.0
        return alpha, {"offset_1": mid["offset_1"], "offset_2": offset}


# -------------------------------------------------------------------------------------------------- attention
def _extract_patches(x, kernel=3, stride=1):
    left = (kernel - stride + 1) // 2
    right = (kernel - stride) // 2
    x = F.pad(x, (left, right, left, right), mode="reflect")
    return x.unfold(2, kernel, stride).unfold(3, kernel, stride)


class GuidedCxtAtten(nn.Module):
    """Guided contextual attention, eval path of the official ``networks/ops.py`` (rate 2, 3x3 patches).

    Numerically the same as the official code; the (L, L, h, w) one-hot self-mask is replaced by adding -1e4 on
    the diagonal directly, which saves 3 tensors of L^2 elements (L = h*w at 1/16 of the input)."""

    def __init__(self, out_channels, guidance_channels, rate=2):
        super().__init__()
        self.rate = rate
        self.guidance_conv = nn.Conv2d(guidance_channels, guidance_channels // 2, kernel_size=1)
        self.W = nn.Sequential(nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False),
                               nn.BatchNorm2d(out_channels))

    def forward(self, f, alpha, unknown):
        ksize = 3
        rate = self.rate
        f = self.guidance_conv(f)
        n, _, ah, aw = alpha.shape
        ac = alpha.shape[1]
        kernel = 2 * rate
        alpha_w = _extract_patches(alpha, kernel=kernel, stride=rate)       # N, C, h, w, k, k
        alpha_w = alpha_w.permute(0, 2, 3, 4, 5, 1).contiguous().view(n, -1, kernel, kernel, ac)
        alpha_w = alpha_w.permute(0, 1, 4, 2, 3)                            # N, L, C, k, k

        fc = f.shape[1]
        f = F.interpolate(f, scale_factor=1 / rate, mode="nearest")
        fh, fw = f.shape[2], f.shape[3]
        L = fh * fw
        w = _extract_patches(f)
        w = w.permute(0, 2, 3, 4, 5, 1).contiguous().view(n, -1, ksize, ksize, fc).permute(0, 1, 4, 2, 3)

        unknown = F.interpolate(unknown, scale_factor=1 / rate, mode="nearest")
        if unknown.shape[2] != fh or unknown.shape[3] != fw:
            raise ValueError("GCA: unknown mask and guidance features differ in size (input not a multiple of 32)")
        unknown_mean = unknown.mean(dim=[2, 3])
        known_mean = 1 - unknown_mean
        unknown_scale = torch.clamp(torch.sqrt(unknown_mean / known_mean), 0.1, 10).to(alpha)
        known_scale = torch.clamp(torch.sqrt(known_mean / unknown_mean), 0.1, 10).to(alpha)
        softmax_scale = torch.cat([unknown_scale, known_scale], dim=1)

        m = _extract_patches(unknown)
        m = m.permute(0, 2, 3, 4, 5, 1).contiguous().view(n, L, ksize, ksize)
        m = m.mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)           # (N, L, 1, 1)
        mm = m.gt(0.0).to(alpha)

        ys, offsets = [], []
        eye = torch.arange(L, device=alpha.device)
        for i in range(n):
            xi = f[i:i + 1]
            wi = w[i]
            norm = torch.sqrt((wi ** 2).sum(dim=[1, 2, 3], keepdim=True))
            wi_normed = wi / torch.max(norm, torch.tensor(1e-4, dtype=alpha.dtype, device=alpha.device))
            xi = F.pad(xi, (1, 1, 1, 1), mode="reflect")
            yi = F.conv2d(xi, wi_normed)                                    # (1, L, fh, fw)
            mmi = mm[i:i + 1]
            scale = softmax_scale[i]
            yi.mul_(scale[0] * mmi.gt(0.0).to(alpha) + scale[1] * mmi.le(0.0).to(alpha))
            flat = yi.view(L, L)
            flat[eye, eye] += -1e4 * mmi.view(L)
            del flat
            yi = F.softmax(yi, dim=1)
            off = torch.argmax(yi, dim=1)
            offsets.append(torch.stack([off // fw, off % fw], dim=1))
            yi = F.conv_transpose2d(yi, alpha_w[i], stride=rate, padding=1) / 4.0
            ys.append(yi)
        y = torch.cat(ys, 0)
        offsets = torch.cat(offsets, 0).view(n, 2, fh, fw)
        offsets = offsets - torch.tensor([fh // 2, fw // 2], device=alpha.device).view(1, 2, 1, 1)
        y = self.W(y) + alpha
        return y, (offsets, softmax_scale)


class GCANet(nn.Module):
    """``forward(image, trimap)`` -> (alpha (N,1,H,W), info). image: ImageNet-normalised RGB; trimap: one-hot
    [bg, unknown, fg]. H, W multiples of 32."""

    def __init__(self):
        super().__init__()
        self.encoder = GCAEncoder()
        self.decoder = GCADecoder()

    def forward(self, image, trimap):
        emb, mid = self.encoder(torch.cat((image, trimap), dim=1))
        return self.decoder(emb, mid)
