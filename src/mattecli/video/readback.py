"""Read-back check of a written video: the frame count, and for alpha-carrying files the alpha plane itself.

The alpha of the first :data:`VERIFY_FRAMES` frames is recorded while writing (:class:`AlphaRecorder`) and compared
with what decodes back (VP9 with the libvpx-vp9 decoder: FFmpeg's native vp9 decoder drops the alpha side data); a
missing or flat alpha plane is an error, not a silently opaque file.
"""
from __future__ import annotations

import numpy as np

from .encode_plan import EncodePlan
from .oserrors import OutputError, first_line

VERIFY_FRAMES = 24


class AlphaRecorder:
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


def verify_video(path: str, plan: EncodePlan, frames_written: int, rec: AlphaRecorder | None) -> None:
    import av

    try:
        n = count_video_packets(path)
    except (av.error.FFmpegError, IndexError) as e:
        raise OutputError(f"{path}: written file cannot be read back ({first_line(e)})", path=path) from None
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
