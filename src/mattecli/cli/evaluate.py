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
from typing import List, Optional

import typer

from ._common import handle_errors, model_options, warn_line


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        help="Score alpha mattes against ground truth (SAD, MSE, Grad, Conn as the official DIM/Composition-1k "
             "MATLAB code; dtSSD and MESSDdt for video).",
        no_args_is_help=True,
    )(eval_command)


@handle_errors
def eval_command(
    pred: Optional[Path] = typer.Option(None, "--pred", help="Folder of predicted alphas (searched recursively), named STEM.* or STEM_alpha.* as `matte` writes them (or, with --video, frames/videos)."),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Folder of ground-truth alphas STEM.* (or STEM_alpha.*, STEM_gt.*), paired with --pred/--images by file stem."),
    trimap: Optional[Path] = typer.Option(None, "--trimap", "--trimaps", help="Folder of trimaps STEM.* or STEM_trimap.* (unknown = value 128 exactly). Without it: --pred mode scores the whole image; --model modes generate trimaps from the GT."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Run this registry model first (see `mattecli models list`)."),
    images: Optional[Path] = typer.Option(None, "--images", help="--model mode: folder of input images."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds", help="--model mode: folder of clean background plates (models that need one)."),
    save_pred: Optional[Path] = typer.Option(None, "--save-pred", help="--model modes: also write each prediction as <name>.png here (sub-folders as in the inputs)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="--model modes: weights file (official checkpoint or converted)."),
    device: str = typer.Option("cpu", "--device", help="--model modes: cpu, cuda[:N] or auto."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-O", help="--model modes: official model option KEY=VALUE (repeatable)."),
    fg: Optional[Path] = typer.Option(None, "--fg", help="Composition mode: folder of foregrounds."),
    alpha: Optional[Path] = typer.Option(None, "--alpha", help="Composition mode: folder of alphas (ground truth), paired with --fg by stem."),
    bg: Optional[Path] = typer.Option(None, "--bg", help="Composition mode: folder of backgrounds."),
    per_fg: int = typer.Option(20, "--per-fg", help="Composition mode: backgrounds per foreground (Composition-1k: 20)."),
    trimap_radius: int = typer.Option(10, "--trimap-radius", help="Radius (px) of the generated trimaps' unknown band (see docs)."),
    whole_image: bool = typer.Option(False, "--whole-image", help="Score every pixel (no trimap), also in --model modes."),
    video: bool = typer.Option(False, "--video", help="Video mode: --pred/--gt are sequences; adds dtSSD and MESSDdt."),
    no_messddt: bool = typer.Option(False, "--no-messddt", help="Video mode: skip MESSDdt (needs optical flow; slower)."),
    json_out: bool = typer.Option(False, "--json", help="Write the report as JSON (stdout, or --out FILE)."),
    csv_out: bool = typer.Option(False, "--csv", help="Write the report as CSV (stdout, or --out FILE)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Write the JSON/CSV report to this file (format from --json/--csv or the suffix)."),
    fail_above: Optional[str] = typer.Option(None, "--fail-above", help="Exit 1 when a mean exceeds its bound, e.g. sad=40,mse=0.01."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes for the metrics (parallel over images)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stderr (errors are still printed)."),
) -> None:
    from ..errors import MatteError, UsageError
    from ..evaluation import modes
    from ..evaluation import report as rp

    bounds = rp.parse_fail_above(fail_above)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    fmt = rp.output_format(json_out, csv_out, out)
    comp = any(x is not None for x in (fg, alpha, bg))
    reported = ("sad", "mse", "grad", "conn") + (("dtssd",) + (() if no_messddt else ("messddt",)) if video else ())
    unreported = [k for k in bounds if k not in reported]
    if unreported:
        raise UsageError(f"--fail-above {','.join(unreported)}: not reported in this mode; use {', '.join(reported)}")
    # where the results go must be writable before anything is computed
    if fmt is not None:
        rp.check_out_file(out, "--out")
    t_start = time.perf_counter()

    if video:
        if pred is None or gt is None:
            raise UsageError("--video needs --pred PATH and --gt PATH (folders of frames or video files)")
        if model or comp or images:
            raise UsageError("--video scores existing predictions: drop --model/--images/--fg/--alpha/--bg")
        job = modes.video_job(pred, gt, not no_messddt)
    elif comp or model is not None:
        if comp:
            if None in (fg, alpha, bg):
                raise UsageError("composition mode needs all of --fg DIR --alpha DIR --bg DIR")
            if model is None:
                raise UsageError("composition mode runs a model on the composites: add --model NAME")
            if pred is not None or images is not None or gt is not None:
                raise UsageError("composition mode takes its ground truth from --alpha: drop --pred/--images/--gt")
        else:
            if images is None or gt is None:
                raise UsageError("--model needs --images DIR and --gt DIR (or --fg/--alpha/--bg for composition mode)")
            if pred is not None:
                raise UsageError("--model makes the predictions: drop --pred (or drop --model to score --pred)")
        from ..batch import check_device_precision
        from ..registry import resolve

        check_device_precision(device)
        job = modes.model_job(model, model_options(resolve(model)[0], option), images=images, gt=gt, trimap=trimap,
                              backgrounds=backgrounds, save_pred=save_pred, weights=weights, device=device,
                              whole_image=whole_image, trimap_radius=trimap_radius,
                              composition=(fg, alpha, bg, per_fg) if comp else None)
    else:
        if pred is None or gt is None:
            raise UsageError("give --pred DIR --gt DIR [--trimap DIR], or --model NAME --images DIR --gt DIR, "
                             "or --model NAME --fg DIR --alpha DIR --bg DIR, or --video --pred PATH --gt PATH")
        if images is not None or backgrounds is not None or save_pred is not None:
            raise UsageError("--images/--backgrounds/--save-pred need --model NAME")
        job = modes.folder_job(pred, gt, trimap, whole_image)

    # per-item errors are printed by the batch runner as they happen, even with -q (which hides the table only)
    rows, errors, code = modes.run_job(job, jobs, quiet)
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
    if fmt is not None:
        text = rp.to_json(rep) if fmt == "json" else rp.to_csv(rep)
        try:
            rp.write_text(text, None if out is None else os.fspath(out))
        except (OSError, MatteError) as e:
            why = getattr(e, "strerror", None) or str(e)
            raise UsageError(f"--out {out}: cannot write the report ({why}); choose another path") from None
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
