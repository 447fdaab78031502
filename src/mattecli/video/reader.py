"""Reading a clip: a video file (anything PyAV/FFmpeg reads) or an image sequence (:mod:`.sequence`).

:class:`VideoSource` yields :class:`Frame` objects: upright RGB ``uint8`` pixels (the display matrix / rotation side
data is applied) plus the frame's own ``pts`` and ``time_base``: timestamps are carried through untouched, never
re-numbered, so variable-frame-rate clips keep their timing. The first frame is decoded when the source is opened: a
file that is not a video, an audio-only file or a clip with zero frames fails *before* any output is created, with a
one-line :class:`~mattecli.errors.InputError`. Run :meth:`VideoSource.frames` in a background thread with
:class:`~mattecli.video.threads.ThreadedReader`.

A clip that stops giving frames before its end raises :class:`TruncatedInput` after its last good frame: a decoding
error mid-clip, or a file cut short (FFmpeg's demuxers end such files quietly: a truncated MP4 with its index at the
front, a truncated MKV). "Before its end" means fewer frames than the container announces *and* the last frame more
than 1.5 frame intervals before the end of the video stream (so edit lists and estimated counts do not count).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

from ..errors import InputError, MissingInput
from .oserrors import READ_ERRNO, first_line, input_os_error
from .sequence import is_sequence_target, list_sequence, read_frame

# swscale's colour matrices share their numbering with AVColorSpace for these values.
SWS_COLORSPACES = {1, 4, 5, 6, 7, 9}
# demuxers whose stream durations come from the file itself (an index, a header), not from a bit-rate estimate
_TRUSTED_DURATIONS = {"mov", "mp4", "matroska", "webm", "avi", "mxf"}


class TruncatedInput(InputError):
    """The input gave fewer frames than it should: ``frame`` frames decoded (the next one failed or was missing) of
    ``expected`` (None: unknown); ``why`` says what happened."""

    def __init__(self, path: str, frame: int, expected: int | None, why: str, message: str | None = None):
        self.frame, self.expected, self.why = frame, expected, why
        of = f" of {expected}" if expected else ""
        super().__init__(message or f"{path}: ends early at frame {frame}{of} ({why})", path=path)


def _tag_seconds(v) -> float | None:
    """A Matroska ``DURATION`` tag (``00:00:04.000000000``) in seconds."""
    try:
        h, m, sec = str(v).strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, AttributeError):
        return None


@dataclass
class Frame:
    index: int                 # 0-based decode order
    image: np.ndarray          # HxWx3 uint8 RGB (HxW for grey sources), upright (rotation applied)
    pts: int | None            # in time_base units, exactly as decoded (None for sources without timestamps)
    time_base: Fraction
    time: float                # seconds (pts * time_base), for progress and syncing


@dataclass
class SourceInfo:
    path: str
    kind: str                          # "video" | "sequence"
    width: int                         # display size (after rotation)
    height: int
    rotation: int = 0                  # display-matrix rotation, degrees counter-clockwise (PyAV convention)
    frame_count: int | None = None     # exact for sequences, container's count or an estimate for video
    frame_count_exact: bool = False    # frame_count is the container's own count (index), not an estimate
    rate: Fraction | None = None       # nominal frame rate (exact rational)
    time_base: Fraction = Fraction(1, 25)
    codec: str = ""
    pix_fmt: str = ""
    colorspace: int = 2                # AVColorSpace / AVColorRange / primaries / trc (2 = unspecified)
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    duration: float | None = None      # seconds
    container_format: str = ""
    n_audio: int = 0
    n_subtitle: int = 0
    files: list = field(default_factory=list)  # sequences: the frame files in order
    metadata: dict = field(default_factory=dict)         # container tags (title, creation_time, ...)
    stream_metadata: dict = field(default_factory=dict)  # video stream tags (language, handler_name, ...)

    @property
    def has_audio(self) -> bool:
        return self.n_audio > 0

    def describe(self) -> str:
        rate = f"{float(self.rate):.3f} fps" if self.rate else "unknown fps"
        n = f"{self.frame_count} frames" if self.frame_count else "unknown length"
        rot = f", rotation {self.rotation}" if self.rotation else ""
        aud = f", {self.n_audio} audio" if self.n_audio else ""
        return f"{self.width}x{self.height}, {n}, {rate}{rot}{aud}"


def rotate_upright(img: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, multiples of 90) to coded pixels."""
    k = (int(round(rotation / 90.0))) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def rotate_coded(img: np.ndarray, rotation: int) -> np.ndarray:
    """Inverse of :func:`rotate_upright`: upright pixels back to the coded orientation."""
    k = (-int(round(rotation / 90.0))) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


