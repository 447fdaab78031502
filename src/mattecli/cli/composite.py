"""``mattecli composite``: put a matted foreground over a colour, an image or the blurred input; RGBA cut-outs.

Only the options are declared here; the per-input work is :class:`mattecli.tasks.composite.CompositeTask` and the
batch semantics are :mod:`mattecli.batch` (outputs beside the inputs by default, never replaced silently).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import flags
from ._common import handle_errors


def _background(task, composite_bg: str | None, blur: float | None) -> str | None:
    """Fill ``task``'s background from --composite-bg / --blur; returns the folder to pair by stem, if any."""
    from ..errors import UsageError
    from ..imaging.colour import colour_or_none, neither_colour_nor_file, parse_colour

    if composite_bg is None:
        if blur is not None:
            task.background = "input"
        else:
            task.colour = parse_colour("white")
        return None
    colour = colour_or_none(composite_bg)
    if colour is not None:
        if blur is not None:
            raise UsageError(f"--blur: --composite-bg {composite_bg} is a plain colour, there is nothing to blur; "
                             "drop --blur (or give an image)")
        task.colour = colour
        return None
    p = Path(composite_bg)
    if p.is_file():
        task.background, task.image = "image", str(p)
        return None
    if p.is_dir():
        task.background = "paired"
        return composite_bg
    raise neither_colour_nor_file(composite_bg)


