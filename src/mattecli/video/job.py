"""What one clip's run is asked to do (:class:`VideoJob`) and what it did (:class:`VideoResult`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .encode_plan import EncodePlan


@dataclass
class VideoJob:
    outputs: list[EncodePlan]
    batch_size: int = 4
    plate: str | None = None            # --bg: background plate (image, video or sequence) for plate models
    trimap: str | None = None           # --trimap: one trimap per frame (sequence, pattern or video)
    composite_bg: str = "rvm-green"     # colour (imaging.colour), image or video behind the composite
    smooth: str | None = None           # none | ema[:W] | median[:N]
    audio: bool = True                  # copy audio/subtitles into video outputs
    progress: bool = True               # a frames bar on a terminal
    progress_label: str | None = None   # the bar's label (default: the clip's name)
    keep_partial: bool = True           # on Ctrl-C/crash leave playable *.partial.* outputs
    allow_truncated: bool = False       # an input that ends early (truncated, damaged): keep its frames, warn
    wait: bool | None = None            # another run writing an output: wait for it (None: batch.locks.wait())


@dataclass
class VideoResult:
    outputs: list[str]
    frames: int
    seconds: float
    batch_size: int                     # the batch size at the end (lowered after running out of device memory)
    notes: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    frames_expected: int | None = None  # the container's frame count, when it differs from the frames decoded

    def frames_text(self) -> str:
        """``100 frames``, or ``98 frames (the container says 100)`` when the input did not give what it announced."""
        if self.frames_expected is None or self.frames_expected == self.frames:
            return f"{self.frames} frames"
        return f"{self.frames} frames (the container says {self.frames_expected})"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0
