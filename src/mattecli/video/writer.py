"""Output side of ``mattecli video``: codec choice, encoders, audio passthrough, verification, atomic rename.

Every output is written under a ``.partial`` name next to its final path (``out.partial.mov``, ``frames.partial/``)
and renamed only once it is complete and verified. Interrupted runs therefore leave either a playable, clearly named
partial file (the container is closed properly: encoder flushed, trailer written) or nothing — never a corrupt file
at the final path.

Alpha-carrying files are decoded back after writing (VP9 with the libvpx-vp9 decoder: FFmpeg's native vp9 decoder
drops the alpha side data) and the alpha plane is compared with what was written; a missing or flat alpha plane is an
error, not a silently opaque file.
"""
from __future__ import annotations

import errno
import functools
import os
import queue
import shutil
import sys
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InputError, MatteError, UsageError
from .reader import _PATTERN_RE, SourceInfo, _first_line, rotate_coded

OUTPUT_TYPES = ("composite", "alpha", "foreground", "rgba")
DEFAULT_EXT = {"composite": ".mp4", "alpha": ".mp4", "foreground": ".mp4", "rgba": ".mov"}
VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".webm", ".mkv")
CODEC_NAMES = {"h264": "libx264", "x264": "libx264", "libx264": "libx264", "avc": "libx264",
               "h265": "libx265", "hevc": "libx265", "x265": "libx265", "libx265": "libx265",
               "prores": "prores_ks", "prores_ks": "prores_ks", "vp9": "libvpx-vp9", "libvpx-vp9": "libvpx-vp9",
               "ffv1": "ffv1"}
_CONTAINER_CODECS = {".mp4": ("libx264", "libx265"), ".m4v": ("libx264", "libx265"),
                     ".mov": ("prores_ks", "libx264", "libx265"), ".webm": ("libvpx-vp9",),
                     ".mkv": ("libx264", "libx265", "libvpx-vp9", "ffv1", "prores_ks")}
_FORMAT = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska"}
_AUDIO_FALLBACK = {".webm": "libopus"}          # everything else: aac
_NO_COPY = {".mp4": {"pcm_s16le", "pcm_s24le", "pcm_f32le", "vorbis"}, ".m4v": {"pcm_s16le", "vorbis"}}
VERIFY_FRAMES = 24


class OutputError(MatteError):
    """An output cannot be written or failed verification."""


class DiskFullError(OutputError):
    """The disk (or the user's quota) holding an output is full."""


# what to tell the user for OS-level write errors (FFmpeg's avio reports them as av.error.OSError with the errno)
_ERRNO_FIX = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "a file-size limit was reached; write elsewhere, or to a PNG folder",
    errno.EROFS: "write elsewhere",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EIO: "check the disk or write elsewhere",
}


def output_os_error(path: str, e: BaseException, what: str = "cannot write") -> OutputError:
    """One-line :class:`OutputError` for an OS/FFmpeg error raised while opening, writing or closing ``path``.

    ``PATH: No space left on device (free some space or write elsewhere)`` for ENOSPC and the like; anything else
    becomes ``PATH: WHAT (first line of the error); choose another -o``.
    """
    if isinstance(e, MatteError):
        return e if isinstance(e, OutputError) else OutputError(str(e), path=path)
    en = getattr(e, "errno", None)
    if isinstance(e, OSError) and en in _ERRNO_FIX:
        cls = DiskFullError if en in (errno.ENOSPC, errno.EDQUOT) else OutputError
        return cls(f"{path}: {os.strerror(en)} ({_ERRNO_FIX[en]})", path=path)
    return OutputError(f"{path}: {what} ({_first_line(e)}); choose another -o", path=path)


@functools.lru_cache(maxsize=None)
def encoder_pix_fmts(codec: str) -> frozenset:
    """Pixel formats the encoder of this PyAV build accepts (empty if it is missing)."""
    try:
        import av

        return frozenset(f.name for f in (av.codec.Codec(codec, "w").video_formats or ()))
    except Exception:  # noqa: BLE001 - a missing encoder simply supports nothing
        return frozenset()


@dataclass
class OutputPlan:
    type: str                   # composite | alpha | foreground | rgba
    path: str                   # final path: a file, a folder, or a %0Nd pattern
    kind: str                   # "video" | "sequence"
    codec: str = ""             # FFmpeg encoder name (video)
    pix_fmt: str = ""
    options: dict = field(default_factory=dict)
    bits: int = 8               # sequences: 8 or 16; rgba ProRes is fed 16-bit
    alpha: bool = False         # the file carries an alpha channel that must be verified
    gray_direct: bool = False   # alpha stored directly as full-range luma (lossless paths)
    ext: str = ""
    note: str = ""

    def describe(self) -> str:
        if self.kind == "sequence":
            return f"{self.type}: {self.path} ({self.bits}-bit PNG sequence)"
        extra = f", {self.note}" if self.note else ""
        return f"{self.type}: {self.path} ({self.codec} {self.pix_fmt}{extra})"


