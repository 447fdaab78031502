"""Where encoded frames go: the :class:`Sink` interface and the ``.partial`` naming.

Every output is written under a ``.partial`` name next to its final path (``out.partial.mov``, ``frames.partial/``)
and renamed only once it is complete and verified. Interrupted runs therefore leave either a playable, clearly named
partial file (the container is closed properly: encoder flushed, trailer written) or nothing, never a corrupt file at
the final path. Implementations: :class:`~mattecli.video.video_file.VideoFileSink` (a container with audio copied)
and :class:`~mattecli.video.png_sequence.PngSequenceSink` (numbered PNG files).
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from .encode_plan import EncodePlan


class Sink:
    plan: EncodePlan
    frames_written = 0

    def write(self, arr: np.ndarray, pts: int | None, time_base: Fraction, t: float) -> None:
        raise NotImplementedError

    def finish(self) -> str:
        """Close, verify, rename to the final path; returns the final path."""
        raise NotImplementedError

    def abort(self, keep_partial: bool) -> str | None:
        """Stop early. keep_partial: leave a playable ``.partial`` output (returned) where possible."""
        raise NotImplementedError


def partial_path(final: str) -> str:
    """``out/clip.mov`` -> ``out/clip.partial.mov``."""
    d, b = os.path.split(final)
    stem, ext = os.path.splitext(b)
    return os.path.join(d, f"{stem}.partial{ext}")


def open_sink(plan: EncodePlan, info, *, audio: bool = True, notes: list[str] | None = None) -> Sink:
    """The sink for ``plan`` (``info``: the source's :class:`~mattecli.video.reader.SourceInfo`)."""
    from .png_sequence import PngSequenceSink
    from .video_file import VideoFileSink

    if plan.kind == "sequence":
        return PngSequenceSink(plan, info, notes)
    return VideoFileSink(plan, info, audio=audio, notes=notes)
