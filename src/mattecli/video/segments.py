"""One long clip as segments cut at keyframes, matted in parallel (each a small clip of its own), joined by
:mod:`.join` into the same output a sequential run writes.

::

    index = key_index("long.mp4")                      # every frame's pts and where decoding can start (demux only)
    segs = plan_segments(index, parts=8, warm=8)        # cuts at the keyframes nearest to equal parts
    run_segment(backend, seg, info, plans, ...)         # a worker: decode from the keyframe, warm, matte, encode
    join_outputs(...)                                   # stream copy, audio and timestamps of the source

* a segment is decoded from its keyframe (``seek``), its frames picked by their pts (``start_pts <= pts <
  stop_pts``), with the same conversion as :class:`~mattecli.video.reader.VideoSource` (rotation, colour range), and
  encoded with the source's own timestamps: the joined stream is the sequential run's frames and timestamps;
* image models give every frame exactly as a sequential run; temporal models (RVM) carry a recurrent state that a
  segment would start cold: ``warm`` frames before the segment are run through the model first (not written), so
  the state has settled when the segment's first frame comes (:class:`WarmBackend`; the default,
  :data:`DEFAULT_WARM`, is measured in ``benchmarks/ray_scaleout.py``);
* segment files are hidden (``.NAME.seg0003.mp4``) next to the final output, written with the usual sinks (work
  name, verify, rename); :func:`segment_files` lists them for the join and the clean-up.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace
from fractions import Fraction

from ..errors import InputError
from .encode_plan import EncodePlan
from .reader import SWS_COLORSPACES, Frame, SourceInfo, rotate_upright

#: warm-up frames for temporal models. Measured with RVM (benchmarks/ray_scaleout.py, 320x180, segments of 40
#: frames), alpha of the segments after a cut against a sequential run, mean / pixels > 8 levels off (first 8
#: frames): N = 0: 0.32 / 0.88 % (0.50 / 1.55 %); N = 8: 0.25 / 0.64 % (0.27 / 0.98 %); N = 32: 0.094 / 0.24 %
#: (0.10 / 0.33 %). RVM's state keeps a long memory: 32 frames cut the difference 3-5x for 32 frames of compute per
#: segment (a few % of a segment of 1000 frames).
DEFAULT_WARM = 32
#: a clip is cut only into segments of at least this many frames (so that the warm-up costs at most ~25 %)
MIN_SEGMENT_FRAMES = 128


@dataclass
class KeyIndex:
    """Every video frame's pts in presentation order, and the positions (in that order) of the keyframes."""

    pts: list
    keys: list
    time_base: Fraction


@dataclass
class Segment:
    index: int
    first: int                  # frame number (presentation order) of its first written frame
    stop: int                   # one past its last
    start_pts: int
    stop_pts: int | None        # pts of frame ``stop`` (None: to the end of the clip)
    seek_pts: int | None        # keyframe decoding starts at (None: the start of the file)
    warm: int = 0               # frames before ``first`` run through the model, not written
    warm_pts: int | None = None  # pts of the first of them

    @property
    def frames(self) -> int:
        return self.stop - self.first


def key_index(path: str) -> KeyIndex | None:
    """Demux (no decoding) the first video stream: None when it cannot be cut (no timestamps, one keyframe)."""
    import av

    with av.open(path, "r") as c:
        if not c.streams.video:
            return None
        st = c.streams.video[0]
        pts, key_pts = [], []
        for p in c.demux(st):
            if not p.size:
                continue
            if p.pts is None:
                return None
            pts.append(p.pts)
            if p.is_keyframe:
                key_pts.append(p.pts)
        tb = Fraction(st.time_base)
    pts.sort()
    if len(set(pts)) != len(pts):
        return None
    pos = {p: i for i, p in enumerate(pts)}
    keys = sorted(pos[p] for p in key_pts)
    if len(keys) < 2:
        return None
    return KeyIndex(pts, keys, tb)


