"""One clip through one model, streamed: decode thread -> batches on the device -> model -> encode thread.

::

    VideoSource.frames() --[ThreadedReader, bounded queue]--> N decoded frames (uint8, host)
        -> pinned host memory -> device (non_blocking on CUDA): uint8 [N,3,H,W]
        -> Batch(image, trimap=quantise_levels(trimap frames), background=plate)     (no float conversion here)
        -> Backend.predict_batch(batch) -> Prediction                 (the family converts; RVM carries its state)
        -> optional temporal smoothing of alpha (:mod:`.smoothing`)
        -> composite / alpha / foreground / rgba built on the device (:mod:`.frame_outputs`) -> host
        --[WriterThread, bounded queue]--> sinks (encoders, PNG writers) -> read-back check -> rename

Every output path is locked for the whole clip (:mod:`mattecli.batch.locks`; another run writing the same output
fails at once, or waits with ``job.wait``). A clip that ends before the end its container announces (truncated or
damaged: :class:`~mattecli.video.reader.TruncatedInput`) is an error naming the frame and the frames written vs
expected (the frames before it are kept as a partial output), unless ``job.allow_truncated`` (then a warning, and the
outputs hold the frames that decode).

Both queues are bounded (a few batches), so memory stays flat whatever the length of the clip. Running out of device
memory (``torch.OutOfMemoryError``) halves the batch (down to 1) and goes on; the smaller batch is kept for the rest
of the clip. ``backend.reset()`` is called at the start of the clip; temporal backends (RVM) carry their recurrent
state across ``predict_batch`` calls, so the batch size does not change the result.
"""
from __future__ import annotations

import os
import time
from collections import deque

from ..batch.locks import hold_outputs
from ..errors import InputError, MatteError, UsageError
from .feeds import FrameFeed
from .frame_outputs import FrameOutputs, upload
from .job import VideoJob, VideoResult
from .oserrors import ensure_parent
from .reader import Frame, TruncatedInput, VideoSource
from .sinks import Sink, open_sink
from .smoothing import AlphaSmoother, parse_smooth
from .threads import ThreadedReader, WriterThread


def device_of(backend):
    import torch

    d = getattr(backend, "device", None)
    return torch.device(d) if d is not None else torch.device("cpu")


