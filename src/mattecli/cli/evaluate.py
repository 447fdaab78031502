"""``mattecli eval``: SAD, MSE, Grad, Conn exactly as the official Composition-1k (DIM) MATLAB code; dtSSD/MESSDdt.

Modes (one per run):

- folders:     ``--pred DIR --gt DIR [--trimap DIR]``               (no trimap: whole-image metrics)
- model:       ``--model NAME --images DIR --gt DIR [--trimaps DIR] [--backgrounds DIR] [--save-pred DIR]``
- composition: ``--model NAME --fg DIR --alpha DIR --bg DIR [--per-fg N]``   (Composition-1k style, on the fly)
- video:       ``--video --pred PATH --gt PATH``   (folders of frames, video files, or folders of either)

No torch or backend import at module level (``mattecli --help`` stays light).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from ._common import error_line, handle_errors, model_options, warn_line


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        help="Score alpha mattes against ground truth (SAD, MSE, Grad, Conn as the official DIM/Composition-1k "
             "MATLAB code; dtSSD and MESSDdt for video).",
        no_args_is_help=True,
    )(eval_command)


@handle_errors
def eval_command(
    pred: Optional[Path] = typer.Option(None, "--pred", help="Folder of predicted alphas, named STEM.* or STEM_alpha.* as `matte` writes them (or, with --video, frames/videos)."),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Folder of ground-truth alphas STEM.* (or STEM_alpha.*, STEM_gt.*), paired with --pred/--images by file stem."),
    trimap: Optional[Path] = typer.Option(None, "--trimap", "--trimaps", help="Folder of trimaps STEM.* or STEM_trimap.* (unknown = value 128 exactly). Without it: --pred mode scores the whole image; --model modes generate trimaps from the GT."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Run this registry model first (see `mattecli models list`)."),
    images: Optional[Path] = typer.Option(None, "--images", help="--model mode: folder of input images."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds", help="--model mode: folder of clean background plates (models that need one)."),
    save_pred: Optional[Path] = typer.Option(None, "--save-pred", help="--model modes: also write each prediction as <name>.png here."),
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
    from ..evaluation import report as rp

    bounds = rp.parse_fail_above(fail_above)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    fmt = _output_format(json_out, csv_out, out)
    comp = any(x is not None for x in (fg, alpha, bg))
    reported = ("sad", "mse", "grad", "conn") + (("dtssd",) + (() if no_messddt else ("messddt",)) if video else ())
    unreported = [k for k in bounds if k not in reported]
    if unreported:
        raise UsageError(f"--fail-above {','.join(unreported)}: not reported in this mode; use {', '.join(reported)}")
    # where the results go must be writable before anything is computed
    if fmt is not None:
        check_out_file(out, "--out")
    t_start = time.perf_counter()

    if video:
        if pred is None or gt is None:
            raise UsageError("--video needs --pred PATH and --gt PATH (folders of frames or video files)")
        if model or comp or images:
            raise UsageError("--video scores existing predictions: drop --model/--images/--fg/--alpha/--bg")
        rows, errors, mode, keys, extra = _video_mode(pred, gt, not no_messddt, jobs)
        row_key = "sequences"
    elif comp:
        if None in (fg, alpha, bg):
            raise UsageError("composition mode needs all of --fg DIR --alpha DIR --bg DIR")
        if model is None:
            raise UsageError("composition mode runs a model on the composites: add --model NAME")
        if pred is not None or images is not None or gt is not None:
            raise UsageError("composition mode takes its ground truth from --alpha: drop --pred/--images/--gt")
        rows, errors, mode, keys, extra = _model_mode(
            model, None, alpha, trimap, None, save_pred, weights, device, option, jobs, whole_image,
            trimap_radius, composition=(fg, alpha, bg, per_fg))
        row_key = "images"
    elif model is not None:
        if images is None or gt is None:
            raise UsageError("--model needs --images DIR and --gt DIR (or --fg/--alpha/--bg for composition mode)")
        if pred is not None:
            raise UsageError("--model makes the predictions: drop --pred (or drop --model to score --pred)")
        rows, errors, mode, keys, extra = _model_mode(
            model, images, gt, trimap, backgrounds, save_pred, weights, device, option, jobs, whole_image,
            trimap_radius)
        row_key = "images"
    else:
        if pred is None or gt is None:
            raise UsageError("give --pred DIR --gt DIR [--trimap DIR], or --model NAME --images DIR --gt DIR, "
                             "or --model NAME --fg DIR --alpha DIR --bg DIR, or --video --pred PATH --gt PATH")
        if images is not None or backgrounds is not None or save_pred is not None:
            raise UsageError("--images/--backgrounds/--save-pred need --model NAME")
        rows, errors, mode, keys, extra = _folder_mode(pred, gt, trimap, jobs, whole_image)
        row_key = "images"

    rep = rp.build(rows, errors, keys, mode, row_key=row_key, jobs=jobs,
                   seconds_total=time.perf_counter() - t_start, **extra)
    bad = rp.exceeded(rep["mean"], bounds)
    if bounds:
        rep["fail_above"] = bounds
        rep["exceeded"] = bad
    if not quiet:
        rp.print_table(rep, sys.stderr)
    # per-item errors are errors: printed even with -q (which hides the table only)
    for e in errors:
        error_line(e["error"])
    if fmt is not None:
        text = rp.to_json(rep) if fmt == "json" else rp.to_csv(rep)
        try:
            rp.write_text(text, _out_path(out))
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
    if errors or bad:
        raise typer.Exit(1)


def _out_path(out):
    return None if out is None else os.fspath(out)


def _probe(folder: str, flag: str, target) -> None:
    """Raise UsageError unless files can be created in ``folder`` (or, if it does not exist yet, in the nearest
    existing folder above it, where it will be created). Leaves nothing behind."""
    import tempfile

    from ..errors import UsageError

    anc = folder
    while not os.path.exists(anc):
        parent = os.path.dirname(anc)
        if parent == anc:
            break
        anc = parent
    if not os.path.isdir(anc):
        raise UsageError(f"{flag} {target}: {anc} is not a folder; choose another path")
    try:
        if anc == folder:
            fd, tmp = tempfile.mkstemp(prefix=".mattecli-probe-", dir=folder)
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".mattecli-probe-", dir=anc))
    except OSError as e:
        raise UsageError(f"{flag} {target}: cannot write in {anc} ({e.strerror or e}); choose another path") from None


def check_out_file(out, flag: str = "--out") -> None:
    """``--out FILE``: a regular file (new or existing) in a writable folder; ``-`` or None is stdout."""
    from ..errors import UsageError

    if out is None or os.fspath(out) == "-":
        return
    p = os.fspath(out)
    if os.path.isdir(p) or p.endswith(("/", os.sep)):
        raise UsageError(f"{flag} {p}: is a folder; give a file name, e.g. {os.path.join(p, 'scores.json')}")
    if os.path.lexists(p) and not os.path.isfile(p):
        raise UsageError(f"{flag} {p}: exists and is not a regular file; give a file name (or - for stdout)")
    _probe(os.path.dirname(os.path.abspath(p)), flag, p)


def check_out_folder(folder, flag: str) -> None:
    from ..errors import UsageError

    p = os.fspath(folder)
    if os.path.exists(p) and not os.path.isdir(p):
        raise UsageError(f"{flag} {p}: exists and is not a folder; give a folder")
    _probe(os.path.abspath(p), flag, p)


def _output_format(json_out: bool, csv_out: bool, out) -> str | None:
    from ..errors import UsageError

    if json_out and csv_out:
        raise UsageError("--json and --csv are exclusive; run twice or pick one")
    if json_out:
        return "json"
    if csv_out:
        return "csv"
    if out is not None:
        suf = Path(out).suffix.lower()
        if suf in (".json", ".csv"):
            return suf[1:]
        raise UsageError(f"--out {out}: add --json or --csv (or name the file .json/.csv)")
    return None


def _split(results):
    rows, errors = [], []
    for r in results:
        if "error" in r:
            errors.append({"name": r["name"], "error": r["error"]})
        else:
            rows.append(r)
    return rows, errors


# -- modes --------------------------------------------------------------------------------------------------------

def _folder_mode(pred, gt, trimap, jobs, whole_image):
    from ..evaluation import runner
    from ..evaluation.datasets import pair_folders
    from ..evaluation.metrics import METRICS

    items = pair_folders(pred, gt, None if whole_image else trimap)
    pre = [{"name": it.name, "error": it.error} for it in items if it.error]
    tasks = [(it.name, it.pred, it.gt, it.trimap) for it in items if not it.error]
    rows, errors = _split(list(runner.run(runner.score_files, tasks, jobs)))
    errors = [*pre, *errors]
    region = "whole image" if (trimap is None or whole_image) else "trimap == 128"
    return rows, errors, "folders", METRICS, {"region": region}


def _video_mode(pred, gt, with_messddt, jobs):
    from ..evaluation import runner
    from ..evaluation.datasets import list_sequences, natural_key
    from ..evaluation.metrics import VIDEO_METRICS

    ps = list_sequences(pred, "prediction", "--pred")
    gs = list_sequences(gt, "ground truth", "--gt")
    if len(ps) == 1 and len(gs) == 1:  # one sequence each: pair them whatever their names
        (pn, pp), (gn, gp) = next(iter(ps.items())), next(iter(gs.items()))
        tasks, errors = [(gn, pp, gp, with_messddt)], []
    else:
        tasks, errors = [], []
        for name in sorted(set(ps) | set(gs), key=natural_key):
            if name not in ps:
                errors.append({"name": name, "error": f"{gs[name]}: no predicted sequence named {name} in {pred}; "
                                                      f"add it or remove the ground truth"})
            elif name not in gs:
                errors.append({"name": name, "error": f"{ps[name]}: no ground-truth sequence named {name} in {gt}; "
                                                      f"add it or remove the prediction"})
            else:
                tasks.append((name, ps[name], gs[name], with_messddt))
    rows, errs = _split(list(runner.run(runner.score_sequence, tasks, jobs)))
    keys = VIDEO_METRICS if with_messddt else tuple(k for k in VIDEO_METRICS if k != "messddt")
    return rows, [*errors, *errs], "video", keys, {"region": "whole frame"}


def _model_mode(model, images, gt, trimap, backgrounds, save_pred, weights, device, option, jobs, whole_image,
                trimap_radius, composition=None):
    import numpy as np

    import mattecli

    from ..errors import MatteError, MissingInput, UsageError
    from ..evaluation import runner
    from ..evaluation.datasets import (TRIMAP_SUFFIXES, StemIndex, composite, fit_background_cover, list_files,
                                       pair_model_inputs, pairs_composition, read_alpha, read_rgb, read_trimap,
                                       trimap_from_alpha)
    from ..evaluation.metrics import METRICS, as_alpha_u8

    from ..registry import resolve

    options = model_options(resolve(model)[0], option)
    if save_pred is not None:
        check_out_folder(save_pred, "--save-pred")
    backend = mattecli.load_model(model, weights=None if weights is None else os.fspath(weights), device=device,
                                  **options)
    entry = backend.entry
    takes_trimap = "trimap" in entry.requires or "trimap" in entry.optional
    if composition is not None:
        fg_dir, alpha_dir, bg_dir, per_fg = composition
        items = pairs_composition(fg_dir, alpha_dir, bg_dir, per_fg)
        tris = StemIndex(list_files(trimap, "trimap", "--trimap"), "trimap", trimap) if trimap is not None else None
    else:
        items = pair_model_inputs(images, gt, trimap, backgrounds)
        tris = None
    takes_plate = "background" in entry.requires or "background" in entry.optional
    if "background" in entry.requires and backgrounds is None and composition is None:
        raise MissingInput(f"model {entry.name} needs a clean background plate per image: pass --backgrounds DIR")
    if save_pred is not None:
        try:
            os.makedirs(save_pred, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--save-pred {save_pred}: cannot create the folder ({e.strerror or e})") from None
    pre = [{"name": it.name, "error": it.error} for it in items if it.error]
    predict_seconds: dict[str, float] = {}

    def tasks():
        for it in items:
            if it.error:
                continue
            try:
                G = read_alpha(it.gt)
                if composition is not None:
                    fgim = read_rgb(it.fg)
                    if fgim.shape[:2] != G.shape:
                        yield ("err", it.name, f"{it.fg}: foreground is {fgim.shape[1]}x{fgim.shape[0]} but its "
                                               f"alpha is {G.shape[1]}x{G.shape[0]}; they must match")
                        continue
                    bgim = fit_background_cover(read_rgb(it.background), *G.shape)
                    image = composite(fgim, G, bgim)
                    plate = bgim if takes_plate else None  # the exact clean plate of the composite
                    tpath = None
                    if tris is not None:
                        tpath, err = tris.find([it.name, Path(it.fg).stem], TRIMAP_SUFFIXES, it.fg,
                                               "add it or drop --trimap")
                        if err:
                            yield ("err", it.name, err)
                            continue
                else:
                    image = read_rgb(it.image)
                    plate = read_rgb(it.background) if it.background else None
                    tpath = it.trimap
                    if image.shape[:2] != G.shape:
                        yield ("err", it.name, f"{it.image}: image is {image.shape[1]}x{image.shape[0]} but the "
                                               f"ground truth is {G.shape[1]}x{G.shape[0]}; they must match")
                        continue
                T = read_trimap(tpath) if tpath else trimap_from_alpha(G, trimap_radius)
                if T.shape != G.shape:
                    yield ("err", it.name, f"{tpath}: trimap is {T.shape[1]}x{T.shape[0]} but the ground truth is "
                                           f"{G.shape[1]}x{G.shape[0]}; use the matching trimap")
                    continue
                t0 = time.perf_counter()
                res = backend.predict(image, trimap=T if takes_trimap else None, background=plate)
                predict_seconds[it.name] = time.perf_counter() - t0
                P = as_alpha_u8(np.asarray(res.alpha, np.float32), "prediction")
                if save_pred is not None:
                    _save_png(P, os.path.join(os.fspath(save_pred), f"{it.name}.png"))
            except MatteError as e:
                yield ("err", it.name, _with_file(str(e), it.image or it.fg))
                continue
            except Exception as e:  # a model or library failure on this item: report it, keep going
                first = (str(e).strip().splitlines() or [""])[0]
                yield ("err", it.name, _with_file(f"{type(e).__name__}: {first}" if first else type(e).__name__,
                                                  it.image or it.fg))
                continue
            yield (it.name, P, G, None if whole_image else T, it.image or it.fg)

    # predictions run in this process (one model); the metrics run in the pool as predictions arrive
    early: list[dict] = []
    results = list(runner.run(runner.score_array_task, _collect_errors(tasks(), early), jobs)) + early
    order = {it.name: i for i, it in enumerate(items)}
    results.sort(key=lambda r: order.get(r["name"], 0))
    rows, errors = _split(results)
    for r in rows:
        r["predict_seconds"] = predict_seconds.get(r["name"])
    mode = "composition" if composition is not None else "model"
    extra = {"model": entry.name, "region": "whole image" if whole_image else
             ("trimap == 128" if trimap is not None else f"trimap == 128 (generated, radius {trimap_radius})")}
    if composition is not None:
        extra["per_fg"] = composition[3]
    if getattr(backend, "weights_sha256", None):
        extra["weights_sha256"] = backend.weights_sha256
    return rows, [*pre, *errors], mode, METRICS, extra


def _with_file(msg: str, path) -> str:
    """``FILE: reason``, as the other verbs print per-item errors."""
    p = os.fspath(path) if path else ""
    return msg if not p or p in msg else f"{p}: {msg}"


def _collect_errors(gen, sink):
    for t in gen:
        if t[0] == "err":
            sink.append({"name": t[1], "error": t[2]})
        else:
            yield t


def _save_png(P, path: str) -> None:
    import cv2

    from ..errors import InputError
    from ..imaging.io import atomic_write_bytes

    ok, buf = cv2.imencode(".png", P)
    if not ok:
        raise InputError(f"{path}: could not encode the prediction as PNG")
    atomic_write_bytes(path, buf.tobytes())