def plan_segments(index: KeyIndex, parts: int, *, warm: int = 0,
                  min_frames: int = MIN_SEGMENT_FRAMES) -> list[Segment]:
    """Cut at the keyframes nearest to ``parts`` equal parts, keeping every segment at least ``min_frames`` long;
    each segment but the first gets ``warm`` frames before it (fewer at the start of the clip)."""
    n = len(index.pts)
    parts = max(1, min(parts, n // max(1, min_frames)))
    cuts: list[int] = []
    for k in range(1, parts):
        target = round(n * k / parts)
        best = min(index.keys, key=lambda i: (abs(i - target), i))
        last = cuts[-1] if cuts else 0
        if best - last >= min_frames and n - best >= min_frames:
            cuts.append(best)
    bounds = [0, *cuts, n]
    segs = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        w = min(warm, a) if k else 0
        start = a - w
        seek = max((i for i in index.keys if i <= start), default=0)
        segs.append(Segment(index=k, first=a, stop=b, start_pts=index.pts[a],
                            stop_pts=index.pts[b] if b < n else None,
                            seek_pts=index.pts[seek] if k else None, warm=w,
                            warm_pts=index.pts[start] if w else None))
    return segs


def segment_path(final: str, k: int) -> str:
    """``out/clip_alpha.mp4`` -> ``out/.clip_alpha.mp4.seg0003.mp4`` (hidden: never an input)."""
    d, b = os.path.split(final)
    return os.path.join(d, f".{b}.seg{k:04d}{os.path.splitext(b)[1]}")


def segment_plans(plans: list[EncodePlan], k: int) -> list[EncodePlan]:
    return [replace(p, path=segment_path(p.path, k)) for p in plans]


def segment_files(final: str) -> list[str]:
    """Everything segments of ``final`` left: finished segment files, their work files and locks."""
    d, b = os.path.split(final)
    return sorted(glob.glob(os.path.join(glob.escape(d or "."), f".{glob.escape(b)}.seg*"))
                  + glob.glob(os.path.join(glob.escape(d or "."), f"..{glob.escape(b)}.seg*")))


class SegmentSource:
    """One segment of a video file, quacking like :class:`~mattecli.video.reader.VideoSource` for the pipeline:
    ``info`` (the clip's, with the segment's frame count), :meth:`frames` (the segment's frames), and before them
    :meth:`warm_frames` (the frames that warm a temporal model)."""

    def __init__(self, path: str, seg: Segment, info: SourceInfo):
        import av

        self.path = path
        self.seg = seg
        n = seg.frames
        rate = float(info.rate) if info.rate else None
        self.info = replace(info, frame_count=n, frame_count_exact=True,
                            duration=(n / rate) if rate else info.duration)
        self.frames_decoded = 0
        try:
            self._c = av.open(path, "r")
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{path}: cannot open it again for segment {seg.index} ({e})", path=path) from None
        self._st = self._c.streams.video[0]
        self._st.thread_type = "AUTO"
        if seg.seek_pts is not None:
            self._c.seek(seg.seek_pts, stream=self._st, backward=True, any_frame=False)
        self._gen = self._decode()
        self._next: Frame | None = None

    def _decode(self):
        from av.video.reformatter import VideoReformatter

        rf = VideoReformatter()
        seg, st = self.seg, self._st
        first = seg.warm_pts if seg.warm else seg.start_pts
        rotation = None
        i = seg.first - seg.warm
        for f in self._c.decode(st):
            if rotation is None:
                rotation = int(round(f.rotation or 0))
            if f.pts is None or f.pts < first:
                continue
            if seg.stop_pts is not None and f.pts >= seg.stop_pts:
                return
            kw = {}
            if f.color_range:
                kw["src_color_range"] = int(f.color_range)
            if f.colorspace in SWS_COLORSPACES:
                kw["src_colorspace"] = int(f.colorspace)
            img = rotate_upright(rf.reformat(f, format="rgb24", **kw).to_ndarray(), rotation)
            tb = Fraction(f.time_base) if f.time_base else Fraction(st.time_base)
            yield Frame(i, img, f.pts, tb, float(f.pts * tb))
            i += 1

    def _peek(self) -> Frame | None:
        if self._next is None:
            self._next = next(self._gen, None)
        return self._next

    def warm_frames(self, n: int):
        """Lists of at most ``n`` frames before the segment, in order."""
        batch = []
        while True:
            f = self._peek()
            if f is None or f.pts >= self.seg.start_pts:
                break
            batch.append(f)
            self._next = None
            if len(batch) == n:
                yield batch
                batch = []
        if batch:
            yield batch

    def frames(self):
        for _ in self.warm_frames(64):     # a model that was not warmed: skip them
            pass
        while True:
            f = self._peek()
            if f is None:
                break
            self._next = None
            self.frames_decoded += 1
            yield f
        if self.frames_decoded != self.seg.frames:
            raise InputError(f"{self.path}: segment {self.seg.index} gave {self.frames_decoded} of "
                             f"{self.seg.frames} frames (frames {self.seg.first}..{self.seg.stop - 1}); the file "
                             "cannot be cut at its keyframes: run it whole (--executor local)", path=self.path)

    def close(self) -> None:
        try:
            self._c.close()
        except Exception:  # noqa: BLE001 - closing must not mask the real error
            pass


class WarmBackend:
    """A backend whose ``reset()`` (called by the pipeline at the start of a clip) also runs the segment's warm-up
    frames through the model, so that a temporal model's state is that of a sequential run by the first frame
    written. Everything else is the backend's own."""

    def __init__(self, backend, source: SegmentSource, batch_size: int):
        self._backend = backend
        self._source = source
        self._batch = max(1, batch_size)
        self.warmed = 0

    def reset(self) -> None:
        import torch

        from ..backends.base import Batch
        from .frame_outputs import upload
        from .pipeline import device_of

        self._backend.reset()
        device = device_of(self._backend)
        with torch.inference_mode():
            for frames in self._source.warm_frames(self._batch):
                self._backend.predict_batch(Batch(image=upload([f.image for f in frames], device)))
                self.warmed += len(frames)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def run_segment(backend, path: str, seg: Segment, info: SourceInfo, plans: list[EncodePlan], *,
                batch_size: int = 4, composite_bg: str = "rvm-green", plate: str | None = None,
                notes: list | None = None) -> dict:
    """Matte one segment into its segment files (:func:`segment_plans`); returns frames, seconds, warm-up frames."""
    from . import pipeline
    from .job import VideoJob

    source = SegmentSource(path, seg, info)
    model = WarmBackend(backend, source, batch_size) if seg.warm else backend
    job = VideoJob(outputs=segment_plans(plans, seg.index), batch_size=batch_size, plate=plate,
                   composite_bg=composite_bg, smooth=None, audio=False, progress=False, keep_partial=False)
    try:
        res = pipeline.run_video(source, model, job, notes=notes)
    finally:
        source.close()
    return {"frames": res.frames, "seconds": res.seconds, "warmed": getattr(model, "warmed", 0),
            "batch_size": res.batch_size}
