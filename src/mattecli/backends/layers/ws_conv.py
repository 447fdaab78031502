"""Weight-standardised convolutions, in the two flavours the matting papers ship.

``WSConv2d`` follows FBA Matting (``networks/layers_WS.py`` of MarcoForte/FBA_Matting): the weight is standardised
*in place* (per output channel, biased variance, eps 1e-5, via ``F.batch_norm``) every time ``train(mode)`` is
called, which includes ``eval()``, and at every forward pass in training mode. In eval mode the forward uses the
stored weight as it is. A freshly loaded checkpoint therefore has to go through exactly one ``eval()`` (or
``train()``) call before it gives the authors' outputs -- ``TorchBackend`` does that once after loading.
Calling ``eval()`` again standardises again (nearly, but not exactly, idempotent), as in the official code.

``WSConv2dFwd`` follows SIM (``networks/layers_WS.py`` of nowsyn/SIM): the weight is standardised on the fly in every
forward pass (mean over in*kh*kw, *unbiased* variance, ``w / (sqrt(var + 1e-12) + 1e-5)``) and never modified.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class WSConv2d(nn.Conv2d):
    """FBA-style weight standardisation: in place, at ``train()``/``eval()`` time."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, eps=1e-5):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.eps = eps

    @torch.no_grad()
    def normalize_weight(self) -> None:
        w = self.weight
        std = F.batch_norm(w.view(1, self.out_channels, -1), None, None, training=True, momentum=0.0,
                           eps=self.eps).reshape_as(w)
        self.weight.data = std

    def forward(self, x):
        if self.training:
            self.normalize_weight()
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def train(self, mode: bool = True):
        super().train(mode)
        self.normalize_weight()
        return self


class WSConv2dFwd(nn.Conv2d):
    """SIM-style weight standardisation: computed in every forward pass, stored weight untouched."""

    def standardized_weight(self):
        w = self.weight
        mean = w.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        w = w - mean
        std = torch.sqrt(torch.var(w.view(w.size(0), -1), dim=1) + 1e-12).view(-1, 1, 1, 1) + 1e-5
        return w / std.expand_as(w)

    def forward(self, x):
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)
