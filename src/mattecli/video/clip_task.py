"""``video``'s work for one clip as a picklable task (like :mod:`mattecli.tasks`): the model loaded once per process,
``__call__(item)`` runs a whole clip, and the split protocol of :mod:`mattecli.batch.executors` spreads one long
clip over the Ray workers as segments (:mod:`.segments`) joined back by :mod:`.join`.

::

    task = ClipTask.from_command(cmd)            # a planned VideoCommand: settings, model, options
    item.info["plans"] = [EncodePlan, ...]       # the clip's outputs, as planned
    runner.run(items, task, planned=clip_outputs, executor=ex)

A clip is split (on Ray, with two workers or more) when it is a video file with keyframes, long enough
(:data:`~mattecli.video.segments.MIN_SEGMENT_FRAMES` per segment), written to video files (not PNG sequences), with
nothing read frame by frame beside it (no trimap or plate video, no video behind the composite, no ``--smooth``);
otherwise it runs whole on one worker.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import MatteError
from ..formats import IMAGE_EXTS
from .segments import DEFAULT_WARM, MIN_SEGMENT_FRAMES


def clip_outputs(item) -> list:
    """What of a clip's planned outputs is on disk (the ``planned`` of the batch runner)."""
    from .targets import probe

    return [Path(probe(p.path)) for p in item.info["plans"]]


def _still(path) -> bool:
    """A colour or an image file (read once), not a video or a sequence read frame by frame."""
    if path is None:
        return True
    from ..imaging.colour import colour_or_none

    s = os.fspath(path)
    return colour_or_none(s) is not None or (os.path.isfile(s) and Path(s).suffix.lower() in IMAGE_EXTS)


