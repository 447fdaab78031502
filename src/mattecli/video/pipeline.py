"""The streaming video pipeline: decode thread -> batches on the device -> model -> encode thread.

::

    VideoSource.frames() --[ThreadedReader, bounded queue]--> batches of N frames (uint8)
        -> pinned host memory -> device (non_blocking) -> float [0,1]
        -> Backend.predict_batch(images[B,3,H,W], trimaps, backgrounds)   (temporal state lives in the backend)
        -> optional temporal smoothing of alpha (image models)
        -> composite / alpha / foreground / rgba built on the device -> host
        --[WriterThread, bounded queue]--> sinks (encoders, PNG writers) -> verify -> rename

Both queues are bounded (a few batches), so memory stays flat whatever the length of the clip. CUDA out-of-memory
halves the batch (down to 1) and goes on; the smaller batch is kept for the rest of the clip. Temporal backends
(RVM) keep their recurrent state inside ``predict_batch``, so batch size does not change the result.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, MatteError, UsageError
from .reader import IMAGE_EXTS, Frame, SourceInfo, ThreadedReader, VideoSource, read_image_rgb
from .writer import OutputPlan, Sink, WriterThread, open_sink

COLORS = {
    "green": (120, 255, 155),   # RVM's composition green
    "chroma-green": (0, 177, 64), "blue": (0, 71, 187), "white": (255, 255, 255), "black": (0, 0, 0),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "red": (255, 0, 0), "magenta": (255, 0, 255),
}


# ---------------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------------
def parse_color(text: str) -> tuple[int, int, int] | None:
    """``green`` | ``#78ff9b`` | ``120,255,155`` -> (r, g, b) 0..255, or None if it is not a colour."""
    t = text.strip().lower()
    if t in COLORS:
        return COLORS[t]
    if t.startswith("#") and len(t) in (4, 7):
        h = t[1:]
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        try:
            return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        except ValueError:
            return None
    parts = [p.strip() for p in t.split(",")]
    if len(parts) == 3:
        try:
            vals = tuple(int(float(p)) for p in parts)
        except ValueError:
            return None
        if all(0 <= v <= 255 for v in vals):
            return vals  # type: ignore[return-value]
    return None


def rvm_auto_downsample(h: int, w: int, shot: str = "portrait") -> float:
    """RVM's downsample_ratio guidance (documentation/inference.md, "Downsample Ratio").

    The authors' table: <=512x512 -> 1; 1280x720 -> 0.375 (portrait) / 0.6 (full body); 1920x1080 -> 0.25 / 0.4;
    3840x2160 -> 0.125 / 0.2, "so that the downsampled resolution is between 256 and 512". Every row of the portrait
    column maps the long side to 480 px, the full-body column to 768 px; we use that rule for any size.
    (The official ``convert_video`` default when no ratio is given is ``min(512 / max(h, w), 1)``.)
    """
    side = max(h, w)
    if side <= 512:
        return 1.0
    target = 768.0 if shot == "full-body" else 480.0
    return min(1.0, target / side)


def parse_smooth(spec: str | None):
    """``none`` | ``ema[:W]`` (W = weight of the new frame, default 0.6) | ``median[:N]`` (odd N, default 3)."""
    if spec is None or spec.strip().lower() in ("", "none", "off", "0"):
        return None
    kind, _, arg = spec.strip().lower().partition(":")
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
    raise UsageError(f"--smooth {spec}: use none, ema[:W] (0<W<=1) or median[:N] (odd N)")


