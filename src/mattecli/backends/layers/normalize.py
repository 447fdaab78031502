"""Input normalisation constants, in one place. Every family that normalises with ImageNet statistics uses these
(the official repositories all use torchvision's values)."""
from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``(x - mean) / std`` per channel of a [B,3,H,W] float tensor (a new tensor, dtype and device of ``x``)."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