class VideoPipeline:
    """One clip through one model. ``run()`` returns a :class:`VideoResult` or raises (outputs cleaned up, or kept
    as ``*.partial.*`` when interrupted with ``job.keep_partial``)."""

    def __init__(self, source: VideoSource, backend, job: VideoJob, *, notes: list[str] | None = None):
        self.source = source
        self.info = source.info
        self.backend = backend
        self.job = job
        self.notes = notes if notes is not None else []
        if job.batch_size < 1:
            raise UsageError(f"--batch-size {job.batch_size}: must be at least 1")
        self.batch_size = job.batch_size
        self.types = [p.type for p in job.outputs]
        if len(set(self.types)) != len(self.types):
            raise UsageError("each --output-type may be given once")
        spec = parse_smooth(job.smooth)
        self._smoother = AlphaSmoother(spec) if spec else None
        self._pending: deque = deque()   # (frame, fg or None, image) waiting for smoothed alpha (median delay)
        self.frames_done = 0
        self.partial: list[str] = []

    # -- the model, with out-of-memory back-off ----------------------------------------------------------------
    def _predict(self, batch):
        import torch

        from ..backends.base import Prediction

        parts = []
        i, n = 0, batch.n
        step = min(n, self.batch_size)
        while i < n:
            j = min(n, i + step)
            try:
                parts.append(self.backend.predict_batch(batch.slice(i, j)))
            except torch.OutOfMemoryError:
                if step == 1:
                    raise MatteError("out of device memory even at --batch-size 1; try --device cpu, a smaller "
                                     "--downsample-ratio or --precision fp16") from None
                step = max(1, step // 2)
                self.batch_size = step
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.notes.append(f"out of device memory: batch size lowered to {step}")
                continue
            i = j
        return Prediction.cat(parts)

    # -- per batch ---------------------------------------------------------------------------------------------
    def _batch(self, frames: list[Frame]):
        from ..backends.base import Batch
        from ..imaging.trimap import quantise_levels

        n = len(frames)
        image = upload([f.image for f in frames], self.device)
        trimap = background = None
        if self.trimap_feed is not None:
            trimap = quantise_levels(upload([self.trimap_feed.next() for _ in frames], self.device))
        if self.plate_still is not None:
            background = self.plate_still.expand(n, -1, -1, -1)
        elif self.plate_feed is not None:
            background = upload([self.plate_feed.next() for _ in frames], self.device)
        return Batch(image=image, trimap=trimap, background=background)

    def _process(self, frames: list[Frame], writer: WriterThread) -> None:
        import torch

        with torch.inference_mode():
            batch = self._batch(frames)
            pred = self._predict(batch)
            if tuple(pred.alpha.shape[-2:]) != batch.size:
                h, w = pred.alpha.shape[-2:]
                raise MatteError(f"{self.info.path}: the model returned a {w}x{h} alpha for {self.info.width}x"
                                 f"{self.info.height} frames")
            alpha = pred.alpha.to(self.device).float().clamp_(0, 1)
            fg = None if pred.foreground is None else pred.foreground.to(self.device)
            if self._smoother is None:
                self._emit([(f, None if fg is None else fg[k], batch.image[k]) for k, f in enumerate(frames)],
                           list(alpha), writer)
                return
            for k, f in enumerate(frames):
                self._pending.append((f, None if fg is None else fg[k], batch.image[k]))
            self._emit_smoothed(self._smoother.push(list(alpha)), writer)

    def _emit_smoothed(self, alphas: list, writer) -> None:
        if alphas:
            self._emit([self._pending.popleft() for _ in alphas], alphas, writer)

    def _emit(self, items: list, alphas: list, writer) -> None:
        """Build the requested outputs frame by frame and queue them for the encoders. ``items``: (frame,
        foreground or None, image) per frame; the image stands in for a foreground the model does not predict."""
        bgs = self.outputs.backgrounds(len(items))
        for k, ((frame, fg, image), a) in enumerate(zip(items, alphas)):
            fg = image.float().div_(255.0) if fg is None else fg.float().clamp(0, 1)
            writer.put((frame, self.outputs.build(a, fg, None if bgs is None else bgs[k])))
        self.progress.advance(len(items))
        self.frames_done += len(items)

    # -- run ---------------------------------------------------------------------------------------------------
    def _open_feeds(self) -> None:
        job, info = self.job, self.info
        if job.trimap:
            self.trimap_feed = FrameFeed(job.trimap, info, what="trimap", flag="--trimap", gray=True,
                                         exact_count=True)
        if job.plate:
            self.plate_feed = FrameFeed(job.plate, info, what="background plate", flag="--bg")
            if self.plate_feed.still is not None:
                self.plate_still = upload([self.plate_feed.still], self.device)
        self.outputs = FrameOutputs(job.outputs, info, self.device, job.composite_bg)

    def _close_feeds(self) -> None:
        notes = [self.outputs.close()] if self.outputs is not None else []
        for feed in (self.trimap_feed, self.plate_feed):
            if feed is not None:
                notes.append(feed.note)
                feed.close()
        self.notes.extend(n for n in notes if n)

    def run(self) -> VideoResult:
        import torch

        from ..progress import Progress

        job, info = self.job, self.info
        self.device = device_of(self.backend)
        self.trimap_feed = self.plate_feed = self.plate_still = self.outputs = None
        sinks: list[Sink] = []
        reader = writer = locks = None
        truncated: TruncatedInput | None = None
        label = job.progress_label or os.path.basename(info.path.rstrip("/")) or "video"
        self.progress = Progress(label, total=info.frame_count, unit="frames", enabled=job.progress)
        t0 = time.perf_counter()
        try:
            self._open_feeds()
            for plan in job.outputs:
                ensure_parent(plan.path)
            locks = hold_outputs([plan.path for plan in job.outputs], wait=job.wait)
            for plan in job.outputs:
                sinks.append(open_sink(plan, info, audio=job.audio, notes=self.notes))
            self.backend.reset()
            depth = max(2, 2 * self.batch_size)
            reader = ThreadedReader(self.source.frames(), maxsize=depth)
            writer = WriterThread(sinks, maxsize=depth)
            self.progress.start()
            batch: list[Frame] = []
            while True:
                try:
                    fr = next(reader)
                except StopIteration:
                    break
                except TruncatedInput as e:      # after the last good frame: those are still written
                    truncated = e
                    break
                batch.append(fr)
                if len(batch) >= self.batch_size:
                    self._process(batch, writer)
                    batch = []
            if batch:
                self._process(batch, writer)
            if self._smoother is not None:
                with torch.inference_mode():
                    self._emit_smoothed(self._smoother.flush(), writer)
            writer.close()
            if truncated is not None:
                self._truncated(truncated)
            done = [s.finish() for s in sinks]
        except BaseException as e:
            if reader is not None:
                reader.stop()
            if writer is not None:
                writer.abort()
            keep = job.keep_partial and self.frames_done > 0 and not isinstance(e, SystemExit)
            for s in sinks:
                try:
                    p = s.abort(keep)
                except Exception:  # noqa: BLE001 - cleaning up must not mask the real error
                    p = None
                if p:
                    self.partial.append(p)
            if self.partial:
                self.notes.append("partial output kept: " + ", ".join(self.partial))
            raise
        finally:
            if locks is not None:
                locks.close()
            self.progress.stop()
            self._close_feeds()
            self.source.close()
        decoded = self.source.frames_decoded
        expected = info.frame_count if info.kind == "video" and info.frame_count != decoded else None
        return VideoResult(done, self.frames_done, time.perf_counter() - t0, self.batch_size, self.notes,
                           frames_expected=expected)

    def _truncated(self, e: TruncatedInput) -> None:
        """The clip ended early: a warning with ``job.allow_truncated``, otherwise the clip's error."""
        of = f" of {e.expected}" if e.expected else ""
        at = f"the input ends early at frame {e.frame}{of} ({e.why})"
        if self.job.allow_truncated:
            self.notes.append(f"{self.info.path}: {at}; the outputs hold the {self.frames_done} frames that decode "
                              "(--allow-truncated)")
            return
        raise InputError(f"{self.info.path}: {at}; {self.frames_done} of {e.expected or '?'} frames written, the "
                         "output was not finished; pass --allow-truncated to keep the frames that decode",
                         path=self.info.path)


def run_video(source: VideoSource, backend, job: VideoJob, notes: list[str] | None = None) -> VideoResult:
    """Matte one clip (see :class:`VideoPipeline`)."""
    return VideoPipeline(source, backend, job, notes=notes).run()