class AlphaSmoother:
    """Temporal filter of alpha for per-frame (image) models.

    ema:W    s_t = W * a_t + (1 - W) * s_{t-1}   (no delay; W = 1 is no smoothing)
    median:N per-pixel median over the N frames centred on t (delay (N-1)/2 frames; edges repeat the end frames)
    """

    def __init__(self, spec):
        self.kind, self.param = spec
        self.state = None
        self.window: deque = deque()
        self.seen = 0
        self.emitted = 0

    @property
    def delay(self) -> int:
        return (self.param - 1) // 2 if self.kind == "median" else 0

    def push(self, alphas: list) -> list:
        import torch

        out = []
        for a in alphas:
            if self.kind == "ema":
                self.state = a if self.state is None else self.param * a + (1 - self.param) * self.state
                out.append(self.state)
                continue
            r = self.delay
            if not self.window:
                for _ in range(r):
                    self.window.append(a)
            self.window.append(a)
            if len(self.window) > 2 * r + 1:
                self.window.popleft()
            self.seen += 1
            if len(self.window) == 2 * r + 1:
                out.append(torch.stack(list(self.window)).median(dim=0).values)
        return out

    def flush(self) -> list:
        import torch

        if self.kind != "median" or not self.window:
            return []
        out = []
        r = self.delay
        pending = self.seen - (self._emitted_count())
        for _ in range(pending):
            self.window.append(self.window[-1])
            if len(self.window) > 2 * r + 1:
                self.window.popleft()
            out.append(torch.stack(list(self.window)).median(dim=0).values)
        return out

    def _emitted_count(self) -> int:
        return max(0, self.seen - self.delay)