def plan_output(otype: str, target: str, *, lossless: bool = False, codec: str | None = None,
                crf: float | None = None, preset: str | None = None, bits: int = 8,
                frame_count: int | None = None) -> OutputPlan:
    """Pick container, codec and pixel format for one output from its path (see the README, `mattecli video`)."""
    if otype not in OUTPUT_TYPES:
        raise UsageError(f"unknown output type {otype!r}; use {', '.join(OUTPUT_TYPES)}")
    if bits not in (8, 16):
        raise UsageError(f"--bits {bits}: use 8 or 16")
    target = os.fspath(target)
    base = os.path.basename(target.rstrip("/\\"))
    ext = os.path.splitext(base)[1].lower()
    is_dir = target.endswith(("/", os.sep)) or os.path.isdir(target) or not ext
    if _PATTERN_RE.search(os.path.basename(target)) or is_dir:
        if not is_dir and ext != ".png":
            raise UsageError(f"{target}: image sequences are written as PNG; use a pattern like out/%06d.png")
        if codec and CODEC_NAMES.get(codec.lower()) != "png" and codec.lower() != "png":
            raise UsageError(f"--codec {codec}: a folder or %06d pattern is a PNG sequence; give a video file name "
                             "(.mp4/.mov/.webm/.mkv) for that codec")
        if not is_dir:
            m = _PATTERN_RE.search(os.path.basename(target))
            if m is None:
                raise UsageError(f"{target}: a sequence pattern needs %0Nd, e.g. out/%06d.png")
        return OutputPlan(otype, target, "sequence", codec="png", bits=bits, alpha=otype == "rgba", ext=".png")
    if ext == ".png":
        raise UsageError(f"{target}: a PNG output needs a frame-number pattern (out/%06d.png) or a folder (out/)")
    if ext not in VIDEO_EXTS:
        raise UsageError(f"{target}: unknown output extension {ext!r}; use .mp4 .mov .webm .mkv, a folder or a "
                         "%06d.png pattern")
    if bits != 8 and otype != "rgba":
        raise UsageError("--bits 16 applies to PNG sequences (and is implied for ProRes 4444); drop it for video")
    want = None
    if codec:
        want = CODEC_NAMES.get(codec.lower())
        if want is None:
            raise UsageError(f"--codec {codec}: unknown; use h264, h265, prores, vp9 or ffv1")
        if want not in _CONTAINER_CODECS[ext]:
            raise UsageError(f"--codec {codec} cannot go into {ext}; {ext} takes "
                             f"{', '.join(_CONTAINER_CODECS[ext])}")
    plan = OutputPlan(otype, target, "video", ext=ext)
    if otype == "rgba":
        if ext in (".mp4", ".m4v"):
            raise UsageError(f"{target}: MP4/H.264 cannot carry alpha; use .mov (ProRes 4444), .webm (VP9 with "
                             "alpha), .mkv (FFV1, lossless) or a PNG folder")
        default = {".mov": "prores_ks", ".webm": "libvpx-vp9", ".mkv": "ffv1"}[ext]
        c = want or ("ffv1" if lossless and ext == ".mkv" else default)
        if c in ("libx264", "libx265"):
            raise UsageError(f"--codec {codec}: H.264/H.265 cannot carry alpha; use prores (.mov), vp9 (.webm) or ffv1")
        plan.alpha = True
        if c == "prores_ks":
            if lossless:
                raise UsageError("--lossless: ProRes is not lossless; use .mkv (FFV1) or a PNG folder")
            plan.codec, plan.pix_fmt, plan.bits = c, "yuva444p10le", 16
            plan.options = {"profile": "4444", "vendor": "apl0", "alpha_bits": "16"}
            plan.note = "ProRes 4444"
        elif c == "libvpx-vp9":
            plan.codec, plan.pix_fmt = c, "yuva420p"
            plan.options = ({"lossless": "1"} if lossless else {"crf": str(int(crf if crf is not None else 30)), "b": "0"})
            plan.options.update({"auto-alt-ref": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
        else:  # ffv1
            plan.codec, plan.pix_fmt = "ffv1", "bgra"
            plan.options = {"level": "3", "slices": "4", "g": "1"}
            plan.note = "lossless"
        return plan
    if otype == "alpha":
        return _plan_alpha(plan, want, codec, lossless, crf, preset)
    # composite / foreground
    c = want or {".mp4": "libx264", ".m4v": "libx264", ".mov": "prores_ks", ".webm": "libvpx-vp9",
                 ".mkv": "ffv1" if lossless else "libx264"}[ext]
    if lossless and c not in ("ffv1",) and not (c == "libx264"):
        raise UsageError(f"--lossless {otype}: use .mkv (FFV1) or .mp4 (H.264 qp 0), or a PNG folder")
    plan.codec = c
    if c == "libx264":
        plan.pix_fmt = "yuv444p" if lossless else "yuv420p"
        plan.options = {"qp": "0"} if lossless else {"crf": _num(crf, 18)}
        plan.options["preset"] = preset or "fast"
    elif c == "libx265":
        plan.pix_fmt = "yuv420p"
        plan.options = {"crf": _num(crf, 22), "preset": preset or "fast", "x265-params": "log-level=error"}
    elif c == "prores_ks":
        plan.pix_fmt, plan.options, plan.note = "yuv422p10le", {"profile": "hq", "vendor": "apl0"}, "ProRes 422 HQ"
    elif c == "libvpx-vp9":
        plan.pix_fmt = "yuv420p"
        plan.options = {"crf": _num(crf, 30), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    elif c == "ffv1":
        plan.pix_fmt = "bgr0"
        plan.options = {"level": "3", "slices": "4", "g": "1"}
        plan.note = "lossless"
    return plan


_ALPHA_DEFAULT = {".mp4": "libx264", ".m4v": "libx264", ".mov": "prores_ks", ".webm": "libvpx-vp9", ".mkv": "ffv1"}


def _plan_alpha(plan: OutputPlan, want: str | None, codec: str | None, lossless: bool, crf, preset) -> OutputPlan:
    """Grayscale matte: luma only (pix_fmt gray, full range, alpha stored as Y) wherever the encoder allows it.

    .mp4/.m4v -> H.264 gray (yuv420p with neutral chroma if this libx264 lacks gray); .mkv -> FFV1 gray (lossless);
    .mov -> ProRes 422 HQ with neutral chroma (ProRes has no gray format); .webm -> VP9 yuv420p with neutral chroma.
    --lossless: FFV1, H.264 qp 0 gray (also the .mov default then) or VP9 lossless yuv444p (Y = alpha).
    """
    ext = plan.ext
    c = want or _ALPHA_DEFAULT[ext]
    if lossless and c == "prores_ks":
        if want:
            raise UsageError("--lossless: ProRes is not lossless; use .mkv (FFV1), .mp4 (H.264 qp 0) or a PNG folder")
        c = "libx264"
    if lossless and c == "libx265":
        raise UsageError(f"--lossless alpha: use .mkv (FFV1), .mp4 (H.264 qp 0) or a PNG folder, not {codec}")
    plan.codec = c
    if c == "ffv1":
        plan.pix_fmt, plan.gray_direct, plan.note = "gray", True, "lossless"
        plan.options = {"level": "3", "slices": "4", "g": "1"}
    elif c in ("libx264", "libx265"):
        if lossless:
            plan.options = {"qp": "0"}
        elif c == "libx264":
            plan.options = {"crf": _num(crf, 18)}
        else:
            plan.options = {"crf": _num(crf, 22), "x265-params": "log-level=error"}
        plan.options["preset"] = preset or "fast"
        if "gray" in encoder_pix_fmts(c):
            plan.pix_fmt, plan.gray_direct = "gray", True
            plan.note = "lossless" if lossless else "luma only"
        elif lossless:   # Y = alpha, U = V = 128: exact
            plan.pix_fmt, plan.gray_direct, plan.note = "yuv444p", True, f"lossless, this {c} has no gray format"
        else:
            plan.pix_fmt, plan.note = "yuv420p", f"neutral chroma, this {c} has no gray format"
    elif c == "prores_ks":
        plan.pix_fmt, plan.options = "yuv422p10le", {"profile": "hq", "vendor": "apl0"}
        plan.note = "ProRes 422 HQ, neutral chroma"
    else:  # libvpx-vp9 (no gray format)
        if lossless:
            plan.pix_fmt, plan.gray_direct, plan.note = "yuv444p", True, "lossless"
            plan.options = {"lossless": "1"}
        else:
            plan.pix_fmt, plan.note = "yuv420p", "neutral chroma"
            plan.options = {"crf": _num(crf, 30), "b": "0"}
        plan.options.update({"row-mt": "1", "deadline": "good", "cpu-used": "4"})
    return plan


def _num(v, default) -> str:
    v = default if v is None else v
    return str(int(v)) if float(v).is_integer() else str(v)


def partial_path(final: str) -> str:
    """``out/clip.mov`` -> ``out/clip.partial.mov``."""
    d, b = os.path.split(final)
    stem, ext = os.path.splitext(b)
    return os.path.join(d, f"{stem}.partial{ext}")


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            raise output_os_error(path, e) from None
        raise OutputError(f"{path}: cannot create the output folder ({e.strerror or e}); choose another -o",
                          path=path) from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: output folder is not writable; choose another -o", path=path)


# ---------------------------------------------------------------------------------------------------------------
# audio / subtitle passthrough
# ---------------------------------------------------------------------------------------------------------------
class StreamCopier:
    """Copies the source's audio (and subtitle) packets into an output container, interleaved with the video.

    Packets are remuxed untouched where the container takes the codec; otherwise audio is re-encoded (AAC, or Opus
    for WebM) and a note says so. Subtitles the container cannot take are dropped with a note.
    """

    def __init__(self, src_path: str, out, ext: str, notes: list[str], mux=None):
        import av

        self._mux = mux or out.mux     # the sink's muxer (write errors are mapped there)

        self.notes = notes
        self.src_path = src_path
        try:
            self._inp = av.open(src_path, "r")
        except (OSError, av.error.FFmpegError) as e:
            raise InputError(f"{src_path}: cannot read its audio again ({_first_line(e)}); check the file or pass "
                             "--no-audio", path=src_path) from None
        self._map: dict[int, Any] = {}         # input stream index -> output stream
        self._transcode: dict[int, Any] = {}   # input stream index -> output stream (re-encode)
        supported = set(out.supported_codecs)
        for s in list(self._inp.streams.audio) + list(self._inp.streams.subtitles):
            name = s.codec_context.name if s.codec_context else ""
            ok = name in supported and name not in _NO_COPY.get(ext, set())
            if ok:
                try:
                    o = out.add_stream_from_template(s)
                    self._map[s.index] = o
                    continue
                except (ValueError, av.error.FFmpegError):
                    pass
            if s.type == "audio":
                enc = _AUDIO_FALLBACK.get(ext, "aac")
                rate = 48000 if enc == "libopus" else (s.codec_context.sample_rate or 48000)
                o = out.add_stream(enc, rate=rate)
                try:
                    o.layout = s.codec_context.layout
                except (AttributeError, ValueError):
                    pass
                self._transcode[s.index] = o
                self.notes.append(f"audio {name} cannot go into {ext} unchanged; re-encoded to "
                                  f"{'Opus' if enc == 'libopus' else 'AAC'}")
            else:
                self.notes.append(f"subtitle stream {s.index} ({name}) cannot go into {ext}; not copied")
        streams = [self._inp.streams[i] for i in list(self._map) + list(self._transcode)]
        self._out = out
        self._iter = self._inp.demux(*streams) if streams else iter(())
        self._pending = None
        self._exhausted = False
        self.active = bool(streams)

    def _next_packet(self):
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        if self._exhausted:
            return None
        import av

        try:
            return next(self._iter)
        except StopIteration:
            self._exhausted = True
            return None
        except (OSError, av.error.FFmpegError) as e:
            raise InputError(f"{self.src_path}: reading its audio/subtitles failed ({_first_line(e)}); pass "
                             "--no-audio to skip them", path=self.src_path) from None

    def pump(self, until: float | None) -> None:
        """Mux source packets whose time is at most ``until`` seconds (None = all remaining)."""
        if not self.active:
            return
        while True:
            pkt = self._next_packet()
            if pkt is None:
                return
            if pkt.dts is None and pkt.pts is None:
                if pkt.stream.index in self._transcode:   # end of stream: drain the decoder
                    self._transcode_packet(pkt)
                continue
            t = float((pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base)
            if until is not None and t > until:
                self._pending = pkt
                return
            idx = pkt.stream.index
            if idx in self._map:
                pkt.stream = self._map[idx]
                self._mux(pkt)
            else:
                self._transcode_packet(pkt)

    def _transcode_packet(self, pkt) -> None:
        enc = self._transcode[pkt.stream.index]
        for fr in pkt.decode():
            fr.pts = None          # the encoder numbers samples from 0 (its own priming handled by FFmpeg)
            for op in enc.encode(fr):
                self._mux(op)

    def finish(self, all_packets: bool = True) -> None:
        if not self.active:
            self.close()
            return
        if all_packets:
            self.pump(None)
        for o in self._transcode.values():
            for op in o.encode(None):
                self._mux(op)
        self.close()

    def close(self) -> None:
        try:
            self._inp.close()
        except Exception:  # noqa: BLE001
            pass
        self.active = False


# ---------------------------------------------------------------------------------------------------------------
# sinks
# ---------------------------------------------------------------------------------------------------------------
class Sink:
    plan: OutputPlan
    frames_written = 0

    def write(self, arr: np.ndarray, pts: int | None, time_base: Fraction, t: float) -> None:
        raise NotImplementedError

    def finish(self) -> str:
        """Close, verify, rename to the final path; returns the final path."""
        raise NotImplementedError

    def abort(self, keep_partial: bool) -> str | None:
        """Stop early. keep_partial: leave a playable ``.partial`` output (returned) where possible."""
        raise NotImplementedError


class _AlphaRecorder:
    """Statistics of the first frames' alpha, to compare with what is decoded back."""

    def __init__(self):
        self.stats: list[tuple[float, float, float]] = []   # (mean, min, max) on a 0..255 scale

    def add(self, alpha: np.ndarray) -> None:
        if len(self.stats) >= VERIFY_FRAMES:
            return
        a = alpha.astype(np.float32)
        if alpha.dtype == np.uint16:
            a = a / 257.0
        self.stats.append((float(a.mean()), float(a.min()), float(a.max())))


class VideoFileSink(Sink):
    def __init__(self, plan: OutputPlan, info: SourceInfo, *, audio: bool = True, notes: list[str] | None = None,
                 rotation: int | None = None):
        import av

        self.plan = plan
        self.info = info
        self.notes = notes if notes is not None else []
        self.final = plan.path
        _ensure_parent(self.final)
        if os.path.abspath(self.final) == os.path.abspath(info.path):
            raise UsageError(f"{self.final}: output would overwrite the input; choose another -o")
        self.tmp = partial_path(self.final)
        self.rotation = info.rotation if rotation is None else rotation
        try:
            fmt = _FORMAT[plan.ext]
            # Matroska/WebM would shift every stream when a copied audio stream starts before 0 (AAC priming);
            # keep the source's video timestamps exactly instead.
            copts = {"avoid_negative_ts": "disabled"} if fmt in ("matroska", "webm") else {}
            self.out = av.open(self.tmp, "w", format=fmt, container_options=copts)
        except (OSError, av.error.FFmpegError) as e:
            raise output_os_error(self.final, e) from None
        self._broken = False     # a write failed: the partial file is not trustworthy, never keep it
        try:
            self._setup_video(av)
            self.copier = None
            if audio and info.kind == "video" and (info.n_audio or info.n_subtitle):
                self.copier = StreamCopier(info.path, self.out, plan.ext, self.notes,
                                           mux=lambda p: self._mux(p))
        except MatteError:
            self._discard()
            raise
        except (OSError, av.error.FFmpegError) as e:
            self._discard()
            raise output_os_error(self.final, e) from None
        except BaseException:
            self._discard()
            raise
        if plan.codec == "prores_ks" and plan.alpha and _ffmpeg_major() < 7:
            self.notes.append(f"{self.final}: PyAV's FFmpeg is {_ffmpeg_major()}.x; ProRes 4444 alpha written by FFmpeg "
                              "< 7.0 shows opaque or flickers in some editors (Final Cut, Resolve, Premiere on Apple "
                              "Silicon); upgrade PyAV or prefer a PNG sequence")
        self._last_pts = None
        self._done = False
        self._fixed_pts = 0
        self._rec = _AlphaRecorder() if plan.alpha else None

    def _setup_video(self, av) -> None:
        plan, info = self.plan, self.info
        rate = info.rate or Fraction(25)
        if rate.denominator > 1001000:
            rate = rate.limit_denominator(1001000)
        s = self.out.add_stream(plan.codec, rate=rate)
        w, h = info.width, info.height
        if (int(round(self.rotation / 90.0))) % 2:
            w, h = h, w
        subsampled = "420" in plan.pix_fmt or "422" in plan.pix_fmt
        if subsampled and (w % 2 or ("420" in plan.pix_fmt and h % 2)):
            raise UsageError(f"{plan.path}: {plan.pix_fmt} needs an even width and height, the video is "
                             f"{info.width}x{info.height}; use .mkv (FFV1) or a PNG folder")
        s.width, s.height = w, h
        s.pix_fmt = plan.pix_fmt
        tb = info.time_base
        s.codec_context.time_base = tb
        s.time_base = tb
        opts = dict(plan.options)
        if plan.codec == "libx264":
            opts.setdefault("x264-params", "log-level=error")
        s.options = opts
        cc = s.codec_context
        if plan.gray_direct:
            cc.color_range = 2
        else:
            if info.colorspace != 2:
                cc.colorspace = info.colorspace
            if info.color_primaries != 2:
                cc.color_primaries = info.color_primaries
            if info.color_trc != 2:
                cc.color_trc = info.color_trc
            if info.color_range and plan.pix_fmt.startswith(("yuv", "yuva")):
                cc.color_range = info.color_range if info.kind == "video" else 1
        if plan.codec == "libx265":
            s.codec_tag = "hvc1"
        if self.rotation:
            s.set_display_rotation(self.rotation)
        skip = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "rotate"}
        for k, v in (info.metadata or {}).items():
            if k.lower() not in skip:
                self.out.metadata[k] = v
        for k, v in (info.stream_metadata or {}).items():
            if k.lower() in ("language", "title", "timecode"):
                s.metadata[k] = v
        self.stream = s
        from .reader import _SWS_COLORSPACES

        from av.video.reformatter import VideoReformatter

        self._rf = VideoReformatter()   # one swscale context per output (a fresh one per frame is ~20 ms at 1080p)
        self._dst_cs = info.colorspace if info.colorspace in _SWS_COLORSPACES else None
        self._dst_range = cc.color_range or None

    # -- frames ----------------------------------------------------------------------------------------------
    def _make_frame(self, arr: np.ndarray):
        import av

        plan = self.plan
        if self.rotation:
            arr = rotate_coded(arr, self.rotation)
        if arr.ndim == 2:   # alpha matte
            if plan.gray_direct:
                if plan.pix_fmt == "gray":
                    return av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="gray")
                # lossless yuv444p: Y = alpha, U = V = 128, full range
                planes = np.stack([arr, np.full_like(arr, 128), np.full_like(arr, 128)])
                return av.VideoFrame.from_ndarray(planes, format="yuv444p")
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.shape[2] == 3:
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        elif arr.dtype == np.uint16:
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgba64le" if sys.byteorder == "little" else "rgba64be")
        else:
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgba")
        if plan.pix_fmt in ("bgra", "bgr0"):
            return self._rf.reformat(f, format=plan.pix_fmt)
        kw = {"format": plan.pix_fmt, "src_color_range": 2}
        if self._dst_cs is not None:
            kw["src_colorspace"] = kw["dst_colorspace"] = self._dst_cs
        if self._dst_range:
            kw["dst_color_range"] = self._dst_range
        return self._rf.reformat(f, **kw)

    def write(self, arr, pts, time_base, t) -> None:
        if self._rec is not None:
            self._rec.add(arr[..., 3] if arr.ndim == 3 and arr.shape[2] == 4 else arr)
        f = self._make_frame(arr)
        tb = self.info.time_base
        if pts is not None and time_base != tb:
            pts = int(round(pts * time_base / tb))
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + 1
            self._fixed_pts += 1
        self._last_pts = pts
        f.pts = pts
        f.time_base = tb
        try:
            for p in self.stream.encode(f):
                self._mux(p)
            self.frames_written += 1
            if self.copier is not None:
                self.copier.pump(t + 0.5)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - av/OS errors of the encoder or the file -> one line
            self._broken = True
            raise output_os_error(self.final, e, "encoding failed") from None

    def _mux(self, packet) -> None:
        """Every packet goes through here (also the copied audio): one place where write errors surface."""
        self.out.mux(packet)

    def _close_container(self, partial: bool = False) -> None:
        for p in self.stream.encode(None):
            self._mux(p)
        if self.copier is not None:
            self.copier.finish(all_packets=not partial)   # a partial file gets audio up to its last frame only
        self.out.close()

    def finish(self) -> str:
        self._done = True
        try:
            self._close_container()
        except InputError:
            self._discard()
            raise
        except Exception as e:  # noqa: BLE001
            self._discard()
            raise output_os_error(self.final, e, "encoding failed") from None
        if self._fixed_pts:
            self.notes.append(f"{self.final}: {self._fixed_pts} frame(s) had missing or repeated timestamps; "
                              "they were given the next free tick")
        try:
            verify_video(self.tmp, self.plan, self.frames_written, self._rec)
        except OutputError as e:
            _remove(self.tmp)
            raise OutputError(str(e).replace(self.tmp, self.final), path=self.final) from None
        try:
            os.replace(self.tmp, self.final)
        except OSError as e:
            _remove(self.tmp)
            raise output_os_error(self.final, e) from None
        return self.final

    def abort(self, keep_partial: bool) -> str | None:
        if self._done:
            return None
        self._done = True
        if keep_partial and self.frames_written and not self._broken:
            try:
                self._close_container(partial=True)
                return self.tmp
            except Exception:  # noqa: BLE001 - fall through to removal
                pass
        self._discard()
        return None

    def _discard(self) -> None:
        try:
            if self.copier is not None:
                self.copier.close()
        except AttributeError:
            pass
        try:
            self.out.close()
        except Exception:  # noqa: BLE001
            pass
        _remove(self.tmp)


class PngSequenceSink(Sink):
    """Numbered PNG files (8 or 16 bit; RGB, gray or RGBA), fixed-width frame numbers."""

    def __init__(self, plan: OutputPlan, info: SourceInfo, notes: list[str] | None = None):
        self.plan = plan
        self.notes = notes if notes is not None else []
        t = plan.path
        m = _PATTERN_RE.search(os.path.basename(t))
        n = info.frame_count or 0
        width = max(6, len(str(max(n - 1, 0))) if n else 6)
        if m:
            self.final_dir = os.path.dirname(t) or "."
            base = os.path.basename(t)
            self.prefix, self.suffix = base[:m.start()], base[m.end():]
            width = int(m.group(1) or 0) or width
            self.tmp_dir = os.path.join(self.final_dir, f"{self.prefix.rstrip('_-.') or 'frames'}.partial")
        else:
            self.final_dir = t.rstrip("/\\") or "."
            self.prefix, self.suffix = "", ".png"
            self.tmp_dir = self.final_dir + ".partial"
        self.width = width
        if os.path.abspath(self.final_dir) == os.path.abspath(info.path) and info.kind == "sequence":
            raise UsageError(f"{t}: output would write into the input sequence folder; choose another -o")
        _ensure_parent(self.tmp_dir)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        try:
            os.makedirs(self.tmp_dir)
        except OSError as e:
            if e.errno in _ERRNO_FIX:
                raise output_os_error(t, e) from None
            raise OutputError(f"{t}: cannot create {self.tmp_dir} ({e.strerror or e}); choose another -o",
                              path=t) from None
        self.names: list[str] = []
        self.info = info
        if info.kind == "video" and info.n_audio:
            self.notes.append(f"{t}: a PNG sequence carries no audio; the audio was not written there")

    def name(self, index: int) -> str:
        return f"{self.prefix}{index:0{self.width}d}{self.suffix}"

    def write(self, arr, pts, time_base, t) -> None:
        import cv2

        a = arr
        if self.plan.bits == 16 and a.dtype == np.uint8:
            a = a.astype(np.uint16) * 257
        elif self.plan.bits == 8 and a.dtype == np.uint16:
            a = (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        if a.ndim == 3:
            a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
        name = self.name(self.frames_written)
        tmp = os.path.join(self.tmp_dir, "." + name + ".tmp.png")
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
        if not ok:
            raise OutputError(f"{os.path.join(self.tmp_dir, name)}: PNG encoding failed", path=self.plan.path)
        try:
            self._write_bytes(tmp, buf)
            os.replace(tmp, os.path.join(self.tmp_dir, name))
        except OSError as e:     # disk full, quota, I/O error: one line; the frames already written stay valid
            _remove(tmp)
            raise output_os_error(self.plan.path, e) from None
        self.names.append(name)
        self.frames_written += 1

    @staticmethod
    def _write_bytes(path: str, data) -> None:
        with open(path, "wb") as f:
            f.write(memoryview(data))

    def finish(self) -> str:
        self._done = True
        if self.plan.alpha and self.names:
            import cv2

            probe = os.path.join(self.tmp_dir, self.names[0])
            a = cv2.imread(probe, cv2.IMREAD_UNCHANGED)
            if a is None or a.ndim != 3 or a.shape[2] != 4:
                raise OutputError(f"{probe}: written PNG has no alpha channel", path=probe)
        try:
            if not os.path.isdir(self.final_dir):
                os.replace(self.tmp_dir, self.final_dir)
            else:
                for n in self.names:
                    os.replace(os.path.join(self.tmp_dir, n), os.path.join(self.final_dir, n))
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
        except OSError as e:
            raise output_os_error(self.plan.path, e, "cannot move the frames into place") from None
        return self.plan.path

    def abort(self, keep_partial: bool) -> str | None:
        if getattr(self, "_done", False):
            return None
        self._done = True
        if keep_partial and self.names:
            for f in os.listdir(self.tmp_dir):
                if f.startswith("."):
                    _remove(os.path.join(self.tmp_dir, f))
            return self.tmp_dir
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        return None


def open_sink(plan: OutputPlan, info: SourceInfo, *, audio: bool = True, notes: list[str] | None = None) -> Sink:
    if plan.kind == "sequence":
        return PngSequenceSink(plan, info, notes)
    return VideoFileSink(plan, info, audio=audio, notes=notes)


def _ffmpeg_major() -> int:
    import av

    try:
        return int(str(av.ffmpeg_version_info).lstrip("n").split(".")[0])
    except (ValueError, AttributeError):
        return 0


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------------------------------------------
def _has_alpha(fmt) -> bool:
    name = fmt.name
    return name.startswith(("yuva", "gbrap", "rgba", "bgra", "argb", "abgr", "ya"))


def decode_alpha_frames(path: str, limit: int = VERIFY_FRAMES):
    """Decode up to ``limit`` frames of a video file and return (pix_fmt name, [alpha uint8 HxW ...]).

    VP9 is decoded with libvpx-vp9 (FFmpeg's native vp9 decoder ignores the alpha stored in Matroska
    BlockAdditional side data). Rotation is not applied.
    """
    import av

    c = av.open(path, "r")
    try:
        st = c.streams.video[0]
        ctx = None
        if st.codec_context.name in ("vp9", "libvpx-vp9"):
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            if st.codec_context.extradata:
                ctx.extradata = st.codec_context.extradata
        alphas, fmt = [], None

        def take(frames):
            nonlocal fmt
            for fr in frames:
                fmt = fr.format
                if _has_alpha(fr.format):
                    alphas.append(fr.to_ndarray(format="rgba")[..., 3])
                else:
                    alphas.append(None)
        for pkt in c.demux(st):
            if len(alphas) >= limit:
                break
            if ctx is None:
                take(pkt.decode())
            elif pkt.size:
                take(ctx.decode(pkt))
        if len(alphas) < limit:
            take(ctx.decode(None) if ctx is not None else st.codec_context.decode(None))
        return (fmt.name if fmt else ""), alphas[:limit]
    finally:
        c.close()


def count_video_packets(path: str) -> int:
    import av

    c = av.open(path, "r")
    try:
        st = c.streams.video[0]
        return sum(1 for p in c.demux(st) if p.size)
    finally:
        c.close()


def verify_video(path: str, plan: OutputPlan, frames_written: int, rec: _AlphaRecorder | None) -> None:
    import av

    try:
        n = count_video_packets(path)
    except (av.error.FFmpegError, IndexError) as e:
        raise OutputError(f"{path}: written file cannot be read back ({_first_line(e)})", path=path) from None
    if n != frames_written:
        raise OutputError(f"{path}: holds {n} video frames but {frames_written} were written", path=path)
    if not plan.alpha or rec is None or not rec.stats:
        return
    fmt, alphas = decode_alpha_frames(path, len(rec.stats))
    if not alphas or any(a is None for a in alphas):
        raise OutputError(f"{path}: decoded back as {fmt or 'nothing'} without an alpha plane; this FFmpeg build "
                          f"cannot write alpha with {plan.codec}; use a PNG sequence (-o out/%06d.png)", path=path)
    tol = 3.0 if plan.codec in ("ffv1", "prores_ks") else 8.0
    exp_var = any(mx - mn > 8 for _, mn, mx in rec.stats)
    got_var = False
    for i, (a, (mean, mn, mx)) in enumerate(zip(alphas, rec.stats)):
        got = float(a.mean())
        if abs(got - mean) > tol:
            raise OutputError(f"{path}: alpha of frame {i} decodes to mean {got:.1f}/255 but {mean:.1f} was "
                              "written; the alpha plane is not usable", path=path)
        if int(a.max()) - int(a.min()) > 4:
            got_var = True
    if exp_var and not got_var:
        raise OutputError(f"{path}: alpha plane decodes flat (opaque) although the matte varies; use a PNG "
                          "sequence or ProRes 4444", path=path)


# ---------------------------------------------------------------------------------------------------------------
# the encode thread
# ---------------------------------------------------------------------------------------------------------------
_STOP = object()


class WriterThread:
    """Encodes in a background thread. ``put((frame, {output_type: array}))``; bounded queue = back-pressure."""

    def __init__(self, sinks: list[Sink], maxsize: int = 8):
        self.sinks = sinks
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self.error: BaseException | None = None
        self._abort = threading.Event()
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name="mattecli-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _STOP or self._abort.is_set():
                    return
                frame, arrays = item
                for s in self.sinks:
                    s.write(arrays[s.plan.type], frame.pts, frame.time_base, frame.time)
                self.frames += 1
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            self.error = e

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                raise OutputError("the encoder thread stopped unexpectedly")
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued frame to be encoded (does not finish the sinks)."""
        self.put(_STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self._abort.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        try:
            self._q.put_nowait(_STOP)
        except queue.Full:
            pass
        self._thread.join(timeout=30)
