"""``mattecli eval``: SAD, MSE, Grad, Conn exactly as the official Composition-1k (DIM) MATLAB code; dtSSD/MESSDdt.

This module declares the options and picks the mode; the modes (:mod:`mattecli.evaluation.modes`) pair the files
and run through the batch runner; :mod:`mattecli.evaluation.report` prints and writes the report. No torch or
backend import at module level (``mattecli --help`` stays light).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from . import flags
from ._common import fetch_policy, handle_errors, model_options, wait_policy, warn_line


def _p(value: Optional[str]) -> Optional[Path]:
    return None if value is None else Path(value)


def register(app: typer.Typer) -> None:
    app.command("eval", no_args_is_help=True)(eval_command)


@handle_errors
def eval_command(
    pred: Optional[str] = typer.Option(None, "--pred", help="Folder of predicted alphas (searched recursively), "
                                       "named STEM.* or STEM_alpha.* as `matte` writes them (or, with --video, "
                                       "frames/videos)."),
    gt: Optional[str] = typer.Option(None, "--gt", help="Folder of ground-truth alphas STEM.* (or STEM_alpha.*, "
                                     "STEM_gt.*), paired with --pred/--images by file stem."),
    trimap: Optional[str] = flags.trimap("A folder of STEM.* or STEM_trimap.* (unknown = value 128 exactly). "
                                         "Without it: --pred mode scores the whole image; --model modes generate "
                                         "trimaps from the ground truth."),
    model: Optional[str] = flags.model(None, "Run it first (on --images, or on composites of --foreground/--alpha/"
                                             "--backgrounds) and score its alphas."),
    images: Optional[str] = typer.Option(None, "--images", help="--model mode: folder of input images."),
    bg: Optional[str] = flags.bg("--model mode: a folder, paired with --images by file stem (models that need "
                                 "one)."),
    save_pred: Optional[str] = typer.Option(None, "--save-pred", help="--model modes: also write each prediction "
                                            "as <name>.png here (sub-folders as in the inputs)."),
    weights: Optional[str] = flags.weights(),
    device: str = flags.device(),
    runtime: Optional[str] = flags.runtime(),
    option: flags.ListOpt = flags.option(),
    offline: bool = flags.offline(),
    no_fetch: bool = flags.no_fetch(),
    foreground: Optional[str] = flags.foreground("Composition mode: a folder of foregrounds."),
    alpha: Optional[str] = flags.alpha("Composition mode: a folder of ground-truth alphas for --foreground."),
    backgrounds: Optional[str] = typer.Option(None, "--backgrounds", help="Composition mode: folder of backgrounds "
                                              "the foregrounds are composited over."),
    per_fg: int = typer.Option(20, "--per-fg", help="Composition mode: backgrounds per foreground "
                                                    "(Composition-1k: 20)."),
    trimap_radius: int = typer.Option(10, "--trimap-radius", help="Radius (px) of the generated trimaps' unknown "
                                                                  "band (see docs)."),
    unknown_values: Optional[str] = typer.Option(None, "--unknown-values", metavar="V[,V...]",
                                                 help="Trimap grey values scored as unknown (default: 128 only, as "
                                                      "the official code), e.g. 102 for pymatting's trimaps."),
    whole_image: bool = flags.flag(False, "--whole-image", help="Score every pixel (no trimap), also in --model "
                                                                "modes."),
    video: bool = flags.flag(False, "--video", help="Video mode: --pred/--gt are sequences; adds dtSSD and "
                                                    "MESSDdt."),
    no_messddt: bool = flags.flag(False, "--no-messddt", help="Video mode: skip MESSDdt (needs optical flow; "
                                                              "slower)."),
    json_out: bool = flags.json_out("The report (the table still goes to stderr, unless -q)."),
    csv_out: bool = flags.flag(False, "--csv", help="Print the report as CSV on stdout."),
    report: Optional[str] = flags.report(),
    fail_above: Optional[str] = typer.Option(None, "--fail-above", help="Exit 1 when a mean exceeds its bound, "
                                             "e.g. sad=40,mse=0.01."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes for the metrics (parallel over images)."),
    quiet: bool = flags.quiet("No score table."),
    wait: bool = flags.wait(),
    executor: Optional[str] = flags.executor("Model modes: the predictions run there; scoring stays here."),
    ray_address: Optional[str] = flags.ray_address(),
) -> None:
    """Score alpha mattes against ground truth (SAD, MSE, Grad, Conn as the official DIM/Composition-1k MATLAB code; dtSSD and MESSDdt for video).

    \b
    Modes:
      --pred DIR --gt DIR [--trimap DIR]                       score existing predictions
      --model NAME --images DIR --gt DIR [--trimap DIR] [--bg DIR] [--save-pred DIR]
      --model NAME --foreground DIR --alpha DIR --backgrounds DIR [--per-fg N]   Composition-1k style
      --video --pred PATH --gt PATH                            sequences: adds dtSSD, MESSDdt

    The table goes to stderr; --json / --csv print the report on stdout, --report FILE writes it (.json or .csv).
    Exit status: 0 all scored, 1 some items failed or a --fail-above bound was exceeded, 2 usage error.
    """
    from ..errors import MatteError, UsageError
    from ..evaluation import modes
    from ..evaluation import report as rp

    bounds = rp.parse_fail_above(fail_above)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    fmt = rp.stdout_format(json_out, csv_out)
    comp = any(x is not None for x in (foreground, alpha, backgrounds))
    reported = ("sad", "mse", "grad", "conn") + (("dtssd",) + (() if no_messddt else ("messddt",)) if video else ())
    unreported = [k for k in bounds if k not in reported]
    if unreported:
        raise UsageError(f"--fail-above {','.join(unreported)}: not reported in this mode; use {', '.join(reported)}")
    # where the results go must be writable before anything is computed
    rp.check_out_file(report, "--report")
    file_fmt = rp.file_format(report)
    fetch_policy(offline, no_fetch)
    wait_policy(wait)
    ex = None
    if executor is not None and model is None:
        raise UsageError("--executor applies to --model modes (the predictions); scoring runs here (--jobs N)")
    t_start = time.perf_counter()

    if video:
        if pred is None or gt is None:
            raise UsageError("--video needs --pred PATH and --gt PATH (folders of frames or video files)")
        if model or comp or images or bg:
            raise UsageError("--video scores existing predictions: drop --model/--images/--bg/--foreground/--alpha/"
                             "--backgrounds")
        if unknown_values is not None:
            raise UsageError("--unknown-values: --video scores whole frames (no trimaps); drop it")
        job = modes.video_job(_p(pred), _p(gt), not no_messddt)
    elif comp or model is not None:
        if comp:
            if None in (foreground, alpha, backgrounds):
                raise UsageError("composition mode needs all of --foreground DIR --alpha DIR --backgrounds DIR")
            if model is None:
                raise UsageError("composition mode runs a model on the composites: add --model NAME")
            if pred is not None or images is not None or gt is not None or bg is not None:
                raise UsageError("composition mode takes its ground truth from --alpha and its plates from "
                                 "--backgrounds: drop --pred/--images/--gt/--bg")
        else:
            if images is None or gt is None:
                raise UsageError("--model needs --images DIR and --gt DIR (or --foreground/--alpha/--backgrounds for "
                                 "composition mode)")
            if pred is not None:
                raise UsageError("--model makes the predictions: drop --pred (or drop --model to score --pred)")
        from ..batch import check_device_precision
        from ..registry import resolve

        check_device_precision(device)
        from ..batch import executors

        ex = executors.make(executor, ray_address, device=device, quiet=quiet)
        job = modes.model_job(model, model_options(resolve(model)[0], option), images=_p(images), gt=_p(gt),
                              trimap=_p(trimap), plates=_p(bg), save_pred=_p(save_pred), weights=_p(weights),
                              device=device, runtime=runtime, whole_image=whole_image, trimap_radius=trimap_radius,
                              composition=(_p(foreground), _p(alpha), _p(backgrounds), per_fg) if comp else None,
                              unknown_values=unknown_values, executor=ex)
    else:
        if pred is None or gt is None:
            raise UsageError("give --pred DIR --gt DIR [--trimap DIR], or --model NAME --images DIR --gt DIR, "
                             "or --model NAME --foreground DIR --alpha DIR --backgrounds DIR, or --video --pred "
                             "PATH --gt PATH")
        if images is not None or bg is not None or save_pred is not None:
            raise UsageError("--images/--bg/--save-pred need --model NAME")
        job = modes.folder_job(_p(pred), _p(gt), _p(trimap), whole_image, unknown_values=unknown_values)

    # per-item errors are printed by the batch runner as they happen, even with -q (which hides the table only)
    rows, errors, code = modes.run_job(job, jobs, quiet, executor=ex)
    rep = rp.build(rows, errors, job.keys, job.mode, row_key=job.row_key, jobs=jobs,
                   seconds_total=time.perf_counter() - t_start, **job.extra)
    if code not in (0, 1):
        rep["interrupted"] = True
    bad = rp.exceeded(rep["mean"], bounds)
    if bounds:
        rep["fail_above"] = bounds
        rep["exceeded"] = bad
    if not quiet:
        rp.print_table(rep, sys.stderr)
    elif rp.left_out_note(rep):
        warn_line(rp.left_out_note(rep))
    if file_fmt is not None:
        try:
            rp.write_text(rp.to_json(rep) if file_fmt == "json" else rp.to_csv(rep), os.fspath(report))
        except (OSError, MatteError) as e:
            why = getattr(e, "strerror", None) or str(e)
            raise UsageError(f"--report {report}: cannot write the report ({why}); choose another path") from None
    if fmt is not None:
        rp.write_text(rp.to_json(rep) if fmt == "json" else rp.to_csv(rep), None)
    for b in bad:
        print(f"mattecli: error: --fail-above: {b}", file=sys.stderr)
    if errors:
        print(f"mattecli: error: {len(errors)} of {len(errors) + len(rows)} item(s) could not be scored",
              file=sys.stderr)
    if not rows and not errors:
        warn_line("nothing was scored")
    if code not in (0, 1):
        raise typer.Exit(code)
    if errors or bad or code:
        raise typer.Exit(1)
