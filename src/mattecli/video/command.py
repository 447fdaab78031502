"""``mattecli video`` behind the command line: clips -> model -> one :class:`~mattecli.batch.BatchRunner` item per
clip (per-clip errors, ``--report``, ``--json``, exit codes 0 / 1 / 2 / 130 / 143 as every verb).

::

    cmd = VideoCommand(settings)             # flags checked, clips found, outputs planned later (usage errors: exit 2)
    entry = cmd.choose_model()               # --model auto -> choose.pick_auto(temporal=True); required inputs
    options = <typed model options>          # the caller validates --option for ``entry`` (cli._common.model_options)
    code = cmd.run(options)                  # outputs planned and checked, model loaded, clips run
"""
from __future__ import annotations

import sys
from pathlib import Path

from .. import batch
from ..console import warn_line
from ..errors import MatteError, UsageError
from .clips import expand_clips, pair_clips
from .encode_plan import plan_output
from .settings import VideoSettings
from .targets import OutputTargets, output_complete, probe


class VideoCommand:
    def __init__(self, settings: VideoSettings):
        s = self.s = settings
        s.check()
        self.types = s.output_types()
        self.ratio_rule = s.ratio()
        self.items = expand_clips(s.inputs, exclude=batch.output_excludes(s.output))
        self.single = len(self.items) == 1
        self.targets = OutputTargets(s.output, s.template, self.types, clips=len(self.items))
        self.entry = self.name = None

    def info(self, msg: str) -> None:
        if not self.s.quiet:
            print(f"mattecli: {msg}", file=sys.stderr, flush=True)

    # -- the model (no torch) ---------------------------------------------------------------------------------
    def choose_model(self):
        """The registry entry to run: named, or ``--model auto`` (a temporal model preferred). Usage errors for
        inputs the model needs and flags it cannot take."""
        from ..registry import resolve

        s = self.s
        if s.model.strip().lower() == "auto":
            from ..choose import pick_auto

            self.name, why = pick_auto(s.trimap is not None, s.bg is not None, temporal=True)
            self.info(f"--model auto: using {self.name} ({why})")
        else:
            self.name = s.model
        entry, _ = resolve(self.name)
        self.entry = entry
        if entry.kind != "matting":
            raise UsageError(f"model {entry.name} is a {entry.kind}, not a matting model")
        if "background" in entry.requires and s.bg is None:
            raise UsageError(f"model {entry.name} needs a clean background plate: pass --bg plate.png|plate.mp4")
        if "trimap" in entry.requires and s.trimap is None:
            raise UsageError(f"model {entry.name} needs a trimap per frame: pass --trimap FOLDER|PATTERN|VIDEO")
        if s.weights is not None and not entry.weights:
            raise UsageError(f"model {entry.name} takes no weights; drop --weights")
        if s.align and "align" not in entry.options:
            raise UsageError(f"--align: model {entry.name} takes no background plate to align")
        if self.ratio_rule != "portrait" and "downsample_ratio" not in entry.options:
            raise UsageError(f"--downsample-ratio applies to models with that option (rvm), not {entry.name}")
        for flag, given, kind in (("--trimap", s.trimap, "trimap"), ("--bg", s.bg, "background")):
            if given is not None and kind not in entry.requires | entry.optional and not s.quiet:
                warn_line(f"{entry.name} does not use a {'background plate' if kind == 'background' else kind}; "
                          f"{flag} is ignored")
        return entry

    def model_extra(self) -> dict:
        """Model options set by flags of their own (``--align``)."""
        return {"align": True} if self.s.align else {}

    @property
    def label(self) -> str:
        return self.entry.name if self.name == self.entry.name else self.name

    # -- the run ----------------------------------------------------------------------------------------------
    def _plan(self) -> None:
        s, items = self.s, self.items
        uses = self.entry.requires | self.entry.optional
        if not self.single:
            batch.drop_previous_outputs(items, lambda it: [Path(p) for p in self.targets.paths(it, self.label).values()])
        pair_clips(items, s.trimap if "trimap" in uses else None, "trimap", "--trimap")
        pair_clips(items, s.bg if "background" in uses else None, "bg", "--bg")
        self.paths = {id(it): self.targets.paths(it, self.label) for it in items}
        self.plans = {id(it): [plan_output(t, p, lossless=s.lossless, codec=s.codec, crf=s.crf, preset=s.preset,
                                           bits=s.bits) for t, p in self.paths[id(it)].items()] for it in items}
        batch.check_plan(items, [Path(p) for ps in self.paths.values() for p in ps.values()])

    def _load(self, options: dict):
        import mattecli

        s = self.s
        if isinstance(self.ratio_rule, float):
            if options.get("downsample_ratio") is not None:
                raise UsageError("give the ratio once: --downsample-ratio or --option downsample_ratio")
            options["downsample_ratio"] = self.ratio_rule
        if s.threads:
            from ..runtime import set_threads

            set_threads(s.threads)
        if self.entry.weights:
            return mattecli.load_model(self.name, weights=s.weights, device=s.device, precision=s.precision, **options)
        return mattecli.load_model(self.name, **options)

    def run(self, options: dict) -> int:
        """Plan, load, run every clip; returns the exit code."""
        from ..batch.signals import stop_on_signals

        if self.entry is None:
            self.choose_model()
        self.options = dict(options)
        self._plan()
        self.backend = self._load(self.options)
        s = self.s
        runner = batch.BatchRunner(verb="video", model=self.label,
                                   weights_sha256=getattr(self.backend, "weights_sha256", None),
                                   fail_fast=s.fail_fast, overwrite=s.overwrite, report=s.report,
                                   json_out=s.json_out, quiet=s.quiet, verbose=s.verbose, argv=s.argv,
                                   is_complete=output_complete)
        with stop_on_signals(sigint_too=True):
            return runner.run(self.items, self.clip, planned=self.existing)

    def existing(self, item: batch.Item) -> list:
        """What of ``item``'s outputs is on disk (for the runner: complete outputs are skipped, partial ones are an
        error, unless --overwrite)."""
        return [Path(probe(p)) for p in self.paths[id(item)].values()]

    # -- one clip ---------------------------------------------------------------------------------------------
    def _ratio(self, info) -> float | None:
        """The downsample ratio for this clip (models with that option), set on the loaded model."""
        if "downsample_ratio" not in self.entry.options:
            return None
        given = self.options.get("downsample_ratio")
        if given is not None:
            return float(given)
        from ..backends.rvm.adapter import auto_downsample_ratio

        ratio = float(auto_downsample_ratio(info.height, info.width, shot=self.ratio_rule))
        if self.ratio_rule != "portrait":   # the model's own automatic choice is the portrait rule
            self.backend.options["downsample_ratio"] = ratio
        return ratio

    def clip(self, item: batch.Item) -> dict:
        """Matte one clip (a BatchRunner item); returns its outputs and report fields."""
        import av

        from . import pipeline
        from .job import VideoJob
        from .oserrors import output_os_error
        from .reader import VideoSource

        s = self.s
        notes: list[str] = []
        plans = self.plans[id(item)]
        try:
            source = VideoSource(item.path, fps=s.fps)
            try:
                info = source.info
                ratio = self._ratio(info)
                extra = f", downsample_ratio {ratio:g}" if ratio is not None else ""
                self.info(f"{info.path}: {info.describe()}; model {self.label} on "
                          f"{getattr(self.backend, 'device', 'cpu')}{extra}, batch {s.batch_size}")
                for p in plans:
                    self.info(f"  -> {p.describe()}")
                job = VideoJob(outputs=plans, batch_size=s.batch_size, plate=item.partners.get("bg"),
                               trimap=item.partners.get("trimap"), composite_bg=s.composite_bg, smooth=s.smooth,
                               audio=s.audio, progress=not s.quiet and self.single, keep_partial=s.keep_partial,
                               allow_truncated=s.allow_truncated, wait=s.wait)
                res = pipeline.run_video(source, self.backend, job, notes=notes)
            finally:
                source.close()
        except MatteError:
            raise
        except (OSError, av.error.FFmpegError) as e:   # the last safety net: one line, never a traceback
            raise output_os_error(str(getattr(e, "filename", None) or plans[0].path), e, "failed") from None
        finally:
            for n in dict.fromkeys(notes):
                warn_line(n)
        self.info(f"{info.path}: {res.frames_text()} in {res.seconds:.1f} s ({res.fps:.2f} fps)")
        return {"outputs": res.outputs, "width": info.width, "height": info.height, "frames": res.frames,
                "frames_expected": getattr(res, "frames_expected", None), "fps": round(res.fps, 3),
                "batch_size": res.batch_size}
