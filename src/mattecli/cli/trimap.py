"""``mattecli trimap``: trimaps (0 / 128 / 255 PNGs) from coarse masks, alpha mattes or a segmenter."""
from __future__ import annotations

from typing import List, Optional

import typer

from ._common import handle_errors, model_options


def _select_classes(entry, wanted: list[str] | None) -> list[int]:
    from ..errors import UsageError

    names = [c.lower() for c in entry.classes]
    if not wanted:
        default = entry.options.get("classes") if entry.options else None
        wanted = list(default) if default else (["person"] if "person" in names else [])
        if not wanted:
            raise UsageError(f"--segmenter {entry.name}: pass --classes (e.g. {', '.join(entry.classes[:3])})")
    out = []
    for w in wanted:
        w = w.strip().lower()
        if w.isdigit() and int(w) < len(names):
            out.append(int(w))
        elif w in names:
            out.append(names.index(w))
        else:
            raise UsageError(f"--classes {w!r}: not a class of {entry.name}; see `mattecli models info {entry.name}`")
    return out


def register(app: typer.Typer) -> None:
    @app.command("trimap", no_args_is_help=True)
    @handle_errors
    def trimap(
        inputs: Optional[List[str]] = typer.Argument(None, help="Images (files, folders, globs). May be omitted with --mask/--from-alpha: the mask/alpha files are then the inputs.", show_default=False),
        output: str = typer.Option(..., "-o", "--output", help="Output folder, a template containing {stem}/{relpath}, or one .png for one input."),
        mask: Optional[str] = typer.Option(None, "--mask", help="Coarse mask file or folder (binary or soft; paired by stem: img.png <-> img.png / img_mask.png). Binarised at --threshold."),
        from_alpha: Optional[str] = typer.Option(None, "--from-alpha", help="Alpha matte file or folder (paired by stem: img_alpha.png). alpha <= --lo is background, >= --hi foreground, between unknown."),
        segmenter: Optional[str] = typer.Option(None, "--segmenter", help="Registry segmenter (e.g. bisenetv2) or trimap-free matting model whose output is thresholded."),
        classes: Optional[str] = typer.Option(None, "--classes", help="Segmenter classes counted as foreground, comma-separated names or indices (default: the model's default, usually person)."),
        band: Optional[str] = typer.Option(None, "--band", help="Unknown band radius on each side of the edge: pixels (10), percent of the image diagonal (1.5%) or a fraction of it (0.015). Default 10 for masks/segmenters, 0 with --from-alpha unless given."),
        kernel: str = typer.Option("ellipse", "--kernel", help="Structuring element: ellipse, rect or cross."),
        threshold: float = typer.Option(0.5, "--threshold", help="--mask: values >= threshold are foreground."),
        lo: float = typer.Option(0.06, "--lo", help="--from-alpha / matting --segmenter: alpha <= lo is background."),
        hi: float = typer.Option(0.96, "--hi", help="--from-alpha / matting --segmenter: alpha >= hi is foreground."),
        device: str = typer.Option("auto", "--device", help="--segmenter: auto, cpu, cuda."),
        weights: Optional[str] = typer.Option(None, "--weights", help="--segmenter: weights file instead of the cache."),
        option: Optional[List[str]] = typer.Option(None, "--option", help="--segmenter model option KEY=VALUE (repeatable)."),
        template: str = typer.Option("{relpath}_trimap.{ext}", "--template", help="Output names under -o DIR. Fields: {stem} {relpath} {name} {model} {type} {ext}. The default _trimap suffix pairs with `matte --trimap DIR`."),
        skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose output exists and decodes."),
        fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing input."),
        report: Optional[str] = typer.Option(None, "--report", help="Per-input report: run.json or run.csv."),
        json_out: bool = typer.Option(False, "--json", help="Print the run report as JSON on stdout."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors on stderr."),
        verbose: bool = typer.Option(False, "-v", "--verbose", help="Per-file details on stderr."),
    ) -> None:
        """Make trimaps: 0 = background, 128 = unknown, 255 = foreground (8-bit grey PNG).

        Examples:

        \b
          mattecli trimap examples/data/hair.png --from-alpha examples/data/hair_alpha.png --band 6 -o out/
          mattecli trimap --mask masks/ --band 1.5% -o trimaps/
          mattecli trimap photos/ --segmenter bisenetv2 --classes person -o trimaps/
        """
        from ..errors import UsageError
        from .. import batch

        sources = [s for s in (mask, from_alpha, segmenter) if s]
        if len(sources) != 1:
            raise UsageError("give exactly one of --mask FILE|DIR, --from-alpha FILE|DIR or --segmenter NAME")
        if not 0.0 <= lo < hi <= 1.0:
            raise UsageError(f"--lo {lo} / --hi {hi}: need 0 <= lo < hi <= 1")
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"--threshold {threshold}: need a value between 0 and 1")
        if kernel not in ("ellipse", "rect", "cross"):
            raise UsageError(f"--kernel {kernel!r}: use ellipse, rect or cross")
        if band is None:
            band = "0" if from_alpha else "10"
        from ..imaging.trimap import band_pixels

        if band_pixels(band, (1000, 1000)) < 1 and mask:  # validates the value once, before any file is read
            raise UsageError("--band must be at least 1 pixel with --mask (a mask has no soft pixels)")
        if classes is not None and not segmenter:
            raise UsageError("--classes applies to --segmenter only")
        batch.check_device_precision(device)
        kind = "mask" if mask else ("alpha" if from_alpha else "segmenter")
        partner = mask or from_alpha
        batch.check_report(report)
        excl = batch.output_excludes(output)
        if inputs:
            items = batch.expand_inputs(inputs, exclude=excl)
            batch.drop_run_outputs(items, output, template=template, ext="png", types=["trimap"],
                                    model=segmenter or kind)
            if partner:
                batch.drop_partner_inputs(items, {kind: partner})
                batch.pair(items, partner, kind, flag="--mask" if mask else "--from-alpha", exclude=excl)
        else:
            if segmenter:
                raise UsageError("--segmenter needs input images")
            items = batch.expand_inputs([partner], what="--mask" if mask else "--from-alpha", exclude=excl)
            for it in items:
                it.partners[kind] = it.path
                # name outputs after the image: masks/img_mask.png -> img_trimap.png
                base = batch.strip_suffix(it.path.stem, batch.SUFFIXES[kind])
                if base:
                    it.rel = it.rel.with_name(base + it.rel.suffix)
            batch.drop_run_outputs(items, output, template=template, ext="png", types=["trimap"], model=kind)
        if not items:
            raise UsageError("no inputs left after removing the mask/alpha files")

        backend = entry = sel = None
        model_label = None
        if segmenter:
            import mattecli
            from ..registry import resolve

            entry, _ = resolve(segmenter)
            if entry.kind == "segmenter":
                sel = _select_classes(entry, classes.split(",") if classes else None)
            elif classes is not None:
                raise UsageError(f"--classes applies to segmenters; {entry.name} is a matting model whose alpha is "
                                 "thresholded (drop --classes, or use a segmenter such as bisenetv2)")
            elif entry.requires:
                raise UsageError(f"--segmenter {entry.name}: needs {', '.join(sorted(entry.requires))}; use a "
                                 "segmenter or a trimap-free matting model (see `mattecli models list`)")
            backend = mattecli.load_model(segmenter, weights=weights, device=device, **model_options(entry, option))
            model_label = entry.name
        plan = batch.OutputPlan(output, template=template, ext="png", single_file_ok=len(items) == 1)
        if plan.is_file and not str(plan.output).lower().endswith(".png"):
            raise UsageError(f"-o {output}: trimaps are written as .png")
        planned = {id(it): plan.path(it, type="trimap", model=model_label or kind) for it in items}
        batch.check_plan(items, list(planned.values()), plan=plan, types=["trimap"], model=model_label or kind)
        runner = batch.BatchRunner(verb="trimap", model=model_label,
                                    weights_sha256=getattr(backend, "weights_sha256", None) if backend else None,
                                    fail_fast=fail_fast, skip_existing=skip_existing, report=report,
                                    json_out=json_out, quiet=quiet, verbose=verbose)

        def process(it):
            import numpy as np

            from ..errors import InputError
            from ..imaging import trimap as T
            from ..imaging.io import image_size, read_grey, read_rgb, write_image

            if kind == "segmenter":
                image = read_rgb(it.path)
                H, W = image.shape[:2]
                b = T.band_pixels(band, (H, W))
                backend.reset()
                r = backend.predict(image)
                if entry.kind == "segmenter":
                    labels = r.extras.get("labels") if r.extras else None
                    if labels is None:
                        raise InputError(f"{it.path}: segmenter {entry.name} returned no class map")
                    labels = np.asarray(labels)
                    if labels.shape != (H, W):
                        import cv2

                        labels = cv2.resize(labels.astype(np.int32), (W, H), interpolation=cv2.INTER_NEAREST)
                    t = T.trimap_from_labels(labels, sel, b, kernel)
                else:
                    t = T.trimap_from_alpha(r.alpha, b, kernel, lo, hi)
            else:
                src = it.partners[kind]
                a = read_grey(src)
                if src != it.path:
                    sz = image_size(it.path)
                    if sz is None:
                        read_rgb(it.path)  # raises the decoding error for the image
                    W, H = sz
                    a = T.resize_to_image(a, (H, W), src, it.path)
                H, W = a.shape
                if kind == "mask":
                    b = T.band_pixels(band, (H, W))
                    if b < 1:
                        raise UsageError("--band must be at least 1 pixel with --mask (a mask has no soft pixels)")
                    t = T.trimap_from_mask(a, b, kernel, threshold)
                else:
                    b = T.band_pixels(band, (H, W))
                    t = T.trimap_from_alpha(a, b, kernel, lo, hi)
            if not np.any(t == 128):
                raise InputError(f"{it.path}: the trimap would have no unknown pixels (the mask/alpha is uniform or "
                                 "has no soft pixels); widen --band")
            out = planned[id(it)]
            write_image(out, t, metadata={"mattecli-trimap": "0=background,128=unknown,255=foreground"}, what="trimap")
            return {"outputs": [out], "width": W, "height": H}

        code = runner.run(items, process, planned=lambda it: [planned[id(it)]])
        raise typer.Exit(code)
