"""A video container output: encoder set up from the source (rate, time base, colour tags, rotation, metadata),
exact timestamps, audio/subtitles copied (:mod:`.remux`), read back and checked (:mod:`.readback`) before the rename.
"""
from __future__ import annotations

import os
import sys
from fractions import Fraction

import numpy as np

from ..errors import InputError, MatteError, UsageError
from .encode_plan import CONTAINER_FORMAT, EncodePlan
from .oserrors import OutputError, ensure_parent, output_os_error, remove_quietly
from .readback import AlphaRecorder, verify_video
from .reader import SWS_COLORSPACES, SourceInfo, rotate_coded
from .remux import StreamCopier
from .sinks import Sink, drop_stale_partial, keep_partial as keep_as_partial, partial_path, work_path


class VideoFileSink(Sink):
    def __init__(self, plan: EncodePlan, info: SourceInfo, *, audio: bool = True, notes: list[str] | None = None,
                 rotation: int | None = None):
        import av

        self.plan = plan
        self.info = info
        self.notes = notes if notes is not None else []
        self.final = plan.path
        ensure_parent(self.final)
        if os.path.abspath(self.final) == os.path.abspath(info.path):
            raise UsageError(f"{self.final}: output would overwrite the input; choose another -o")
        self.tmp = work_path(self.final)     # unique to this run; the pipeline holds the final path's lock
        self.rotation = info.rotation if rotation is None else rotation
        try:
            fmt = CONTAINER_FORMAT[plan.ext]
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
        self._rec = AlphaRecorder() if plan.alpha else None

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
        from av.video.reformatter import VideoReformatter

        self._rf = VideoReformatter()   # one swscale context per output (a fresh one per frame is ~20 ms at 1080p)
        self._dst_cs = info.colorspace if info.colorspace in SWS_COLORSPACES else None
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
            remove_quietly(self.tmp)
            raise OutputError(str(e).replace(self.tmp, self.final), path=self.final) from None
        try:
            os.replace(self.tmp, self.final)
        except OSError as e:
            remove_quietly(self.tmp)
            raise output_os_error(self.final, e) from None
        drop_stale_partial(self.final)
        return self.final

    def abort(self, keep_partial: bool) -> str | None:
        if self._done:
            return None
        self._done = True
        if keep_partial and self.frames_written and not self._broken:
            try:
                self._close_container(partial=True)
            except Exception:  # noqa: BLE001 - fall through to removal
                pass
            else:
                return keep_as_partial(self.tmp, partial_path(self.final))
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
        remove_quietly(self.tmp)


def _ffmpeg_major() -> int:
    import av

    try:
        return int(str(av.ffmpeg_version_info).lstrip("n").split(".")[0])
    except (ValueError, AttributeError):
        return 0