@dataclass
class ClipTask:
    settings: Any                       # VideoSettings
    name: str                           # model name as given
    label: str                          # model name for reports
    options: dict = field(default_factory=dict)
    ratio_rule: Any = "portrait"        # VideoSettings.ratio()
    ratio_option: bool = False          # the model has a downsample_ratio option (rvm)
    weights_needed: bool = True         # the model has weights (load_model takes weights/device/precision)
    temporal: bool = False              # the model carries a state across frames (warm segments)
    progress: bool = False              # a frames bar (one clip, on a terminal)
    warm: int = DEFAULT_WARM            # warm-up frames before each segment (temporal models)
    min_segment_frames: int = MIN_SEGMENT_FRAMES
    segments: int = 0                   # segments per clip: 0 = one per worker, 1 = never split
    loader: Callable | None = None      # tests: builds the backend instead of the registry
    _backend: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state

    @classmethod
    def from_command(cls, cmd, **kw) -> "ClipTask":
        """The task of a :class:`~mattecli.video.command.VideoCommand` whose model is chosen and options typed."""
        e = cmd.entry
        return cls(settings=cmd.s, name=cmd.name, label=cmd.label, options=dict(cmd.options),
                   ratio_rule=cmd.ratio_rule, ratio_option="downsample_ratio" in e.options,
                   weights_needed=bool(e.weights), temporal=bool(getattr(e, "temporal", False)),
                   progress=not cmd.s.quiet and cmd.single, **kw)

    # -- the model (once per process) ----------------------------------------------------------------------------
    def load(self):
        if self._backend is not None:
            return self._backend
        import mattecli

        from ..errors import UsageError

        s, options = self.settings, dict(self.options)
        if isinstance(self.ratio_rule, float):
            if options.get("downsample_ratio") is not None:
                raise UsageError("give the ratio once: --downsample-ratio or --option downsample_ratio")
            options["downsample_ratio"] = self.ratio_rule
        if s.threads:
            from ..runtime import set_threads

            set_threads(s.threads)
        if self.loader is not None:
            self._backend = self.loader()
        elif self.weights_needed:
            self._backend = mattecli.load_model(self.name, weights=s.weights, device=s.device,
                                                precision=s.precision, runtime=s.runtime, **options)
        else:
            self._backend = mattecli.load_model(self.name, runtime=s.runtime, **options)
        self.options = options
        return self._backend

    def _ratio(self, info) -> float | None:
        """The downsample ratio for this clip (models with that option), set on the loaded model."""
        if not self.ratio_option:
            return None
        given = self.options.get("downsample_ratio")
        if given is not None:
            return float(given)
        from ..backends.rvm.adapter import auto_downsample_ratio

        ratio = float(auto_downsample_ratio(info.height, info.width, shot=self.ratio_rule))
        if self.ratio_rule != "portrait":
            self._backend.options["downsample_ratio"] = ratio
        return ratio

    def _say(self, msg: str) -> None:
        if not self.settings.quiet:
            print(f"mattecli: {msg}", file=sys.stderr, flush=True)

    @staticmethod
    def _warn(notes: list) -> None:
        from ..console import warn_line

        for n in dict.fromkeys(notes):
            warn_line(n)

    # -- a whole clip ----------------------------------------------------------------------------------------------
    def __call__(self, item) -> dict:
        import av

        from . import pipeline
        from .job import VideoJob
        from .oserrors import output_os_error
        from .reader import VideoSource

        s = self.settings
        backend = self.load()
        notes: list[str] = []
        plans = item.info["plans"]
        try:
            source = VideoSource(item.path, fps=s.fps)
            try:
                info = source.info
                ratio = self._ratio(info)
                extra = f", downsample_ratio {ratio:g}" if ratio is not None else ""
                self._say(f"{info.path}: {info.describe()}; model {self.label} on "
                          f"{getattr(backend, 'device', 'cpu')}{extra}, batch {s.batch_size}")
                for p in plans:
                    self._say(f"  -> {p.describe()}")
                job = VideoJob(outputs=plans, batch_size=s.batch_size, plate=item.partners.get("bg"),
                               trimap=item.partners.get("trimap"), composite_bg=s.composite_bg, smooth=s.smooth,
                               audio=s.audio, progress=self.progress, keep_partial=s.keep_partial,
                               allow_truncated=getattr(s, "allow_truncated", False), wait=getattr(s, "wait", None))
                res = pipeline.run_video(source, backend, job, notes=notes)
            finally:
                source.close()
        except MatteError:
            raise
        except (OSError, av.error.FFmpegError) as e:
            raise output_os_error(str(getattr(e, "filename", None) or plans[0].path), e, "failed") from None
        finally:
            self._warn(notes)
        self._say(f"{info.path}: {res.frames_text()} in {res.seconds:.1f} s ({res.fps:.2f} fps)")
        return {"outputs": res.outputs, "width": info.width, "height": info.height, "frames": res.frames,
                "frames_expected": getattr(res, "frames_expected", None), "fps": round(res.fps, 3),
                "batch_size": res.batch_size}

    # -- one clip in segments (the split protocol of mattecli.batch.executors) ---------------------------------------
    def split(self, item, workers: int = 1) -> list | None:
        """The clip's segments (on the driver), or None to run it whole."""
        from .reader import VideoSource
        from .segments import key_index, plan_segments

        s = self.settings
        parts = self.segments or workers
        if parts < 2 or s.smooth not in (None, "", "none") or "trimap" in item.partners:
            return None
        if not _still(item.partners.get("bg")) or not _still(s.composite_bg):
            return None
        if any(p.kind != "video" for p in item.info["plans"]) or not os.path.isfile(item.path):
            return None
        index = key_index(os.fspath(item.path))
        if index is None or len(index.pts) < 2 * self.min_segment_frames:
            return None
        src = VideoSource(item.path, fps=s.fps)
        info = src.info
        src.close()
        if info.kind != "video":
            return None
        segs = plan_segments(index, parts, warm=self.warm if self.temporal else 0,
                             min_frames=self.min_segment_frames)
        if len(segs) < 2:
            return None
        self._say(f"{info.path}: {info.describe()}; {len(segs)} segments on the workers"
                  + (f", {self.warm} warm-up frames each" if self.temporal else ""))
        t0 = time.time()
        return [(seg, info, t0) for seg in segs]

    def run_part(self, item, part) -> dict:
        """One segment into its segment files (on a worker)."""
        import av

        from .oserrors import output_os_error
        from .segments import run_segment

        seg, info, _ = part
        backend = self.load()
        self._ratio(info)
        notes: list[str] = []
        try:
            return run_segment(backend, os.fspath(item.path), seg, info, item.info["plans"],
                               batch_size=self.settings.batch_size, composite_bg=self.settings.composite_bg,
                               plate=item.partners.get("bg"), notes=notes)
        except MatteError:
            raise
        except (OSError, av.error.FFmpegError) as e:
            raise output_os_error(item.info["plans"][0].path, e, f"segment {seg.index} failed") from None
        finally:
            self._warn(notes)

    def join(self, item, parts, results) -> dict:
        """The segments joined into the clip's outputs (on a worker), then their files removed."""
        from .join import join_segments
        from .segments import segment_plans

        s = self.settings
        info, t0 = parts[0][1], parts[0][2]
        starts = [seg.start_pts for seg, _, _ in parts]
        outputs, notes = [], []
        try:
            for k, plan in enumerate(item.info["plans"]):
                files = [segment_plans(item.info["plans"], seg.index)[k].path for seg, _, _ in parts]
                path, _ = join_segments(plan, files, info, starts=starts, audio=s.audio, notes=notes,
                                        wait=getattr(s, "wait", None))
                outputs.append(path)
        finally:
            self._warn(notes)
        self.discard(item, parts)
        frames = sum(r["frames"] for r in results)
        wall = max(1e-9, time.time() - t0)           # from the split to the last join (driver and worker clocks)
        self._say(f"{info.path}: {frames} frames in {len(parts)} segments in {wall:.1f} s ({frames / wall:.2f} fps)")
        return {"outputs": outputs, "width": info.width, "height": info.height, "frames": frames,
                "frames_expected": None, "fps": round(frames / wall, 3),
                "batch_size": min(r["batch_size"] for r in results), "segments": len(parts),
                "warm_frames": sum(r["warmed"] for r in results)}

    def discard(self, item, parts) -> None:
        """Remove what the segments left (their files, work files and locks)."""
        from .segments import segment_files

        for plan in item.info["plans"]:
            for f in segment_files(plan.path):
                try:
                    os.remove(f)
                except OSError:
                    pass
