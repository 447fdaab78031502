"""Temporal smoothing of alpha for per-frame (image) models: ``--smooth none | ema[:W] | median[:N]``.

ema:W     s_t = W * a_t + (1 - W) * s_{t-1}   (no delay; W = 1 is no smoothing)
median:N  per-pixel median over the N frames centred on t (delay (N-1)/2 frames; the ends repeat the end frames)

The filter runs on the device, on the [1,H,W] alpha tensors of consecutive frames.
"""
from __future__ import annotations

from collections import deque

from ..errors import UsageError


def parse_smooth(spec: str | None):
    """``none`` | ``ema[:W]`` (W = weight of the new frame, default 0.6) | ``median[:N]`` (odd N, default 3)
    -> None or (kind, parameter). A usage error for anything else."""
    if spec is None or spec.strip().lower() in ("", "none", "off", "0"):
        return None
    kind, _, arg = spec.strip().lower().partition(":")
    try:
        if kind == "ema":
            w = float(arg) if arg else 0.6
            if not 0 < w <= 1:
                raise UsageError(f"--smooth {spec}: the EMA weight must be in (0, 1]")
            return ("ema", w)
        if kind == "median":
            n = int(arg) if arg else 3
            if n < 1 or n % 2 == 0 or n > 15:
                raise UsageError(f"--smooth {spec}: the median window must be odd, 1..15")
            return ("median", n)
    except ValueError:
        pass
    raise UsageError(f"--smooth {spec}: use none, ema[:W] (0<W<=1) or median[:N] (odd N)")


class AlphaSmoother:
    """Push alphas in frame order, get the smoothed alphas out (fewer at first with a median: its delay);
    :meth:`flush` at the end of the clip returns the rest."""

    def __init__(self, spec):
        self.kind, self.param = spec
        self.state = None
        self.window: deque = deque()
        self.seen = 0

    @property
    def delay(self) -> int:
        return (self.param - 1) // 2 if self.kind == "median" else 0

    def _median(self):
        import torch

        return torch.stack(list(self.window)).median(dim=0).values

    def push(self, alphas: list) -> list:
        out = []
        for a in alphas:
            if self.kind == "ema":
                self.state = a if self.state is None else self.param * a + (1 - self.param) * self.state
                out.append(self.state)
                continue
            r = self.delay
            if not self.window:
                self.window.extend([a] * r)
            self.window.append(a)
            if len(self.window) > 2 * r + 1:
                self.window.popleft()
            self.seen += 1
            if len(self.window) == 2 * r + 1:
                out.append(self._median())
        return out

    def flush(self) -> list:
        if self.kind != "median" or not self.window:
            return []
        out = []
        r = self.delay
        emitted = max(0, self.seen - r)
        for _ in range(self.seen - emitted):
            self.window.append(self.window[-1])
            if len(self.window) > 2 * r + 1:
                self.window.popleft()
            out.append(self._median())
        return out
