"""Context-Aware Matting (Hou & Liu, ICCV 2019): hqqxyy/Context-Aware-Matting @ e7b7367 (TensorFlow 1), in PyTorch.

Graph of ``conmat/model.py predict_labels_conmat`` with the demo defaults (mode v10, ``num_convs`` 1, ``proj_depth`` 8,
xception_65 for both branches, comp output stride 16, patch output stride 4, atrous rates 3/6/9, decoder depth 64,
kernel 3, no trimap in the decoder):

- context ("comp") branch: Xception-65 (DeepLab v3+ flavour, BN eps 1e-3) + ASPP (eps 1e-5) + a one-stage separable
  decoder on ``entry_flow/block2`` features -> ``comp_proj`` 3x3 conv (8 ch, bias, ReLU), resized (align_corners) to
  the patch feature size and concatenated to the patch ASPP output;
- matting ("patch") branch: Xception-65 at output stride 4 + ASPP, then a 4-stage decoder (block3, block2, block1
  features and the normalised input image), 1x1 logits -> sigmoid = alpha; the colour model adds a second, identical
  decoder whose 3-channel logits are the foreground colour (no activation).

Module/parameter names follow the TF variable names ('/' -> '.', ``weights`` -> ``weight``, ``biases`` -> ``bias``,
``BatchNorm/gamma|beta|moving_mean|moving_variance`` -> ``BatchNorm.weight|bias|running_mean|running_var``); kernels
are stored OIHW (the converter transposes from TF's HWIO). Inputs are NCHW, 4 channels (RGB 0..255 + trimap 0..255).
Only the last (full-resolution) logits head is evaluated; the other four heads exist so the checkpoint round-trips.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

XCEPTION_EPS = 1e-3
HEAD_EPS = 1e-5


class BatchNorm(nn.Module):
    """Inference-only batch norm (TF's gamma/beta/moving_mean/moving_variance, no batch counter)."""

    def __init__(self, c: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def forward_(self, x):
        """In place on ``x`` (a fresh conv output) without autograd: out = x * a + b, a = w / sqrt(var + eps),
        b = bias - mean * a (the arithmetic of torch's CPU eval batch norm), saving one activation-sized buffer."""
        if torch.is_grad_enabled():
            return self.forward(x)
        a = self.weight / torch.sqrt(self.running_var + self.eps)
        b = self.bias - self.running_mean * a
        return x.mul_(a.view(1, -1, 1, 1)).add_(b.view(1, -1, 1, 1))


class Conv(nn.Module):
    """slim.conv2d / separable depthwise conv with TF 'SAME' (or fixed) padding, optional BN, optional ReLU."""

    def __init__(self, cin, cout, k, stride=1, rate=1, bn_eps=None, bias=False, relu=True, depthwise=False):
        super().__init__()
        self.stride, self.rate, self.relu, self.k = stride, rate, relu, k
        self.groups = cin if depthwise else 1
        self.weight = nn.Parameter(torch.zeros(cout, 1 if depthwise else cin, k, k))
        if bias:
            self.bias = nn.Parameter(torch.zeros(cout))
        else:
            self.bias = None
        if bn_eps is not None:
            self.BatchNorm = BatchNorm(cout, bn_eps)
        else:
            self.BatchNorm = None

    def forward(self, x):
        pad = self.rate * (self.k - 1) // 2
        x = F.conv2d(x, self.weight, self.bias, self.stride, pad, self.rate, self.groups)
        if self.BatchNorm is not None:
            x = self.BatchNorm.forward_(x)
        return F.relu(x, inplace=True) if self.relu else x


def _ns() -> nn.Module:
    return nn.Module()


def _resize(x, size):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class XceptionModule(nn.Module):
    def __init__(self, cin, depths, skip, stride, rate, act_in_sep):
        super().__init__()
        self.skip, self.act_in_sep = skip, act_in_sep
        c = cin
        for i, d in enumerate(depths, 1):
            s = stride if i == 3 else 1
            setattr(self, f"separable_conv{i}_depthwise",
                    Conv(c, c, 3, s, rate, XCEPTION_EPS, relu=act_in_sep, depthwise=True))
            setattr(self, f"separable_conv{i}_pointwise", Conv(c, d, 1, 1, 1, XCEPTION_EPS, relu=act_in_sep))
            c = d
        if skip == "conv":
            self.shortcut = Conv(cin, depths[-1], 1, stride, 1, XCEPTION_EPS, relu=False)

    def forward(self, x):
        res = x
        mid = None
        for i in (1, 2, 3):
            if not self.act_in_sep:
                res = F.relu(res)
            res = getattr(self, f"separable_conv{i}_depthwise")(res)
            res = getattr(self, f"separable_conv{i}_pointwise")(res)
            if i == 2:
                mid = res
        if self.skip == "conv":
            res = res + self.shortcut(x)
        elif self.skip == "sum":
            res = res + x
        return res, mid


# (scope, depths, skip, units, stride, activation inside separable convs)
_XCEPTION65 = (
    ("entry_flow.block1", (128, 128, 128), "conv", 1, 2, False),
    ("entry_flow.block2", (256, 256, 256), "conv", 1, 2, False),
    ("entry_flow.block3", (728, 728, 728), "conv", 1, 2, False),
    ("middle_flow.block1", (728, 728, 728), "sum", 16, 1, False),
    ("exit_flow.block1", (728, 1024, 1024), "conv", 1, 2, False),
    ("exit_flow.block2", (1536, 1536, 2048), "none", 1, 1, True),
)


class Xception65(nn.Module):
    """DeepLab's Xception-65 (``conmat/core/xception.py``) with the given output stride (atrous beyond it)."""

    def __init__(self, output_stride: int):
        super().__init__()
        self.entry_flow = _ns()
        self.middle_flow = _ns()
        self.exit_flow = _ns()
        self.entry_flow.conv1_1 = Conv(4, 32, 3, 2, 1, XCEPTION_EPS)
        self.entry_flow.conv1_2 = Conv(32, 64, 3, 1, 1, XCEPTION_EPS)
        target = output_stride // 2  # conv1_1 has stride 2
        current, rate, cin = 1, 1, 64
        self._units = []
        for scope, depths, skip, n, stride, act in _XCEPTION65:
            flow, block = scope.split(".")
            blk = _ns()
            setattr(getattr(self, flow), block, blk)
            for u in range(1, n + 1):
                if current == target:
                    mod = XceptionModule(cin, depths, skip, 1, rate, act)
                    rate *= stride
                else:
                    mod = XceptionModule(cin, depths, skip, stride, 1, act)
                    current *= stride
                unit = _ns()
                unit.xception_module = mod
                setattr(blk, f"unit_{u}", unit)
                self._units.append((scope, mod))
                cin = depths[-1]
        if current != target:
            raise ValueError(f"output stride {output_stride} cannot be reached")

    def forward(self, x):
        """x: normalised input. Returns (features, {endpoint name: tensor}) for the decoder end points."""
        x = self.entry_flow.conv1_2(self.entry_flow.conv1_1(x))
        ends = {}
        for scope, mod in self._units:
            x, mid = mod(x)
            if scope.startswith("entry_flow"):
                ends[scope.split(".")[1]] = mid
        return x, ends


class Encoder(nn.Module):
    """Scope ``<branch>/encoder``: xception_65 + ASPP (image pooling, 1x1, three 3x3 atrous, projection)."""

    def __init__(self, output_stride: int, atrous_rates=(3, 6, 9)):
        super().__init__()
        self.xception_65 = Xception65(output_stride)
        self.image_pooling = Conv(2048, 256, 1, bn_eps=HEAD_EPS)
        self.aspp0 = Conv(2048, 256, 1, bn_eps=HEAD_EPS)
        for i, r in enumerate(atrous_rates, 1):
            setattr(self, f"aspp{i}", Conv(2048, 256, 3, 1, r, HEAD_EPS))
        self.n_rates = len(atrous_rates)
        self.concat_projection = Conv(256 * (2 + len(atrous_rates)), 256, 1, bn_eps=HEAD_EPS)

    def forward(self, images):
        x = images * (2.0 / 255.0) - 1.0
        feats, ends = self.xception_65(x)
        ends["images"] = x
        # slim.avg_pool2d over [int((crop-1)/os)+1]^2 'VALID' = the whole feature map (its size is ceil(crop/os)),
        # then resize_bilinear back to that size = broadcast
        pooled = self.image_pooling(feats.mean(dim=(2, 3), keepdim=True))
        branches = [pooled.expand(-1, -1, feats.shape[2], feats.shape[3]), self.aspp0(feats)]
        branches += [getattr(self, f"aspp{i}")(feats) for i in range(1, self.n_rates + 1)]
        return self.concat_projection(torch.cat(branches, 1)), ends


class Decoder(nn.Module):
    """``refine_by_decoder_conmat``: per end point a 48-ch projection, upsample (align_corners), concat, 2 convs."""

    def __init__(self, in_ch: int, end_points, separable: bool, depth: int = 64, k: int = 3):
        super().__init__()
        self.decoder = _ns()
        self.end_points = tuple(name for name, _ in end_points)
        self.separable = separable
        c = in_ch
        for i, (_name, ch) in enumerate(end_points):
            setattr(self.decoder, f"feature_projection{i}", Conv(ch, 48, 1, bn_eps=HEAD_EPS))
            cin = 48 + c
            if separable:
                setattr(self.decoder, f"decoder_conv0_proj{i}_depthwise",
                        Conv(cin, cin, k, bn_eps=HEAD_EPS, depthwise=True))
                setattr(self.decoder, f"decoder_conv0_proj{i}_pointwise", Conv(cin, depth, 1, bn_eps=HEAD_EPS))
                setattr(self.decoder, f"decoder_conv1_proj{i}_depthwise",
                        Conv(depth, depth, k, bn_eps=HEAD_EPS, depthwise=True))
                setattr(self.decoder, f"decoder_conv1_proj{i}_pointwise", Conv(depth, depth, 1, bn_eps=HEAD_EPS))
            else:
                convs = _ns()
                convs.add_module(f"decoder_conv{i}_1", Conv(cin, depth, k, bn_eps=HEAD_EPS))
                convs.add_module(f"decoder_conv{i}_2", Conv(depth, depth, k, bn_eps=HEAD_EPS))
                setattr(self.decoder, f"decoder_conv{i}", convs)
            c = depth

    def forward(self, features, ends):
        x = features
        d = self.decoder
        for i, name in enumerate(self.end_points):
            enc = getattr(d, f"feature_projection{i}")(ends[name])
            x = torch.cat([enc, _resize(x, enc.shape[-2:])], 1)
            if self.separable:
                for j in (0, 1):
                    x = getattr(d, f"decoder_conv{j}_proj{i}_depthwise")(x)
                    x = getattr(d, f"decoder_conv{j}_proj{i}_pointwise")(x)
            else:
                convs = getattr(d, f"decoder_conv{i}")
                x = getattr(convs, f"decoder_conv{i}_2")(getattr(convs, f"decoder_conv{i}_1")(x))
        return x


_PATCH_ENDS = (("block3", 728), ("block2", 256), ("block1", 128), ("images", 4))


class CAMNet(nn.Module):
    """The whole two-branch network. ``forward(comp, patch)`` -> dict(alpha, mat_logits[, color])."""

    def __init__(self, color: bool = False, comp_output_stride: int = 16, patch_output_stride: int = 4,
                 proj_depth: int = 8, decoder_depth: int = 64):
        super().__init__()
        self.color = color
        self.patch_output_stride = patch_output_stride
        self.comp = _ns()
        self.comp.encoder = Encoder(comp_output_stride)
        # v10 + xception_65: the context decoder refines once, on end point 1 (block2), with separable convs
        self.comp.seg_decoder = Decoder(256, (("block2", 256),), separable=True, depth=decoder_depth)
        self.comp_proj = _ns()
        self.comp_proj.comp_proj_1 = Conv(decoder_depth, proj_depth, 3, bias=True, relu=True)
        self.patch = _ns()
        self.patch.encoder = Encoder(patch_output_stride)
        c = 256 + proj_depth
        self.patch.mat_decoder = Decoder(c, _PATCH_ENDS, separable=False, depth=decoder_depth)
        if color:
            self.patch.seg_decoder = Decoder(c, _PATCH_ENDS, separable=False, depth=decoder_depth)
        self.logits = _ns()
        self.logits.logits = _ns()
        heads = [("patch_mat_logits", 1)] + ([("patch_seg_logits", 3)] if color else [])
        for name, n in heads:
            for i in range(5):
                self.logits.logits.add_module(f"{name}_{i}", Conv(c if i == 0 else decoder_depth, n, 1, bias=True,
                                                                  relu=False))
        self.register_buffer("global_step", torch.zeros((), dtype=torch.int64))

    def context(self, comp):
        feats, ends = self.comp.encoder(comp)
        dec = self.comp.seg_decoder(feats, ends)
        return self.comp_proj.comp_proj_1(dec)

    def forward(self, comp: torch.Tensor, patch: torch.Tensor) -> dict:
        proj = self.context(comp)
        feats, ends = self.patch.encoder(patch)
        ph = (patch.shape[2] - 1) // self.patch_output_stride + 1
        pw = (patch.shape[3] - 1) // self.patch_output_stride + 1
        extra = _resize(proj, (ph, pw))
        feats = torch.cat([feats, extra], 1)
        del proj, extra
        mat = self.patch.mat_decoder(feats, ends)
        logits = self.logits.logits.patch_mat_logits_4(mat)
        del mat
        out = {"mat_logits": _resize(logits, patch.shape[-2:])}
        out["alpha"] = _resize(torch.sigmoid(logits), patch.shape[-2:])
        if self.color:
            col = self.patch.seg_decoder(feats, ends)
            out["color"] = _resize(self.logits.logits.patch_seg_logits_4(col), patch.shape[-2:])
        return out
