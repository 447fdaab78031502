"""``mattecli matte``: alpha mattes (and foreground, RGBA cut-outs, composites) for a batch of images."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ._common import handle_errors, model_options

OUTPUT_TYPES = ("alpha", "foreground", "rgba", "composite")
FG_CHOICES = ("auto", "ml", "cf", "none", "model")


def parse_types(text: str) -> list[str]:
    from ..errors import UsageError

    types = [t.strip().lower() for t in text.replace("+", ",").split(",") if t.strip()]
    alias = {"fg": "foreground", "fgr": "foreground", "pha": "alpha", "matte": "alpha", "comp": "composite",
             "cutout": "rgba"}
    types = [alias.get(t, t) for t in types]
    bad = [t for t in types if t not in OUTPUT_TYPES]
    if bad or not types:
        raise UsageError(f"--output-type {text!r}: use one or more of {', '.join(OUTPUT_TYPES)} separated by commas")
    return list(dict.fromkeys(types))


def register(app: typer.Typer) -> None:
    @app.command("matte", no_args_is_help=True)
    @handle_errors
    def matte(
        inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or glob patterns.", show_default=False),
        output: str = typer.Option(..., "-o", "--output", help="Output folder, a template containing {stem}/{relpath}, or one file for one input and one output type."),
        model: str = typer.Option("auto", "-m", "--model", help="Registry model (see `mattecli models list`) or 'auto': best model with cached weights for the inputs given."),
        trimap: Optional[str] = typer.Option(None, "-t", "--trimap", help="Trimap file (used for every input) or folder, paired by file stem (img.png <-> img.png / img_trimap.png)."),
        bg: Optional[str] = typer.Option(None, "--bg", help="Clean background plate file or folder, paired by file stem (img.png <-> img_back.png), for background-matting models."),
        weights: Optional[str] = typer.Option(None, "--weights", help="Weights file to use instead of the cache (official checkpoint or converted)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps."),
        precision: str = typer.Option("auto", "--precision", help="auto, fp32, fp16, bf16 (as the model allows)."),
        option: Optional[List[str]] = typer.Option(None, "--option", help="Model option KEY=VALUE (official option names; see `mattecli models info`). Repeatable."),
        foreground: str = typer.Option("auto", "--foreground", help="Foreground colours for foreground/rgba/composite: auto (the model's own if it predicts one, else ml), ml, cf (pymatting estimation), model, none (the input colours)."),
        output_type: str = typer.Option("alpha", "--output-type", "-T", help="Comma-separated: alpha, foreground, rgba, composite."),
        premultiplied: bool = typer.Option(False, "--premultiplied", help="RGBA outputs premultiplied (RGB = alpha*F) instead of straight (RGB = F). Recorded in the PNG text chunk 'alpha-mode'."),
        composite_bg: str = typer.Option("white", "--composite-bg", help="Background for --output-type composite: a colour (#RRGGBB, R,G,B, name) or an image file (fit: cover)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="png (default), tif or jpg; with -o FILE the file's extension decides (jpg only for foreground/composite)."),
        bits: int = typer.Option(8, "--bits", help="8 or 16 bits per channel (png/tif)."),
        template: str = typer.Option("{relpath}_{type}.{ext}", "--template", help="Output names under -o DIR. Fields: {stem} {relpath} {name} {model} {type} {ext}."),
        tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: the model's own (FBA: flips and scales as in the paper) where it has one, else the average with the horizontally flipped prediction."),
        align: bool = typer.Option(False, "--align", help="Background models: align the plate to a hand-held shot (feature matching + homography); a failed match warns and uses the plate as is."),
        skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose outputs all exist and decode."),
        fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing input (default: keep going, exit 1 at the end)."),
        report: Optional[str] = typer.Option(None, "--report", help="Write a per-input report: run.json or run.csv."),
        json_out: bool = typer.Option(False, "--json", help="Print the run report as JSON on stdout (instead of the output paths)."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors on stderr."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Per-file details and tracebacks on stderr."),
    ) -> None:
        """Pull alpha mattes from images.

        Examples:

        \b
          mattecli matte examples/data/hair.png --trimap examples/data/hair_trimap.png -o out/ --output-type alpha,rgba
          mattecli matte photos/ --trimap trimaps/ -o out/ --model closed-form --report run.csv

        RGBA outputs are straight (unassociated) alpha unless --premultiplied; the PNG records which in its 'alpha-mode' text chunk. Exit status: 0 all done, 1 some inputs failed (or the --report could not be written), 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both still write the report.
        """
        from ..errors import UsageError
        from .. import batch

        types = parse_types(output_type)
        if foreground not in FG_CHOICES:
            raise UsageError(f"--foreground {foreground!r}: use one of {', '.join(FG_CHOICES)}")
        fmt_l = (fmt or "png").lower().lstrip(".")
        if fmt_l not in ("png", "tif", "tiff", "jpg", "jpeg"):
            raise UsageError(f"--format {fmt!r}: use png, tif or jpg")
        if fmt_l in ("jpg", "jpeg") and set(types) & {"alpha", "rgba"}:
            raise UsageError("--format jpg cannot hold an alpha matte or an RGBA cut-out; use --format png or tif")
        if bits not in (8, 16):
            raise UsageError("--bits must be 8 or 16")
        batch.check_device_precision(device, precision)

        batch.check_report(report)
        excl = batch.output_excludes(output)
        items = batch.expand_inputs(inputs, exclude=excl)

        from ..registry import resolve

        if model.strip().lower() == "auto":
            from ..choose import pick_auto

            name, why = pick_auto(trimap is not None, bg is not None)
            if not quiet:
                print(f"mattecli: --model auto: using {name} ({why})", file=sys.stderr)
        else:
            name = model
        entry, _ = resolve(name)
        if entry.kind != "matting":
            raise UsageError(f"model {entry.name} is a {entry.kind}, not a matting model; use it with `mattecli trimap --segmenter {entry.name}`")
        if "trimap" in entry.requires and trimap is None:
            raise UsageError(f"model {entry.name} needs a trimap: pass --trimap FILE|DIR (make one with `mattecli trimap`)")
        if "background" in entry.requires and bg is None:
            raise UsageError(f"model {entry.name} needs a clean background plate: pass --bg FILE|DIR")
        if weights is not None and not entry.weights:
            raise UsageError(f"model {entry.name} takes no weights; drop --weights")
        if foreground == "model" and "foreground" not in entry.outputs:
            raise UsageError(f"--foreground model: {entry.name} does not predict a foreground; use ml or cf")
        if trimap is not None and "trimap" not in entry.requires | entry.optional and not quiet:
            print(f"mattecli: warning: {entry.name} does not use a trimap; --trimap is ignored", file=sys.stderr)
        if bg is not None and "background" not in entry.requires | entry.optional and not quiet:
            print(f"mattecli: warning: {entry.name} does not use a background plate; --bg is ignored", file=sys.stderr)
        extra = {}
        if tta and "tta" in entry.options:
            extra["tta"] = True      # the model's own test-time augmentation
            tta = False
        if align:
            if "align" not in entry.options:
                raise UsageError(f"--align: model {entry.name} takes no background plate to align")
            extra["align"] = True
        opts = model_options(entry, option, **extra)

        ext = {"jpeg": "jpg", "tiff": "tif"}.get(fmt_l, fmt_l)
        model_label = entry.name if name == entry.name else name
        batch.drop_run_outputs(items, output, template=template, ext=ext, types=types, model=model_label)
        batch.drop_partner_inputs(items, {"trimap": trimap, "bg": bg})
        batch.pair(items, trimap, "trimap", flag="--trimap", exclude=excl)
        batch.pair(items, bg, "bg", flag="--bg", exclude=excl)
        if not items:
            raise UsageError("no inputs left after removing the trimap/plate files")

        comp_colour = comp_image = None
        if "composite" in types:
            from ..imaging.composite import parse_colour

            if Path(composite_bg).is_file():
                from ..imaging.io import read_rgb, to_float

                comp_image = to_float(read_rgb(composite_bg))
            else:
                comp_colour = parse_colour(composite_bg)

        plan = batch.OutputPlan(output, template=template, ext=ext,
                                 single_file_ok=len(items) == 1 and len(types) == 1)
        planned = {id(it): [plan.path(it, type=t, model=model_label) for t in types] for it in items}
        batch.check_single_file(plan, fmt, types)
        batch.check_plan(items, [p for ps in planned.values() for p in ps], plan=plan, types=types,
                          model=model_label)

        import mattecli

        backend = mattecli.load_model(name, weights=weights, device=device, precision=precision, **opts)
        runner = batch.BatchRunner(verb="matte", model=model_label,
                                    weights_sha256=getattr(backend, "weights_sha256", None), fail_fast=fail_fast,
                                    skip_existing=skip_existing, report=report, json_out=json_out, quiet=quiet,
                                    verbose=verbose)
        meta_base = {"Software": f"mattecli {mattecli.__version__}", "mattecli-model": model_label}

        def process(it: batch.Item):
            return matte_one(it, backend, entry, types, planned[id(it)], foreground=foreground,
                             premultiplied=premultiplied, comp_colour=comp_colour, comp_image=comp_image,
                             bits=bits, tta=tta, meta=meta_base)

        code = runner.run(items, process, planned=lambda it: planned[id(it)])
        raise typer.Exit(code)


def _predict(backend, image, tri, plate, tta: bool):
    import numpy as np

    backend.reset()
    r = backend.predict(image, trimap=tri, background=plate)
    if not tta:
        return r
    flip = lambda a: None if a is None else np.ascontiguousarray(a[:, ::-1])  # noqa: E731
    backend.reset()
    r2 = backend.predict(flip(image), trimap=flip(tri), background=flip(plate))
    r.alpha = ((r.alpha + r2.alpha[:, ::-1]) * 0.5).astype(np.float32)
    if r.foreground is not None and r2.foreground is not None:
        r.foreground = ((r.foreground + r2.foreground[:, ::-1]) * 0.5).astype(np.float32)
    return r


def matte_one(it, backend, entry, types, outs, *, foreground="auto", premultiplied=False, comp_colour=None,
              comp_image=None, bits=8, tta=False, meta=None) -> dict:
    """Matte one input and write its outputs (one path per type, in ``types`` order). Returns report fields."""
    import numpy as np

    from ..errors import InputError
    from ..imaging import composite as C
    from ..imaging.foreground import estimate_foreground
    from ..imaging.io import read_rgb, to_float, write_image
    from ..imaging.trimap import read_trimap

    image = read_rgb(it.path)
    H, W = image.shape[:2]
    tri = None
    if "trimap" in it.partners and ("trimap" in entry.requires or "trimap" in entry.optional):
        tri = read_trimap(it.partners["trimap"], (H, W), it.path)
    plate = None
    if "bg" in it.partners and ("background" in entry.requires or "background" in entry.optional):
        plate = read_rgb(it.partners["bg"])
        if plate.shape[:2] != (H, W):
            p = it.partners["bg"]
            raise InputError(f"{p}: background plate is {plate.shape[1]}x{plate.shape[0]} but the image {it.path} "
                             f"is {W}x{H}; they must have the same size", path=p)
        if plate.dtype != image.dtype:
            plate, image = to_float(plate), to_float(image)
    r = _predict(backend, image, tri, plate, tta)
    alpha = np.clip(np.asarray(r.alpha, np.float32), 0, 1)
    if alpha.shape != (H, W):
        raise InputError(f"{it.path}: model returned a {alpha.shape[1]}x{alpha.shape[0]} alpha for a {W}x{H} image")
    fg = None
    fg_source = None
    if set(types) & {"foreground", "rgba", "composite"}:
        if foreground in ("auto", "model") and r.foreground is not None:
            fg, fg_source = np.clip(r.foreground, 0, 1).astype(np.float32), "model"
        elif foreground == "model":
            raise InputError(f"{it.path}: {entry.name} returned no foreground; use --foreground ml")
        else:
            method = "ml" if foreground == "auto" else foreground
            fg, fg_source = estimate_foreground(image, alpha, method), method
    meta = dict(meta or {})
    written = []
    for t, path in zip(types, outs):
        if t == "alpha":
            write_image(path, alpha, bits=bits, metadata=meta, what="alpha")
        elif t == "foreground":
            write_image(path, fg, bits=bits, metadata={**meta, "foreground": fg_source}, what="foreground")
        elif t == "rgba":
            mode = "premultiplied" if premultiplied else "straight"
            write_image(path, C.rgba(fg, alpha, premultiplied), bits=bits,
                        metadata={**meta, "alpha-mode": mode, "foreground": fg_source}, what="rgba")
        elif t == "composite":
            bgimg = (C.fit_background(comp_image, (H, W), "cover") if comp_image is not None
                     else np.broadcast_to(comp_colour, (H, W, 3)))
            write_image(path, C.blend(fg, alpha, bgimg), bits=bits, metadata=meta, what="composite")
        written.append(path)
    return {"outputs": written, "width": W, "height": H}