# ---------------------------------------------------------------------------------------------------------------
# auxiliary streams: plate, trimap, composite background
# ---------------------------------------------------------------------------------------------------------------
class FrameFeed:
    """Frames of a still image (repeated) or a second video read in step with the main one."""

    def __init__(self, path: str, info: SourceInfo, *, what: str, flag: str, gray: bool = False,
                 loop: bool = False, fit: bool = False, exact_count: bool = False):
        self.path, self.what, self.flag = path, what, flag
        self.size = (info.height, info.width)
        self.gray, self.loop, self.fit = gray, loop, fit
        self.still = None
        self.source = None
        self._reader = None
        self._last = None
        self.note = None
        self._count = 0
        if not os.path.exists(path) and "%" not in os.path.basename(path):
            raise InputError(f"{path}: no such file for {flag}", path=path)
        if os.path.isfile(path) and path.lower().endswith(IMAGE_EXTS):
            img = read_image_rgb(path, what)
            self.still = self._conform(img[..., 0] if gray else img)
        else:
            self._open()
            if exact_count and self.source.info.kind == "sequence" and info.frame_count and \
                    self.source.info.frame_count < info.frame_count:
                raise InputError(f"{path}: {what} sequence has {self.source.info.frame_count} frames, the video has "
                                 f"{info.frame_count}; give one {what} per frame", path=path)

    def _open(self):
        self.source = VideoSource(self.path, what=self.what, gray=self.gray)
        si = self.source.info
        if not self.fit and (si.height, si.width) != self.size:
            h, w = self.size
            raise InputError(f"{self.path}: {self.what} is {si.width}x{si.height} but the video is {w}x{h}; "
                             f"pass a {self.what} of the same size to {self.flag}", path=self.path)
        self._reader = ThreadedReader(self.source.frames(), maxsize=8, name="mattecli-decode-aux")

    def _conform(self, img: np.ndarray) -> np.ndarray:
        h, w = self.size
        if img.shape[:2] == (h, w):
            return img
        if not self.fit:
            raise InputError(f"{self.path}: {self.what} is {img.shape[1]}x{img.shape[0]} but the video is {w}x{h}; "
                             f"pass a {self.what} of the same size to {self.flag}", path=self.path)
        import cv2

        ih, iw = img.shape[:2]
        s = max(h / ih, w / iw)          # cover: fill the frame, crop the overflow (keeps the aspect ratio)
        nh, nw = max(h, int(math.ceil(ih * s))), max(w, int(math.ceil(iw * s)))
        r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        y, x = (nh - h) // 2, (nw - w) // 2
        return np.ascontiguousarray(r[y:y + h, x:x + w])

    def next(self) -> np.ndarray:
        if self.still is not None:
            return self.still
        while True:
            try:
                fr = next(self._reader)
                self._count += 1
                self._last = self._conform(fr.image)
                return self._last
            except StopIteration:
                if self.loop and self._count:
                    self.close()
                    self._count = 0
                    self._open()
                    continue
                if self._last is None:
                    raise InputError(f"{self.path}: {self.what} has no frames", path=self.path) from None
                if self.gray:
                    raise InputError(f"{self.path}: {self.what} ran out of frames; give one {self.what} per video "
                                     "frame", path=self.path) from None
                if self.note is None:
                    self.note = f"{self.path}: {self.what} is shorter than the video; its last frame was held"
                return self._last

    def close(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self.source is not None:
            self.source.close()
            self.source = None


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class VideoJob:
    outputs: list[OutputPlan]
    batch_size: int = 4
    plate: str | None = None            # --bg (background-plate models)
    trimap: str | None = None           # --trimap sequence/video
    composite_bg: str = "green"         # colour, image or video
    smooth: str | None = None
    audio: bool = True
    progress: bool = True
    keep_partial: bool = True           # on Ctrl-C/crash leave playable *.partial.* outputs


@dataclass
class VideoResult:
    outputs: list[str]
    frames: int
    seconds: float
    batch_size: int
    notes: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _fmt_secs(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "-:--:--"
    s = int(s + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _PlainBar:
    """Progress for a TTY under NO_COLOR or TERM=dumb: one line redrawn with a carriage return; no escape codes."""

    def __init__(self, stream, total: int | None, label: str):
        self.stream, self.total, self.label = stream, total, label
        self.done, self.t0, self._last, self._width = 0, time.perf_counter(), 0.0, 0

    def _line(self) -> str:
        el = time.perf_counter() - self.t0
        fps = self.done / el if el > 0 and self.done else 0.0
        n = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        eta = (self.total - self.done) / fps if self.total and fps else None
        return f"{self.label} {n} {fps:5.1f} fps {_fmt_secs(el)} ETA {_fmt_secs(eta)}"

    def _draw(self) -> None:
        line = self._line()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= 0.25:
            self._last = now
            self._draw()

    def stop(self) -> None:
        self._draw()
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _Progress:
    """The progress bar: shown only when stderr is a terminal (never in a log file or a pipe). Under NO_COLOR (or
    TERM=dumb) it is plain text redrawn with ``\\r``: no ANSI escape codes at all, not even bold."""

    def __init__(self, enabled: bool, total: int | None, label: str, stream=None):
        self.p = None
        self.plain = None
        stream = sys.stderr if stream is None else stream
        if not enabled or not _isatty(stream):
            return
        if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") == "dumb":
            self.plain = _PlainBar(stream, total, label)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, \
            TimeElapsedColumn, TimeRemainingColumn
        from rich.text import Text

        from ..cli._common import stderr_console

        class FPS(ProgressColumn):
            def render(self, task):
                sp = task.finished_speed or task.speed
                return Text(f"{sp:5.1f} fps" if sp else "  ... fps")

        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), FPS(),
                          TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                          console=stderr_console(), transient=False, refresh_per_second=4)
        self.p.start()
        self.task = self.p.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self.p is not None:
            self.p.advance(self.task, n)
        elif self.plain is not None:
            self.plain.advance(n)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
            self.p = None
        elif self.plain is not None:
            self.plain.stop()
            self.plain = None


def _device_of(backend):
    import torch

    d = getattr(backend, "device", None)
    return torch.device(d) if d is not None else torch.device("cpu")


def _dtype_of(backend):
    import torch

    d = getattr(backend, "dtype", None)
    return d if isinstance(d, torch.dtype) and d.is_floating_point else torch.float32


class VideoPipeline:
    """One clip through one model. ``run()`` returns a :class:`VideoResult` or raises (outputs cleaned up)."""

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
        self.plans = {p.type: p for p in job.outputs}
        self._smoother = AlphaSmoother(parse_smooth(job.smooth)) if parse_smooth(job.smooth) else None
        self._pending: deque = deque()   # frames waiting for smoothed alpha (median delay)

    # -- model call with OOM back-off ------------------------------------------------------------------------
    def _predict(self, x, tri, bg) -> dict:
        import torch

        n = x.shape[0]
        outs: list[dict] = []
        i = 0
        step = min(n, self.batch_size)
        while i < n:
            j = min(n, i + step)
            try:
                o = self.backend.predict_batch(x[i:j], None if tri is None else tri[i:j],
                                               None if bg is None else bg[i:j])
            except torch.OutOfMemoryError:
                if step == 1:
                    raise MatteError("out of device memory even at --batch-size 1; try --device cpu, a smaller "
                                     "--downsample-ratio or --precision fp16") from None
                step = max(1, step // 2)
                self.batch_size = step
                if x.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.notes.append(f"out of device memory: batch size lowered to {step}")
                continue
            outs.append(o)
            i = j
        if len(outs) == 1:
            return outs[0]
        res = {"alpha": torch.cat([o["alpha"] for o in outs])}
        if all(o.get("foreground") is not None for o in outs):
            res["foreground"] = torch.cat([o["foreground"] for o in outs])
        return res

    def _to_device(self, arr: np.ndarray, dtype, channels_last_in=True):
        import torch

        t = torch.from_numpy(arr)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            t = t.to(self.device)
        if channels_last_in:
            t = t.permute(0, 3, 1, 2)
        return t.to(dtype).div_(255.0)

    # -- per batch ---------------------------------------------------------------------------------------------
    def _process(self, frames: list[Frame], writer: WriterThread) -> None:
        import torch

        with torch.inference_mode():
            self._process_inner(frames, writer)

    def _process_inner(self, frames: list[Frame], writer: WriterThread) -> None:
        import torch

        imgs = np.stack([f.image for f in frames])
        x = self._to_device(imgs, self.dtype)
        tri = None
        if self.trimap_feed is not None:
            t = np.stack([self.trimap_feed.next() for _ in frames])[..., None]
            tt = self._to_device(t, self.dtype)
            tri = torch.full_like(tt, 0.5)
            tri[tt <= 0.1] = 0.0
            tri[tt >= 0.9] = 1.0
        bg = None
        if self.plate_feed is not None:
            bg = self._to_device(np.stack([self.plate_feed.next() for _ in frames]), self.dtype)
        out = self._predict(x, tri, bg)
        alpha = out["alpha"].float().clamp_(0, 1)
        fg = out.get("foreground")
        fg = x.float() if fg is None else fg.float().clamp_(0, 1)
        if self._smoother is None:
            self._emit(frames, imgs, alpha, fg, writer)
            return
        for f, im, g in zip(frames, imgs, fg):
            self._pending.append((f, im, g))
        self._emit_smoothed(self._smoother.push(list(alpha)), writer)

    def _emit_smoothed(self, alphas: list, writer) -> None:
        if not alphas:
            return
        items = [self._pending.popleft() for _ in alphas]
        self._emit([i[0] for i in items], [i[1] for i in items], alphas, [i[2] for i in items], writer)

    def _emit(self, frames, imgs, alphas, fgs, writer) -> None:
        """Build the requested outputs frame by frame (temporaries stay one frame big) and queue them."""
        import torch

        a_all = alphas if torch.is_tensor(alphas) else torch.stack(list(alphas))   # [B,1,H,W]
        fg_all = fgs if torch.is_tensor(fgs) else torch.stack(list(fgs))           # [B,3,H,W]
        cbs = None
        if "composite" in self.types and self.comp_feed is not None:
            cbs = self._to_device(np.stack([self.comp_feed.next() for _ in frames]), torch.float32)
        for k, f in enumerate(frames):
            a, fg = a_all[k], fg_all[k]
            arrays: dict[str, Any] = {}
            for t in self.types:
                bits16 = self.plans[t].bits == 16
                if t == "alpha":
                    arrays[t] = _quant(a[0], bits16)
                elif t == "foreground":
                    arrays[t] = _quant(fg.permute(1, 2, 0), bits16)
                elif t == "rgba":
                    rgba = torch.cat([fg * (a > 0), a], dim=0)
                    arrays[t] = _quant(rgba.permute(1, 2, 0), bits16, inplace=True)
                elif t == "composite":
                    cb = cbs[k] if cbs is not None else self.comp_const[0]
                    comp = torch.lerp(cb.expand_as(fg), fg, a)          # fg * a + cb * (1 - a)
                    arrays[t] = _quant(comp.permute(1, 2, 0), bits16, inplace=True)
            writer.put((f, arrays))
        self.progress.advance(len(frames))
        self.frames_done += len(frames)

    # -- run ---------------------------------------------------------------------------------------------------
    def run(self) -> VideoResult:
        import torch

        job, info = self.job, self.info
        self.device = _device_of(self.backend)
        self.dtype = _dtype_of(self.backend)
        self.frames_done = 0
        self.trimap_feed = self.plate_feed = self.comp_feed = None
        self.comp_const = None
        sinks: list[Sink] = []
        reader = writer = None
        self.progress = _Progress(False, None, "")
        t0 = time.perf_counter()
        try:
            if job.trimap:
                self.trimap_feed = FrameFeed(job.trimap, info, what="trimap", flag="--trimap", gray=True,
                                             exact_count=True)
            if job.plate:
                self.plate_feed = FrameFeed(job.plate, info, what="background plate", flag="--bg")
            if "composite" in self.types:
                col = parse_color(job.composite_bg or "green")
                if col is not None:
                    self.comp_const = torch.tensor(col, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) / 255
                elif os.path.exists(job.composite_bg) or "%" in os.path.basename(job.composite_bg):
                    self.comp_feed = FrameFeed(job.composite_bg, info, what="composite background",
                                               flag="--composite-bg", loop=True, fit=True)
                    if self.comp_feed.still is not None:
                        img = self.comp_feed.still
                        self.comp_const = self._to_device(img[None], torch.float32)
                        self.comp_feed = None
                else:
                    raise UsageError(f"--composite-bg {job.composite_bg!r}: not a colour (green, #RRGGBB, R,G,B) "
                                     "nor an existing image or video")
            for plan in job.outputs:
                sinks.append(open_sink(plan, info, audio=job.audio, notes=self.notes))
            reset = getattr(self.backend, "reset", None)
            if reset is not None:
                reset()
            depth = max(2, 2 * self.batch_size)
            reader = ThreadedReader(self.source.frames(), maxsize=depth)
            writer = WriterThread(sinks, maxsize=depth)
            self.progress = _Progress(job.progress, info.frame_count, os.path.basename(info.path.rstrip("/")) or "video")
            batch: list[Frame] = []
            for fr in reader:
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
            done = [s.finish() for s in sinks]
        except BaseException as e:
            partial = []
            if reader is not None:
                reader.stop()
            if writer is not None:
                writer.abort()
            keep = job.keep_partial and self.frames_done > 0 and not isinstance(e, SystemExit)
            for s in sinks:
                try:
                    p = s.abort(keep)
                except Exception:  # noqa: BLE001
                    p = None
                if p:
                    partial.append(p)
            self.partial = partial
            if partial:
                self.notes.append("partial output kept: " + ", ".join(partial))
            raise
        finally:
            self.progress.close()
            for feed in (self.trimap_feed, self.plate_feed, self.comp_feed):
                if feed is not None:
                    if feed.note:
                        self.notes.append(feed.note)
                    feed.close()
            self.source.close()
        return VideoResult(done, self.frames_done, time.perf_counter() - t0, self.batch_size, self.notes)


def _quant(t, bits16: bool, inplace: bool = False) -> np.ndarray:
    """float [0,1] tensor -> uint8 / uint16 numpy on the host (``inplace``: t is a temporary we may scale)."""
    import torch

    scale = 65535.0 if bits16 else 255.0
    q = t.mul_(scale) if inplace else t * scale
    q = q.add_(0.5).clamp_(0, scale)
    if bits16:
        return q.to(torch.int32).cpu().numpy().astype(np.uint16)
    return q.to(torch.uint8).cpu().numpy()


def run_video(source: VideoSource, backend, job: VideoJob, notes: list[str] | None = None) -> VideoResult:
    return VideoPipeline(source, backend, job, notes=notes).run()