class VideoSource:
    """One input clip. Iterate :meth:`frames` once (it decodes in the calling thread; wrap it in
    :class:`~mattecli.video.threads.ThreadedReader` for a background decode)."""

    def __init__(self, path: str | os.PathLike, *, fps: float | Fraction | None = None, what: str = "input",
                 gray: bool = False, threads: int = 0):
        self.path = os.fspath(path)
        self.what = what
        self.gray = gray
        self._container = None
        self._first: Frame | None = None
        self._threads = threads
        self.frames_decoded = 0            # frames given so far (the count when iteration has finished)
        self._video_end: float | None = None
        p = self.path
        if is_sequence_target(p) and not os.path.isfile(p):
            files = list_sequence(p)
            if not files:
                if os.path.isdir(p) or os.path.isdir(os.path.dirname(p) or "."):
                    raise InputError(f"{p}: no image files found for this {what} sequence; "
                                     "pass a folder of frames or a pattern like frames/%06d.png", path=p)
                raise MissingInput(f"{p}: no such folder for this {what} sequence", path=p)
            rate = Fraction(fps).limit_denominator(1001000) if fps else Fraction(30)
            first = read_frame(files[0], gray)
            h, w = first.shape[:2]
            self.info = SourceInfo(path=p, kind="sequence", width=w, height=h, frame_count=len(files),
                                   frame_count_exact=True, rate=rate, time_base=1 / rate, codec="image", files=files,
                                   duration=len(files) / float(rate), color_range=2)
            self._first = Frame(0, first, 0, 1 / rate, 0.0)
            return
        if not os.path.exists(p):
            raise MissingInput(f"{p}: no such file; pass an existing {what} video or image sequence", path=p)
        if os.path.isdir(p):
            raise InputError(f"{p}: folder holds no images for this {what} sequence", path=p)
        self._open_video()

    # -- video files -----------------------------------------------------------------------------------------
    def _open_video(self) -> None:
        import av

        p = self.path
        try:
            c = av.open(p, "r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
            ffmpeg = isinstance(e, av.error.FFmpegError)   # FFmpeg's own codes: a demuxer problem, not the disk's
            if not ffmpeg and isinstance(e, OSError) and getattr(e, "errno", None) in READ_ERRNO:
                raise input_os_error(p, e) from None
            why = (getattr(e, "strerror", None) or first_line(e)) if ffmpeg else first_line(e)
            raise InputError(f"{p}: cannot read it as a video (FFmpeg: {why}): the file is truncated, damaged or "
                             "not a video; pass a video file or an image sequence folder", path=p) from None
        self._container = c
        if not c.streams.video:
            kinds = sorted({s.type for s in c.streams})
            c.close()
            self._container = None
            if not kinds:
                raise InputError(f"{p}: holds no streams at all (empty or truncated file); pass a video with at "
                                 "least one frame", path=p)
            raise InputError(f"{p}: has no video stream (found: {', '.join(kinds)}); pass a video file, not an "
                             "audio-only one", path=p)
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        if self._threads:
            st.codec_context.thread_count = self._threads
        self._stream = st
        cc = st.codec_context
        rate = st.average_rate or st.guessed_rate or st.base_rate
        # average_rate of a VFR clip is an odd fraction (e.g. 3750/143); guessed_rate is the codec's nominal rate.
        guessed = st.guessed_rate
        if rate and guessed and abs(float(rate) - float(guessed)) / float(guessed) < 0.01:
            rate = guessed
        rate = Fraction(rate) if rate else None
        tb = Fraction(st.time_base) if st.time_base else (1 / rate if rate else Fraction(1, 25))
        dur = None                   # of the video stream: its own duration, Matroska's DURATION tag, or the file's
        if st.duration and st.time_base:
            dur = float(st.duration * st.time_base)
        else:
            dur = _tag_seconds((st.metadata or {}).get("DURATION"))
        start = float(st.start_time * st.time_base) if st.start_time is not None and st.time_base else 0.0
        # where the video should end, from containers that store durations (others, MPEG-TS and raw streams, have
        # them estimated from the bit rate: no truncation verdict from those)
        trusted = bool(_TRUSTED_DURATIONS & set(c.format.name.split(",")))
        if dur:
            self._video_end = start + dur if trusted else None
        elif c.duration:
            dur = c.duration / 1e6
            if trusted and len(c.streams) == 1:  # the file's duration is the video's only when nothing else is in it
                self._video_end = (c.start_time or 0) / 1e6 + dur
        count = st.frames or (int(round(dur * float(rate))) if dur and rate else None)
        self._frames_iter = self._decode_video()
        try:
            first = next(self._frames_iter)
        except StopIteration:
            self.close()
            raise InputError(f"{p}: contains no decodable video frames; pass a clip with at least one frame",
                             path=p) from None
        self._first = first
        h, w = first.image.shape[:2]
        self.info = SourceInfo(
            path=p, kind="video", width=w, height=h, rotation=self._rotation, frame_count=count or None,
            frame_count_exact=bool(st.frames), rate=rate, time_base=tb, codec=cc.name, pix_fmt=cc.pix_fmt or "",
            colorspace=int(getattr(cc, "colorspace", 2) or 2), color_range=int(getattr(cc, "color_range", 0) or 0),
            color_primaries=int(getattr(cc, "color_primaries", 2) or 2),
            color_trc=int(getattr(cc, "color_trc", 2) or 2), duration=dur, container_format=c.format.name,
            n_audio=len(c.streams.audio), n_subtitle=len(c.streams.subtitles),
            metadata=dict(c.metadata or {}), stream_metadata=dict(st.metadata or {}),
        )

    def _decode_video(self) -> Iterator[Frame]:
        import av

        from av.video.reformatter import VideoReformatter

        st = self._stream
        self._rotation = 0
        rf = VideoReformatter()   # one swscale context for the clip (a fresh one per frame costs ~20 ms at 1080p)
        i = 0
        last_t = None
        try:
            for f in self._container.decode(st):
                if i == 0:
                    self._rotation = int(round(f.rotation or 0))
                kw = {}
                if f.color_range:
                    kw["src_color_range"] = int(f.color_range)
                if f.colorspace in SWS_COLORSPACES:
                    kw["src_colorspace"] = int(f.colorspace)
                img = rf.reformat(f, format="gray" if self.gray else "rgb24", **kw).to_ndarray()
                img = rotate_upright(img, self._rotation)
                tb = Fraction(f.time_base) if f.time_base else Fraction(st.time_base)
                pts = f.pts
                t = float(pts * tb) if pts is not None else float(i) / 25.0
                last_t = t if pts is not None else None
                i += 1
                self.frames_decoded = i
                yield Frame(i - 1, img, pts, tb, t)
        except (av.error.FFmpegError, OSError) as e:
            if isinstance(e, OSError) and getattr(e, "errno", None) in READ_ERRNO:
                raise input_os_error(self.path, e, f" at frame {i}") from None
            expected = self.info.frame_count if getattr(self, "info", None) is not None else None
            raise TruncatedInput(self.path, i, expected, f"decoding failed: {first_line(e)}",
                                 f"{self.path}: decoding failed at frame {i} ({first_line(e)})") from None
        self._check_complete(i, last_t)

    def _check_complete(self, decoded: int, last_t: float | None) -> None:
        """Raise :class:`TruncatedInput` when the clip ended before its end (see the module's notes)."""
        info = getattr(self, "info", None)
        expected = info.frame_count if info is not None else None
        if not expected or decoded >= expected:
            return
        step = 1.0 / float(info.rate) if info.rate else 0.04
        if self._video_end is not None and last_t is not None:
            short = self._video_end - (last_t + step) > 1.5 * step
        else:
            short = info.frame_count_exact
        if short:
            where = (f": the video stops at {last_t + step:.2f} s of {self._video_end:.2f} s"
                     if last_t is not None and self._video_end else "")
            raise TruncatedInput(self.path, decoded, expected, f"truncated or damaged file{where}")

    # -- iteration -------------------------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        """All frames in order (the first one was decoded at open time)."""
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("VideoSource.frames() can be iterated once")
        if self.info.kind == "sequence":
            self.frames_decoded = 1
            yield first
            tb = self.info.time_base
            for i, f in enumerate(self.info.files[1:], start=1):
                img = read_frame(f, self.gray)
                if img.shape[:2] != (self.info.height, self.info.width):
                    raise InputError(f"{f}: frame is {img.shape[1]}x{img.shape[0]}, the sequence is "
                                     f"{self.info.width}x{self.info.height}; all frames must have one size", path=f)
                self.frames_decoded = i + 1
                yield Frame(i, img, i, tb, float(i * tb))
            return
        yield first
        yield from self._frames_iter

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a reader must never mask the real error
                pass
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
