"""Joining a clip's segment files (:mod:`.segments`) into its output, losslessly: the encoded video packets are copied
as they are (stream copy; each segment already carries the source's timestamps), the source's audio and subtitles
are copied in alongside (:class:`~mattecli.video.remux.StreamCopier`), the container gets the source's tags and
rotation, and the result is checked (frame count; the alpha plane of alpha-carrying files) under a work name, then
renamed, with the output locked meanwhile, as every video output is (:mod:`mattecli.batch.locks`).
"""
from __future__ import annotations

import os

from ..batch.locks import hold_outputs
from ..errors import MatteError
from .encode_plan import CONTAINER_FORMAT, EncodePlan
from .oserrors import OutputError, ensure_parent, output_os_error, remove_quietly
from .reader import SourceInfo
from .readback import decode_alpha_frames, verify_video
from .remux import StreamCopier
from .sinks import work_path

_SKIP_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "rotate"}


def _first_pts(path: str):
    """The smallest video pts of a file, and its time base."""
    import av

    with av.open(path, "r") as c:
        st = c.streams.video[0]
        return min((p.pts for p in c.demux(st) if p.size and p.pts is not None), default=None), st.time_base


def join_segments(plan: EncodePlan, files: list[str], info: SourceInfo, *, starts: list | None = None,
                  audio: bool = True, notes: list | None = None, wait: bool | None = None) -> tuple[str, int]:
    """Write ``plan.path`` from ``files`` (segment files in order); returns (path, frames).

    ``starts``: each segment's first pts in the source's time base (``info.time_base``). A container may round a
    file's start to its movie time scale (MP4/MOV edit lists: 1/1000 s), shifting every timestamp of that segment
    alike; each segment is put back where it starts in the source."""
    import av

    notes = notes if notes is not None else []
    final = plan.path
    ensure_parent(final)
    fmt = CONTAINER_FORMAT[plan.ext]
    pts_only = fmt in ("matroska", "webm")          # Matroska stores no dts: let the muxer derive them
    locks = hold_outputs([final], wait=wait)
    tmp = work_path(final)
    out = copier = None
    try:
        try:
            copts = {"avoid_negative_ts": "disabled"} if pts_only else {}
            out = av.open(tmp, "w", format=fmt, container_options=copts)
            with av.open(files[0], "r") as first:
                tpl = first.streams.video[0]
                vs = out.add_stream_from_template(tpl)
                vs.time_base = tpl.time_base
                for k, v in (first.streams.video[0].metadata or {}).items():
                    if k.lower() in ("language", "title", "timecode"):
                        vs.metadata[k] = v
            if info.rotation:
                vs.set_display_rotation(info.rotation)
            for k, v in (info.metadata or {}).items():
                if k.lower() not in _SKIP_TAGS:
                    out.metadata[k] = v
            if audio and info.kind == "video" and (info.n_audio or info.n_subtitle):
                copier = StreamCopier(info.path, out, plan.ext, notes, mux=out.mux)
            frames = 0
            for k, f in enumerate(files):
                shift = 0
                if starts is not None:
                    p0, ftb = _first_pts(f)
                    if p0 is not None and ftb:
                        shift = int(round(starts[k] * info.time_base / ftb)) - p0
                with av.open(f, "r") as c:
                    for pkt in c.demux(c.streams.video[0]):
                        if not pkt.size:
                            continue
                        if shift and pkt.pts is not None:
                            pkt.pts += shift
                            if pkt.dts is not None:
                                pkt.dts += shift
                        t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else None
                        if pts_only:
                            pkt.dts = None
                        pkt.stream = vs
                        out.mux(pkt)
                        frames += 1
                        if copier is not None and t is not None:
                            copier.pump(t + 0.5)
            if copier is not None:
                copier.finish()
                copier = None
            out.close()
            out = None
        except MatteError:
            raise
        except (OSError, av.error.FFmpegError) as e:
            raise output_os_error(final, e, "joining the segments failed") from None
        _verify(tmp, final, plan, frames, files[0])
        try:
            os.replace(tmp, final)
        except OSError as e:
            raise output_os_error(final, e) from None
        return final, frames
    finally:
        if copier is not None:
            copier.close()
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001 - cleaning up must not mask the real error
                pass
        remove_quietly(tmp)
        locks.close()


def _verify(tmp: str, final: str, plan: EncodePlan, frames: int, first_segment: str) -> None:
    """The frame count, and an alpha plane that decodes as the first segment's does."""
    try:
        verify_video(tmp, plan, frames, None)
        if plan.alpha:
            _, want = decode_alpha_frames(first_segment, 4)
            fmt, got = decode_alpha_frames(tmp, 4)
            same = len(got) == len(want) and all(a is not None and b is not None and (a == b).all()
                                                for a, b in zip(got, want))
            if not same:
                raise OutputError(f"{tmp}: the joined file decodes as {fmt or 'nothing'} without the segments' "
                                  "alpha plane", path=tmp)
    except OutputError as e:
        raise OutputError(str(e).replace(tmp, final), path=final) from None
