"""Where encoded frames go: the :class:`Sink` interface and the ``.partial`` naming.

Every output is written under a hidden name of its own next to its final path (:func:`work_path`:
``.clip.mov.<pid>-<random>.partial.mov``, unique per run) while its final path is locked
(:mod:`mattecli.batch.locks`, taken by the pipeline), and renamed only once it is complete and verified. Interrupted
runs therefore leave either a playable, clearly named partial output (the container is closed properly: encoder
flushed, trailer written), renamed to :func:`partial_path` (``clip.partial.mov``, ``frames.partial/``), or nothing;
never a corrupt file at the final path. Implementations: :class:`~mattecli.video.video_file.VideoFileSink` (a
container with audio copied) and :class:`~mattecli.video.png_sequence.PngSequenceSink` (numbered PNG files).
"""
from __future__ import annotations

import os
import secrets
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
    """Where an interrupted output is kept: ``out/clip.mov`` -> ``out/clip.partial.mov``."""
    d, b = os.path.split(final)
    stem, ext = os.path.splitext(b)
    return os.path.join(d, f"{stem}.partial{ext}")


def work_path(final: str) -> str:
    """Where an output is written while it is being made, unique to this run and hidden (never an input):
    ``out/clip.mov`` -> ``out/.clip.mov.<pid>-<random>.partial.mov``;
    ``out/seq`` -> ``out/.seq.<pid>-<random>.partial``."""
    d, b = os.path.split(final)
    ext = os.path.splitext(b)[1]
    return os.path.join(d, f".{b}.{os.getpid()}-{secrets.token_hex(4)}.partial{ext}")


def drop_stale_partial(final: str) -> None:
    """After a complete output is in place: the partial output an earlier interrupted run left beside it is stale
    (the caller holds the output's lock)."""
    import shutil

    stale = partial_path(final.rstrip("/\\"))
    if os.path.isdir(stale):
        shutil.rmtree(stale, ignore_errors=True)
    elif os.path.lexists(stale):
        try:
            os.unlink(stale)
        except OSError:
            pass


def keep_partial(tmp: str, dest: str) -> str:
    """Rename an interrupted output from its :func:`work_path` to ``dest`` (its :func:`partial_path`), replacing the
    partial output an earlier interrupted run may have left there; returns where it is now. The caller holds the
    output's lock."""
    import shutil

    try:
        if os.path.isdir(dest) and not os.path.islink(dest):
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError:
        return tmp                      # keep it where it is rather than lose it
    return dest


def open_sink(plan: EncodePlan, info, *, audio: bool = True, notes: list[str] | None = None) -> Sink:
    """The sink for ``plan`` (``info``: the source's :class:`~mattecli.video.reader.SourceInfo`)."""
    from .png_sequence import PngSequenceSink
    from .video_file import VideoFileSink

    if plan.kind == "sequence":
        return PngSequenceSink(plan, info, notes)
    return VideoFileSink(plan, info, audio=audio, notes=notes)
