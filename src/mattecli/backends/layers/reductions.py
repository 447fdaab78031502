"""Reductions whose result must not depend on the CPU's kernels.

``torch.argmax`` documents "the first maximal value" on ties, but its vectorised CPU reductions do not keep that
promise on every instruction set: on saturated maps (sigmoid glance maps of exactly 1.0 in two channels) an AVX2
machine returned another index than an AVX-512 one at a few pixels. The official pipelines break ties to the first
channel (numpy's argmax, and torch's on the machine the authors ran), so :func:`first_argmax` does that explicitly:
the maximum (exact on every kernel), then the lowest channel equal to it.
"""
from __future__ import annotations

import torch


def first_argmax(x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
    """Index of the first maximum along ``dim`` (int64), on every CPU and device alike."""
    n = x.shape[dim]
    shape = [1] * x.dim()
    shape[dim] = n
    # channel c gets the weight n - c where it equals the maximum, 0 elsewhere: the largest weight is the first max
    rank = torch.arange(n, 0, -1, device=x.device, dtype=torch.int64).view(shape)
    best = ((x == x.amax(dim=dim, keepdim=True)).to(torch.int64) * rank).amax(dim=dim, keepdim=keepdim)
    return n - best
