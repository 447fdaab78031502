"""The ``eval`` modes as jobs for the batch runner: items (:mod:`.pairing`, :mod:`.sequences`), the per-item
preparation, the scoring worker (:mod:`.runner`) and what the report says about the run.

* folders:     ``--pred DIR --gt DIR [--trimap DIR]``  (no trimap: whole-image metrics)
* video:       ``--video --pred PATH --gt PATH``       (folders of frames, video files, or folders of either)
* model:       ``--model NAME --images DIR --gt DIR [--trimap DIR] [--bg DIR] [--save-pred DIR]``
* composition: ``--model NAME --foreground DIR --alpha DIR --backgrounds DIR [--per-fg N]``  (Composition-1k
  style, on the fly)

The unknown region is the trimap value 128 (the official code), or ``unknown_values`` (:mod:`.unknown`); an image
whose trimap has no unknown pixel is left out of every mean.

No torch or backend import at module level.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from ..batch import BatchRunner, Item
from . import runner as R
from .metrics import METRICS, VIDEO_METRICS
from .unknown import describe


@dataclass
class Job:
    mode: str                                   # folders | video | model | composition
    items: list
    prepare: Callable[[Item], dict]             # -> {"score": task, ...report fields}
    worker: Callable[[tuple], dict]             # task -> row
    keys: tuple = METRICS
    row_key: str = "images"
    extra: dict = field(default_factory=dict)   # report fields: region, model, per_fg, weights_sha256
    model: str | None = None
    weights_sha256: str | None = None


def run_job(job: Job, jobs: int = 1, quiet: bool = False, executor=None) -> tuple[list[dict], list[dict], int]:
    """Run ``job`` through the batch runner: (rows, errors, exit code of the run: 0, 1, 130 or 143). ``executor``
    runs the per-item preparation (the model's predictions, in model modes) elsewhere, e.g. on Ray workers."""
    sink: dict = {}
    runner = BatchRunner(verb="eval", model=job.model, weights_sha256=job.weights_sha256, quiet=quiet)
    code = runner.run(job.items, job.prepare, executor=R.scoring_executor(job.worker, jobs, sink, inner=executor))
    rows, errors = R.rows_and_errors(job.items, sink)
    return rows, errors, code


def _unknown_values(spec, with_trimaps: bool):
    """``--unknown-values``, checked: it needs trimaps to apply to (usage error otherwise)."""
    from ..errors import UsageError
    from .unknown import parse_unknown_values

    values = parse_unknown_values(spec)
    if values is not None and not with_trimaps:
        raise UsageError(f"--unknown-values {','.join(map(str, values))}: applies to the trimaps of --trimap; "
                         "add --trimap DIR (and drop --whole-image)")
    return values


def folder_job(pred, gt, trimap=None, whole_image: bool = False, unknown_values=None) -> Job:
    """``unknown_values``: the trimap values scored as unknown (None: 128, as the official code)."""
    from .pairing import pair_folders

    unknown_values = _unknown_values(unknown_values, trimap is not None and not whole_image)
    items = pair_folders(pred, gt, None if whole_image else trimap)

    def prepare(it: Item) -> dict:
        tri = it.partners.get("trimap")
        return {"score": (it.relstem, str(it.partners["pred"]), str(it.partners["gt"]), tri and str(tri),
                          unknown_values)}

    region = "whole image" if (trimap is None or whole_image) else describe(unknown_values)
    return Job("folders", items, prepare, R.score_files, extra={"region": region})


def video_job(pred, gt, with_messddt: bool = True) -> Job:
    from .sequences import pair_sequences

    items = pair_sequences(pred, gt)

    def prepare(it: Item) -> dict:
        return {"score": (it.relstem, str(it.path), str(it.partners["gt"]), with_messddt)}

    keys = VIDEO_METRICS if with_messddt else tuple(k for k in VIDEO_METRICS if k != "messddt")
    return Job("video", items, prepare, R.score_sequence, keys=keys, row_key="sequences",
               extra={"region": "whole frame"})


def model_job(model: str, options: dict, *, images=None, gt=None, trimap=None, plates=None, save_pred=None,
              weights=None, device: str = "auto", runtime: str | None = None, whole_image: bool = False, trimap_radius: int = 10,
              composition: tuple | None = None, unknown_values=None, executor=None) -> Job:
    """``--model`` modes: items paired first (usage errors before the model loads), then the model, then a
    preparation that reads (or composites) each item, runs the model and saves the 8-bit prediction.
    ``plates``: ``--bg`` (clean plates paired with ``--images``); ``composition``: (foreground folder, alpha folder,
    backgrounds folder, backgrounds per foreground); ``unknown_values``: the values of the given trimaps scored as
    unknown (None: 128; generated trimaps always use 128)."""
    from .. import batch
    from ..errors import MissingInput, UsageError
    from ..registry import resolve
    from . import pairing
    from .report import check_out_folder

    entry = resolve(model)[0]
    unknown_values = _unknown_values(unknown_values, trimap is not None and not whole_image)
    if save_pred is not None:
        check_out_folder(save_pred, "--save-pred")
    if "background" in entry.requires and plates is None and composition is None:
        raise MissingInput(f"model {entry.name} needs a clean background plate per image: pass --bg DIR")
    if trimap_radius < 0:
        raise UsageError(f"--trimap-radius must be >= 0, got {trimap_radius}")
    excl = batch.output_excludes(save_pred)
    if composition is not None:
        fg_dir, alpha_dir, bg_dir, per_fg = composition
        items = pairing.pairs_composition(fg_dir, alpha_dir, bg_dir, per_fg, trimap)
    else:
        items = pairing.pair_model_inputs(images, gt, trimap, plates, exclude=excl)
    if save_pred is not None:
        ok = [it for it in items if not it.problem]
        plan = batch.OutputPlan(save_pred, template="{relpath}.{ext}", ext="png")
        for it in ok:
            it.info["outputs"] = [plan.path(it)]
        try:
            batch.check_plan(ok, [it.info["outputs"][0] for it in ok], plan=plan, types=["alpha"])
        except UsageError as e:  # an output that would overwrite an input or a partner file
            raise UsageError(f"--save-pred {save_pred}: {str(e).split(';')[0]}; choose another folder") from None
    from ..batch import executors

    prepare = PredictTask(model=model, options=dict(options), weights=None if weights is None else os.fspath(weights),
                          device=device, runtime=runtime, composition=composition is not None, whole_image=whole_image,
                          trimap_radius=trimap_radius, unknown_values=unknown_values)
    loaded = executors.prepare(executor, prepare, count=len(items))
    generated = f"trimap == 128 (generated, radius {trimap_radius})"
    extra = {"model": entry.name,
             "region": "whole image" if whole_image else
             (describe(unknown_values) if trimap is not None else generated)}
    if composition is not None:
        extra["per_fg"] = composition[3]
    sha = loaded["weights_sha256"]
    if sha:
        extra["weights_sha256"] = sha
    if loaded.get("runtime"):
        extra["runtime"] = loaded["runtime"].removeprefix("runtime: ")
    return Job("composition" if composition is not None else "model", items, prepare, R.score_array_task,
               extra=extra, model=entry.name, weights_sha256=sha)


@dataclass
class PredictTask:
    """The model modes' per-item preparation: read (or composite) one item, predict, save the 8-bit prediction when
    ``--save-pred`` planned it (``item.info["outputs"]``), hand the arrays to scoring. Picklable: the model loads
    once per process (here, or on each worker of an executor)."""

    model: str
    options: dict
    weights: str | None = None
    device: str = "auto"
    runtime: str | None = None
    composition: bool = False
    whole_image: bool = False
    trimap_radius: int = 10
    unknown_values: tuple | None = None
    _backend: object = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None
        return state

    def load(self):
        if self._backend is None:
            import mattecli

            self._backend = mattecli.load_model(self.model, weights=self.weights, device=self.device,
                                                runtime=self.runtime, **self.options)
        return self._backend

    def __call__(self, it: Item) -> dict:
        from ..errors import InputError
        from ..imaging.io import read_rgb, write_image
        from .datasets import composite, fit_background_cover, gt_trimap, read_alpha, read_rgb8
        from .metrics import as_alpha_u8
        from .unknown import scored_trimap

        backend = self.load()
        entry = backend.entry
        takes_trimap = "trimap" in entry.requires or "trimap" in entry.optional
        takes_plate = "background" in entry.requires or "background" in entry.optional

        def mismatch(path, what, a, G, fix):
            return InputError(f"{path}: {what} is {a.shape[1]}x{a.shape[0]} but the ground truth is "
                              f"{G.shape[1]}x{G.shape[0]}; {fix}", path=path)

        G = read_alpha(it.partners["alpha"])
        if self.composition:
            fg = read_rgb8(it.path)
            if fg.shape[:2] != G.shape:
                raise InputError(f"{it.path}: foreground is {fg.shape[1]}x{fg.shape[0]} but its alpha is "
                                 f"{G.shape[1]}x{G.shape[0]}; they must match", path=it.path)
            plate = fit_background_cover(read_rgb8(it.partners["bg"]), *G.shape)
            image = composite(fg, G, plate)
            plate = plate if takes_plate else None  # the exact clean plate of the composite
        else:
            image = read_rgb(it.path)
            plate = read_rgb(it.partners["bg"]) if "bg" in it.partners else None
            if image.shape[:2] != G.shape:
                raise mismatch(it.path, "image", image, G, "they must match")
        tpath = it.partners.get("trimap")
        T = read_alpha(tpath) if tpath else gt_trimap(G, self.trimap_radius)
        if T.shape != G.shape:
            raise mismatch(tpath, "trimap", T, G, "use the matching trimap")
        if tpath and not self.whole_image:
            scored_trimap(T, self.unknown_values, str(tpath))   # a trimap whose unknown is not 128: before the model
        t0 = time.perf_counter()
        res = backend.predict(image, trimap=T if takes_trimap else None, background=plate)
        seconds = time.perf_counter() - t0
        P = as_alpha_u8(res.alpha, "prediction")
        if it.info.get("outputs"):
            write_image(it.info["outputs"][0], P, what="alpha")
        task = (it.relstem, P, G, None if self.whole_image else T, str(it.path),
                self.unknown_values if tpath else None, str(tpath) if tpath else "")
        return {"score": task, "predict_seconds": seconds}