def register(app: typer.Typer) -> None:
    @app.command("composite", no_args_is_help=True)
    @handle_errors
    def composite(
        inputs: List[str] = flags.inputs("Original images (files, folders, globs), or - (one image on standard "
                                         "input)."),
        alpha: str = flags.alpha(default=...),
        output: Optional[str] = flags.output(
            "A folder, a template containing {stem}/{relpath}, one file for one input and one output type, or - "
            "(one PNG on standard output). Default: beside each input (photo.jpg -> photo_composite.png); inputs "
            "found in a folder go to a sibling folder (photos/ -> photos_composite/)."),
        foreground: Optional[str] = flags.foreground("Without it the foreground is estimated (--estimate)."),
        estimate: str = flags.estimate("ml", "ml (fast multi-level), cf (closed-form), none (the input colours); "
                                             "used without --foreground"),
        output_type: str = flags.output_type("composite", "composite, rgba"),
        composite_bg: Optional[str] = flags.composite_bg(
            None, "An image file serves every input, a folder is paired by file stem (img.png <-> img_bg.png); "
            "--fit says how it is fitted. Default: white, or with --blur alone the input itself."),
        blur: Optional[float] = typer.Option(None, "--blur", metavar="SIGMA", help="Blur the background (the "
                                             "--composite-bg image, or the input itself) with this Gaussian sigma "
                                             "in pixels."),
        fit: str = typer.Option("cover", "--fit", help="How a --composite-bg image fits the input: cover (fill, "
                                                       "crop), contain (fit inside, pad with --pad), stretch."),
        pad: str = typer.Option("black", "--pad", metavar="COLOUR", help="--fit contain: the padding colour."),
        premultiplied: bool = flags.premultiplied(),
        fmt: Optional[str] = flags.fmt(),
        bits: int = flags.bits(),
        template: str = flags.template("{relpath}_{type}.{ext}", "{type} is composite or rgba."),
        overwrite: bool = flags.overwrite(),
        wait: bool = flags.wait(),
        executor: Optional[str] = flags.executor(),
        ray_address: Optional[str] = flags.ray_address(),
        fail_fast: bool = flags.fail_fast(),
        report: Optional[str] = flags.report(),
        json_out: bool = flags.json_out(),
        quiet: bool = flags.quiet(),
        verbose: bool = flags.verbose(),
    ) -> None:
        """Composite I = alpha*F + (1-alpha)*B, or write RGBA cut-outs.

        The background B is --composite-bg (a colour, an image, or a folder of images paired by stem; default white), blurred with --blur SIGMA; --blur alone blurs the input itself. RGBA output is straight alpha (RGB = F) by default; --premultiplied stores alpha*F. The PNG text chunk 'alpha-mode' says which. An input whose outputs already exist is skipped; --overwrite replaces them.

        Examples:

        \b
          mattecli composite examples/data/hair.png --alpha examples/data/hair_alpha.png --composite-bg greenscreen
          mattecli composite photos/ --alpha mattes/ --composite-bg beach.jpg --fit cover -o out/
          mattecli composite photos/ --alpha mattes/ --blur 8 -T composite,rgba -o out/
          cat img.png | mattecli composite - --alpha alpha.png -o - > composite.png
        """
        from .. import batch
        from ..errors import UsageError
        from ..imaging.colour import parse_colour
        from ..imaging.composite import FITS
        from ._common import wait_policy

        wait_policy(wait)
        from ..imaging.foreground import METHODS
        from ..tasks import planned_outputs
        from ..tasks.composite import CompositeTask, parse_types

        types = parse_types(output_type)
        if "composite" not in types and (composite_bg is not None or blur is not None):
            raise UsageError("--composite-bg/--blur apply to composite outputs; add -T composite (or drop them)")
        if premultiplied and "rgba" not in types:
            raise UsageError("--premultiplied applies to rgba outputs only (-T rgba)")
        if fit not in FITS:
            raise UsageError(f"--fit {fit!r}: use one of {', '.join(FITS)}")
        if estimate not in METHODS:
            raise UsageError(f"--estimate {estimate!r}: use one of {', '.join(METHODS)}")
        if blur is not None and not blur > 0:
            raise UsageError(f"--blur {blur:g}: the sigma must be > 0 pixels")
        fmt_l = (fmt or "png").lower().lstrip(".")
        fmt_l = {"jpeg": "jpg", "tiff": "tif"}.get(fmt_l, fmt_l)
        if fmt_l not in ("png", "tif", "jpg"):
            raise UsageError(f"--format {fmt!r}: use png, tif or jpg")
        if fmt_l == "jpg" and "rgba" in types:
            raise UsageError("--format jpg cannot hold an RGBA cut-out; use png or tif")
        if bits not in (8, 16):
            raise UsageError("--bits must be 8 or 16")
        if alpha == "-" or foreground == "-":
            raise UsageError("standard input (-) is for the input image; give --alpha/--foreground a file or folder")
        task = CompositeTask(types=types, blur=blur, fit=fit, pad=parse_colour(pad, "--pad"), estimate=estimate,
                             premultiplied=premultiplied, bits=bits)
        bg_folder = _background(task, composite_bg, blur) if "composite" in types else None
        batch.check_report(report)

        excl = batch.output_excludes(output)
        items = batch.expand_inputs(inputs, exclude=excl)
        batch.drop_run_outputs(items, output, template=template, ext=fmt_l, types=types, verb="composite")
        batch.drop_partner_inputs(items, {"alpha": alpha, "foreground": foreground, "bg": bg_folder})
        batch.pair(items, alpha, "alpha", flag="--alpha", exclude=excl)
        batch.pair(items, foreground, "foreground", flag="--foreground", exclude=excl)
        batch.pair(items, bg_folder, "bg", flag="--composite-bg", exclude=excl)
        if not items:
            raise UsageError("no inputs left after removing the alpha/foreground files")
        plan = batch.OutputPlan(output, template=template, ext=fmt_l, verb="composite",
                                single_file_ok=len(items) == 1 and len(types) == 1)
        types = task.types = batch.check_stdout(plan, items, types, json_out)
        for it in items:
            it.info["outputs"] = [plan.path(it, type=t) for t in types]
        planned = [p for it in items for p in it.info["outputs"]]
        batch.check_single_file(plan, fmt, types)
        batch.check_plan(items, planned, plan=plan, types=types)
        if task.image is not None and any(Path(p).resolve() == Path(task.image).resolve() for p in planned
                                          if str(p) != "-"):
            raise UsageError(f"an output would overwrite the background image {task.image}")

        import mattecli

        task.meta = {"Software": f"mattecli {mattecli.__version__}"}
        from ..batch import executors

        ex = executors.make(executor, ray_address, device="cpu", quiet=quiet)
        if plan.is_stdout or any(it.is_stdin for it in items):
            ex = None                            # standard input / output are this process's: run it here
        runner = batch.BatchRunner(verb="composite", fail_fast=fail_fast, overwrite=overwrite, report=report,
                                   json_out=json_out, quiet=quiet, verbose=verbose)
        raise typer.Exit(runner.run(items, task, planned=planned_outputs, executor=ex))
