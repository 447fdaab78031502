"""``mattecli composite``: put a matted foreground onto a colour, an image or a blurred original; RGBA cut-outs."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import handle_errors


def register(app: typer.Typer) -> None:
    @app.command("composite", no_args_is_help=True)
    @handle_errors
    def composite(
        inputs: List[str] = typer.Argument(..., help="Original images (files, folders, globs).", show_default=False),
        alpha: str = typer.Option(..., "--alpha", "-a", help="Alpha matte file or folder, paired by stem (img.png <-> img.png / img_alpha.png)."),
        output: str = typer.Option(..., "-o", "--output", help="Output folder, a template containing {stem}/{relpath}, or one file for one input."),
        foreground: Optional[str] = typer.Option(None, "--foreground", "-f", help="Foreground colour file or folder (paired by stem: img_foreground.png / img_fg.png). Without it the foreground is estimated (--estimate)."),
        estimate: str = typer.Option("ml", "--estimate", help="Foreground estimation when no --foreground is given: ml, cf (pymatting) or none (the original colours)."),
        bg_color: Optional[str] = typer.Option(None, "--bg-color", "--bg-colour", help="Composite onto a colour: #RRGGBB, R,G,B or a name (white, black, greenscreen...)."),
        bg_image: Optional[str] = typer.Option(None, "--bg-image", help="Composite onto an image (one file for all, or a folder paired by stem)."),
        fit: str = typer.Option("cover", "--fit", help="--bg-image fit: cover (fill, crop), contain (fit inside, pad with --bg-color or black), stretch."),
        bg_blur: Optional[float] = typer.Option(None, "--bg-blur", help="Composite onto the original blurred with this Gaussian sigma (pixels)."),
        rgba_out: bool = typer.Option(False, "--rgba", help="Write an RGBA cut-out instead of a composite."),
        premultiplied: bool = typer.Option(False, "--premultiplied", help="With --rgba: premultiplied RGB (alpha*F) instead of straight (F). Stated in the PNG text chunk 'alpha-mode'."),
        fmt: Optional[str] = typer.Option(None, "--format", help="png (default), tif or jpg; with -o FILE the file's extension decides (jpg not for --rgba)."),
        bits: int = typer.Option(8, "--bits", help="8 or 16 bits per channel (png/tif)."),
        template: str = typer.Option("{relpath}_{type}.{ext}", "--template", help="Output names under -o DIR. Fields: {stem} {relpath} {name} {model} {type} {ext}; type is composite or rgba."),
        skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists and decodes."),
        fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing input."),
        report: Optional[str] = typer.Option(None, "--report", help="Per-input report: run.json or run.csv."),
        json_out: bool = typer.Option(False, "--json", help="Print the run report as JSON on stdout."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors on stderr."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Per-file details on stderr."),
    ) -> None:
        """Composite I = alpha*F + (1-alpha)*B, or write RGBA cut-outs.

        Exactly one of --bg-color, --bg-image, --bg-blur or --rgba (with --bg-image --fit contain, --bg-color is the padding colour). RGBA output is straight alpha (RGB = F) by default; --premultiplied stores alpha*F. The PNG text chunk 'alpha-mode' says which.

        Examples:

        \b
          mattecli composite examples/data/hair.png --alpha examples/data/hair_alpha.png --bg-color greenscreen -o out/
          mattecli composite photos/ --alpha mattes/ --bg-image beach.jpg --fit cover -o out/
          mattecli composite photos/ --alpha mattes/ --rgba -o cutouts/
        """
        from ..errors import UsageError
        from ..imaging.colour import parse_colour
        from ..imaging.composite import FITS
        from ..imaging.foreground import METHODS
        from .. import batch

        modes = [m for m, on in (("--bg-image", bg_image), ("--bg-blur", bg_blur is not None), ("--rgba", rgba_out)) if on]
        if bg_color and not modes:
            modes = ["--bg-color"]
        if len(modes) != 1:
            raise UsageError("give exactly one of --bg-color COLOUR, --bg-image FILE|DIR, --bg-blur SIGMA or --rgba")
        mode = modes[0]
        if bg_color and mode not in ("--bg-color", "--bg-image"):
            raise UsageError(f"--bg-color cannot be combined with {mode}")
        if premultiplied and mode != "--rgba":
            raise UsageError("--premultiplied applies to --rgba output only")
        if fit not in FITS:
            raise UsageError(f"--fit {fit!r}: use one of {', '.join(FITS)}")
        if estimate not in METHODS:
            raise UsageError(f"--estimate {estimate!r}: use one of {', '.join(METHODS)}")
        if bg_blur is not None and bg_blur <= 0:
            raise UsageError("--bg-blur: the sigma must be > 0 pixels")
        fmt_l = (fmt or "png").lower().lstrip(".")
        fmt_l = {"jpeg": "jpg", "tiff": "tif"}.get(fmt_l, fmt_l)
        if fmt_l not in ("png", "tif", "jpg"):
            raise UsageError(f"--format {fmt!r}: use png, tif or jpg")
        if fmt_l == "jpg" and rgba_out:
            raise UsageError("--format jpg cannot hold an RGBA cut-out; use png or tif")
        if bits not in (8, 16):
            raise UsageError("--bits must be 8 or 16")
        colour = parse_colour(bg_color) if bg_color else None

        batch.check_report(report)
        otype = "rgba" if rgba_out else "composite"
        excl = batch.output_excludes(output)
        items = batch.expand_inputs(inputs, exclude=excl)
        batch.drop_run_outputs(items, output, template=template, ext=fmt_l, types=[otype])
        batch.drop_partner_inputs(items, {"alpha": alpha, "foreground": foreground, "bg": bg_image})
        batch.pair(items, alpha, "alpha", flag="--alpha", exclude=excl)
        batch.pair(items, foreground, "foreground", flag="--foreground", exclude=excl)
        bg_single = None
        if bg_image:
            if Path(bg_image).is_file():
                bg_single = Path(bg_image)
            else:
                batch.pair(items, bg_image, "bg", flag="--bg-image", exclude=excl)
        if not items:
            raise UsageError("no inputs left after removing the alpha/foreground files")
        plan = batch.OutputPlan(output, template=template, ext=fmt_l, single_file_ok=len(items) == 1)
        planned = {id(it): plan.path(it, type=otype) for it in items}
        batch.check_single_file(plan, fmt, [otype])
        batch.check_plan(items, list(planned.values()), plan=plan, types=[otype])
        if bg_single is not None and any(Path(p).resolve() == bg_single.resolve() for p in planned.values()):
            raise UsageError(f"an output would overwrite the background image {bg_single}")
        runner = batch.BatchRunner(verb="composite", fail_fast=fail_fast, skip_existing=skip_existing,
                                    report=report, json_out=json_out, quiet=quiet, verbose=verbose)
        cache: dict = {}

        def process(it):
            import numpy as np

            from ..errors import InputError
            from ..imaging import composite as C
            from ..imaging.foreground import estimate_foreground
            from ..imaging.arrays import to_float
            from ..imaging.io import read_grey, read_rgb, write_image

            image = read_rgb(it.path)
            H, W = image.shape[:2]
            a = read_grey(it.partners["alpha"])
            if a.shape != (H, W):
                p = it.partners["alpha"]
                raise InputError(f"{p}: alpha is {a.shape[1]}x{a.shape[0]} but the image {it.path} is {W}x{H}", path=p)
            if "foreground" in it.partners:
                fg = to_float(read_rgb(it.partners["foreground"]))
                if fg.shape[:2] != (H, W):
                    p = it.partners["foreground"]
                    raise InputError(f"{p}: foreground is {fg.shape[1]}x{fg.shape[0]} but the image is {W}x{H}", path=p)
                fg_src = "file"
            else:
                fg, fg_src = estimate_foreground(image, a, estimate), estimate
            meta = {"Software": "mattecli", "foreground": fg_src}
            out = planned[id(it)]
            if mode == "--rgba":
                meta["alpha-mode"] = "premultiplied" if premultiplied else "straight"
                write_image(out, C.rgba(fg, a, premultiplied), bits=bits, metadata=meta, what="rgba")
                return {"outputs": [out], "width": W, "height": H}
            if mode == "--bg-color":
                bg = np.broadcast_to(colour, (H, W, 3))
            elif mode == "--bg-blur":
                bg = C.blurred(to_float(image), float(bg_blur))
            else:
                src = bg_single or it.partners["bg"]
                key = str(src)
                if key not in cache:
                    cache.clear()
                    cache[key] = to_float(read_rgb(src))
                bg = C.fit_background(cache[key], (H, W), fit, fill=colour)
            write_image(out, C.blend(fg, a, bg), bits=bits, metadata=meta, what="composite")
            return {"outputs": [out], "width": W, "height": H}

        code = runner.run(items, process, planned=lambda it: [planned[id(it)]])
        raise typer.Exit(code)
