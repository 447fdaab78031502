"""Everything ``mattecli video`` is asked to do, as one value (the command line fills it; so can a script), and
the checks of its flags that need no model and no decoding (usage errors, exit 2)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .encode_plan import OUTPUT_TYPES

RATIO_AUTO = ("auto", "auto-portrait")
RATIO_FULL_BODY = ("auto-fullbody", "auto-full-body")


@dataclass
class VideoSettings:
    inputs: list = field(default_factory=list)  # clips: video files, folders of frames, %06d patterns, folders of clips
    model: str = "auto"
    bg: str | None = None                       # --bg: plate image / video / sequence, or a folder of per-clip plates
    trimap: str | None = None                   # --trimap: trimap sequence / video, or a folder of per-clip ones
    weights: str | None = None
    output_type: str = "composite"              # comma-separated OUTPUT_TYPES
    output: str | None = None                   # -o (see video.targets)
    template: str | None = None
    composite_bg: str = "rvm-green"
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    runtime: str | None = None                  # --runtime (None: $MATTECLI_RUNTIME, else auto)
    downsample_ratio: str = "auto"              # auto | auto-fullbody | a number in (0, 1]
    smooth: str = "none"
    lossless: bool = False
    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    bits: int = 8
    align: bool = False
    fps: float | None = None                    # frame rate of image-sequence inputs
    audio: bool = True
    keep_partial: bool = True
    threads: int | None = None
    quiet: bool = False
    verbose: bool = False
    report: str | None = None
    json_out: bool = False
    fail_fast: bool = False
    overwrite: bool = False                     # replace existing outputs (default: complete ones are skipped)
    argv: list | None = None
    allow_truncated: bool = False               # an input that ends early: keep its frames with a warning (not exit 1)
    wait: bool = False                          # another run writing an output: wait for it instead of failing

    # -- checks (no torch, no decoding) --------------------------------------------------------------------------
    def output_types(self) -> list[str]:
        types = [t.strip().lower() for t in self.output_type.split(",") if t.strip()]
        bad = [t for t in types if t not in OUTPUT_TYPES]
        if bad or not types:
            raise UsageError(f"--output-type {self.output_type!r}: use one or more of {', '.join(OUTPUT_TYPES)}")
        if len(set(types)) != len(types):
            raise UsageError(f"--output-type {self.output_type!r}: each type may be given once")
        return types

    def ratio(self) -> float | str:
        """``--downsample-ratio``: a number in (0, 1], or ``"portrait"`` / ``"full-body"`` for the automatic rule."""
        dr = self.downsample_ratio.strip().lower()
        if dr in RATIO_AUTO:
            return "portrait"
        if dr in RATIO_FULL_BODY:
            return "full-body"
        try:
            r = float(dr)
        except ValueError:
            raise UsageError(f"--downsample-ratio {self.downsample_ratio!r}: use auto, auto-fullbody or a number "
                             "in (0, 1]") from None
        if not 0 < r <= 1:
            raise UsageError(f"--downsample-ratio {r:g}: must be in (0, 1]")
        return r

    def check(self) -> None:
        from ..batch import check_device_precision, check_report
        from .smoothing import parse_smooth

        self.output_types()
        self.ratio()
        parse_smooth(self.smooth)
        if self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.bits not in (8, 16):
            raise UsageError(f"--bits {self.bits}: use 8 or 16")
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"--fps {self.fps:g}: must be a positive frame rate")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads {self.threads}: must be at least 1")
        check_device_precision(self.device, self.precision)
        check_report(self.report)
