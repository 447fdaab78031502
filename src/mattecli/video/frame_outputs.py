"""The output frames of a clip, built on the device from the model's alpha and foreground, then copied to the host
as uint8 / uint16 arrays for the encoders.

Per frame (temporaries stay one frame big, whatever the batch): ``alpha`` (HxW), ``foreground`` (HxWx3), ``rgba``
(straight alpha; colour zeroed where alpha is 0) and ``composite`` (``fg * a + bg * (1 - a)`` over a colour, an image
or a looping video, see :mod:`.feeds`).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import UsageError
from .encode_plan import EncodePlan
from .feeds import FrameFeed
from .reader import SourceInfo


def upload(arrays: list, device):
    """Host frames (HxWx3 or HxW uint8 numpy, one per frame) -> a [N,C,H,W] uint8 tensor on ``device``: stacked
    straight into pinned memory and copied without blocking on CUDA. The channels stay last in memory (NHWC)."""
    import torch

    shape = (len(arrays),) + tuple(arrays[0].shape)
    if device.type == "cuda":
        host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        np.stack(arrays, out=host.numpy())
        t = host.to(device, non_blocking=True)
    else:
        t = torch.from_numpy(np.stack(arrays))
        if device.type != "cpu":
            t = t.to(device)
    return t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)


def quantise(t, bits16: bool, inplace: bool = False) -> np.ndarray:
    """float [0,1] tensor -> uint8 / uint16 numpy on the host (``inplace``: ``t`` is a temporary we may scale)."""
    import torch

    scale = 65535.0 if bits16 else 255.0
    q = t.mul_(scale) if inplace else t * scale
    q = q.add_(0.5).clamp_(0, scale)
    if bits16:
        return q.to(torch.int32).cpu().numpy().astype(np.uint16)
    return q.to(torch.uint8).cpu().numpy()


class FrameOutputs:
    """Builds ``{output type: host array}`` for each frame. ``composite_bg``: a colour (:mod:`mattecli.imaging.colour`),
    an image or a video / image sequence (fitted and looped)."""

    def __init__(self, plans: list[EncodePlan], info: SourceInfo, device, composite_bg: str | None):
        self.types = [p.type for p in plans]
        self.bits16 = {p.type: p.bits == 16 for p in plans}
        self.device = device
        self.const = None      # [3,H,W] or [3,1,1] float on the device
        self.feed = None
        if "composite" in self.types:
            self._background(composite_bg or "rvm-green", info)

    def _background(self, spec: str, info: SourceInfo) -> None:
        import torch

        from ..imaging.colour import NAMED_COLOURS, colour_or_none

        col = colour_or_none(spec)
        if col is not None:
            self.const = torch.from_numpy(col).to(self.device).view(3, 1, 1)
            return
        if not (os.path.exists(spec) or "%" in os.path.basename(spec)):
            raise UsageError(f"--composite-bg {spec!r}: not a colour (#RRGGBB, R,G,B, r,g,b or a name: "
                             f"{', '.join(sorted(NAMED_COLOURS))}) nor an existing image or video")
        feed = FrameFeed(spec, info, what="composite background", flag="--composite-bg", loop=True, fit=True)
        if feed.still is not None:
            self.const = upload([feed.still], self.device)[0].float().div_(255.0)
            feed.close()
        else:
            self.feed = feed

    def backgrounds(self, n: int):
        """The composite backgrounds of the next ``n`` frames ([n,3,H,W] uint8 on the device), or None."""
        if self.feed is None:
            return None
        return upload([self.feed.next() for _ in range(n)], self.device)

    def build(self, alpha, fg, bg=None) -> dict:
        """alpha [1,H,W], fg [3,H,W] (float in [0,1] on the device), bg [3,H,W] uint8 or None -> host arrays."""
        import torch

        out: dict = {}
        for t in self.types:
            bits16 = self.bits16[t]
            if t == "alpha":
                out[t] = quantise(alpha[0], bits16)
            elif t == "foreground":
                out[t] = quantise(fg.permute(1, 2, 0), bits16)
            elif t == "rgba":
                rgba = torch.cat([fg * (alpha > 0), alpha], dim=0)
                out[t] = quantise(rgba.permute(1, 2, 0), bits16, inplace=True)
            elif t == "composite":
                cb = bg.float().div_(255.0) if bg is not None else self.const
                comp = torch.lerp(cb.expand_as(fg), fg, alpha)          # fg * a + cb * (1 - a)
                out[t] = quantise(comp.permute(1, 2, 0), bits16, inplace=True)
        return out

    def close(self) -> str | None:
        """Stop the background feed; returns its note (held last frame...) if any."""
        if self.feed is None:
            return None
        note = self.feed.note
        self.feed.close()
        self.feed = None
        return note
