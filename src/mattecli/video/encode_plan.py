"""Codec policy of ``mattecli video``: for each output type and path, the container, encoder, pixel format and
options (:func:`plan_output` -> :class:`EncodePlan`), checked before anything is decoded.

======================  ===========================  =====================================  ====================
path                    composite / foreground       alpha                                  rgba
======================  ===========================  =====================================  ====================
``.mp4`` ``.m4v``       H.264 yuv420p (crf 18,       H.264 gray, full range (luma only)     refused (no alpha)
                        preset veryfast)
``.mov``                ProRes 422 HQ                ProRes 422 HQ, neutral chroma          ProRes 4444 (alpha)
``.webm``               VP9 yuv420p (crf 30)         VP9, neutral chroma                    VP9 yuva420p
``.mkv``                H.264 (FFV1 --lossless)      FFV1 gray (lossless)                   FFV1 bgra (lossless)
folder / ``%06d.png``   PNG sequence (8/16-bit)      PNG sequence                           RGBA PNG sequence
======================  ===========================  =====================================  ====================
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from ..errors import UsageError
from ..formats import VIDEO_WRITE_EXTS
from .sequence import PATTERN_RE

OUTPUT_TYPES = ("composite", "alpha", "foreground", "rgba")
DEFAULT_EXT = {"composite": ".mp4", "alpha": ".mp4", "foreground": ".mp4", "rgba": ".mov"}
CODEC_NAMES = {"h264": "libx264", "x264": "libx264", "libx264": "libx264", "avc": "libx264",
               "h265": "libx265", "hevc": "libx265", "x265": "libx265", "libx265": "libx265",
               "prores": "prores_ks", "prores_ks": "prores_ks", "vp9": "libvpx-vp9", "libvpx-vp9": "libvpx-vp9",
               "ffv1": "ffv1"}
_CONTAINER_CODECS = {".mp4": ("libx264", "libx265"), ".m4v": ("libx264", "libx265"),
                     ".mov": ("prores_ks", "libx264", "libx265"), ".webm": ("libvpx-vp9",),
                     ".mkv": ("libx264", "libx265", "libvpx-vp9", "ffv1", "prores_ks")}
#: x264 preset of composite / foreground outputs (--preset changes it). Measured with benchmarks/video_pipeline.py
#: --presets (1080p, decode + composite + encode alone, crf 18, 2-core CPU): ultrafast 28 frames/s (1.42x the
#: bytes of fast, +0.5 dB luma PSNR), superfast 22 (1.87x), veryfast 20 (0.69x, -0.7 dB), faster 15 (0.83x),
#: fast 14 (1.00x), medium 13 (0.92x). veryfast: 1.5x fast's speed for smaller files, so that on a CPU the encoder
#: runs ahead of the model (RVM with OpenVINO about 13 frames/s there) instead of setting the pace.
COLOUR_PRESET = "veryfast"
#: FFmpeg muxer of each extension
CONTAINER_FORMAT = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska"}


@functools.lru_cache(maxsize=None)
def encoder_pix_fmts(codec: str) -> frozenset:
    """Pixel formats the encoder of this PyAV build accepts (empty if it is missing)."""
    try:
        import av

        return frozenset(f.name for f in (av.codec.Codec(codec, "w").video_formats or ()))
    except Exception:  # noqa: BLE001 - a missing encoder simply supports nothing
        return frozenset()


@dataclass
class EncodePlan:
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
                crf: float | None = None, preset: str | None = None, bits: int = 8) -> EncodePlan:
    """Pick container, codec and pixel format for one output from its path (the module's table)."""
    if otype not in OUTPUT_TYPES:
        raise UsageError(f"unknown output type {otype!r}; use {', '.join(OUTPUT_TYPES)}")
    if bits not in (8, 16):
        raise UsageError(f"--bits {bits}: use 8 or 16")
    target = os.fspath(target)
    base = os.path.basename(target.rstrip("/\\"))
    ext = os.path.splitext(base)[1].lower()
    is_dir = target.endswith(("/", os.sep)) or os.path.isdir(target) or not ext
    if PATTERN_RE.search(os.path.basename(target)) or is_dir:
        if not is_dir and ext != ".png":
            raise UsageError(f"{target}: image sequences are written as PNG; use a pattern like out/%06d.png")
        if codec and CODEC_NAMES.get(codec.lower()) != "png" and codec.lower() != "png":
            raise UsageError(f"--codec {codec}: a folder or %06d pattern is a PNG sequence; give a video file name "
                             "(.mp4/.mov/.webm/.mkv) for that codec")
        if not is_dir:
            m = PATTERN_RE.search(os.path.basename(target))
            if m is None:
                raise UsageError(f"{target}: a sequence pattern needs %0Nd, e.g. out/%06d.png")
        return EncodePlan(otype, target, "sequence", codec="png", bits=bits, alpha=otype == "rgba", ext=".png")
    if ext == ".png":
        raise UsageError(f"{target}: a PNG output needs a frame-number pattern (out/%06d.png) or a folder (out/)")
    if ext not in VIDEO_WRITE_EXTS:
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
    plan = EncodePlan(otype, target, "video", ext=ext)
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
        plan.options["preset"] = preset or COLOUR_PRESET
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


def _plan_alpha(plan: EncodePlan, want: str | None, codec: str | None, lossless: bool, crf, preset) -> EncodePlan:
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
