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
from ..errors import UsageError
from .clips import expand_clips, pair_clips
from .encode_plan import plan_output
from .settings import VideoSettings
from .targets import OutputTargets, output_complete


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

    def run(self, options: dict, executor=None) -> int:
        """Plan, load, run every clip (through :class:`.clip_task.ClipTask`, here or on an executor's workers);
        returns the exit code."""
        from ..batch import executors
        from ..batch.signals import stop_on_signals
        from .clip_task import ClipTask, clip_outputs

        if self.entry is None:
            self.choose_model()
        self.options = dict(options)
        self._plan()
        for it in self.items:
            it.info["plans"] = self.plans[id(it)]
        task = ClipTask.from_command(self)
        if not self.s.quiet:
            from ..backends.runtimes import clause as runtime_clause

            engine = runtime_clause(self.entry, self.s.device, self.s.precision, self.s.runtime) \
                if executor is None else ""     # Ray: the workers' device decides
            self.info(f"video: {len(self.items)} clip(s) with {self.label}{engine}"
                      + (" on Ray" if executor is not None else ""))
        loaded = executors.prepare(executor, task, count=len(self.items))
        self.backend = task._backend
        s = self.s
        runner = batch.BatchRunner(verb="video", model=self.label, weights_sha256=loaded["weights_sha256"],
                                   fail_fast=s.fail_fast, overwrite=s.overwrite, report=s.report,
                                   json_out=s.json_out, quiet=s.quiet, verbose=s.verbose, argv=s.argv,
                                   is_complete=output_complete)
        with stop_on_signals(sigint_too=True):
            return runner.run(self.items, task, planned=clip_outputs, executor=executor)
