"""``mattecli trimap``: trimaps (0 / 128 / 255 PNGs) from coarse masks, alpha mattes or a segmenter.

Only the options are declared here; the per-input work is :class:`mattecli.tasks.trimap.TrimapTask` and the batch
semantics are :mod:`mattecli.batch` (outputs beside the inputs by default, never replaced silently, per-input errors).
"""
from __future__ import annotations

from typing import List, Optional

import typer

from . import flags
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


def _check_values(lo, hi, threshold, kernel, band, mask, from_alpha, segmenter, classes) -> str:
    """Usage errors for the flag values, before any file is read; returns the band."""
    from ..errors import UsageError
    from ..imaging.trimap import band_pixels
    from ..tasks.trimap import KERNELS

    if len([s for s in (mask, from_alpha, segmenter) if s]) != 1:
        raise UsageError("give exactly one of --mask FILE|DIR, --from-alpha FILE|DIR or --segmenter NAME")
    if not 0.0 <= lo < hi <= 1.0:
        raise UsageError(f"--lo {lo} / --hi {hi}: need 0 <= lo < hi <= 1")
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold}: need a value between 0 and 1")
    if kernel not in KERNELS:
        raise UsageError(f"--kernel {kernel!r}: use {', '.join(KERNELS)}")
    if band is None:
        band = "0" if from_alpha else "10"
    if band_pixels(band, (1000, 1000)) < 1 and mask:  # validates the value once
        raise UsageError("--band must be at least 1 pixel with --mask (a mask has no soft pixels)")
    if classes is not None and not segmenter:
        raise UsageError("--classes applies to --segmenter only")
    return band


def register(app: typer.Typer) -> None:
    @app.command("trimap", no_args_is_help=True)
    @handle_errors
    def trimap(
        inputs: Optional[List[str]] = typer.Argument(
            None, show_default=False, help="Images (files, folders, globs), or - (one image on standard input). "
            "May be omitted with --mask/--from-alpha: the mask/alpha files (or -) are then the inputs."),
        output: Optional[str] = flags.output(
            "A folder, a template containing {stem}/{relpath}, one .png for one input, or - (one PNG on standard "
            "output). Default: beside each input (photo.jpg -> photo_trimap.png); inputs found in a folder go to a "
            "sibling folder (photos/ -> photos_trimap/)."),
        mask: Optional[str] = typer.Option(
            None, "--mask", help="Coarse mask file or folder (binary or soft; paired by stem: img.png <-> img.png / "
            "img_mask.png). Binarised at --threshold."),
        from_alpha: Optional[str] = typer.Option(
            None, "--from-alpha", help="Alpha matte file or folder (paired by stem: img_alpha.png). alpha <= --lo is "
            "background, >= --hi foreground, between unknown."),
        segmenter: Optional[str] = typer.Option(
            None, "--segmenter", help="Registry segmenter (e.g. bisenetv2) or trimap-free matting model whose output "
            "is thresholded."),
        classes: Optional[str] = typer.Option(
            None, "--classes", help="Segmenter classes counted as foreground, comma-separated names or indices "
            "(default: the model's default, usually person)."),
        band: Optional[str] = typer.Option(
            None, "--band", help="Unknown band radius on each side of the edge: pixels (10), percent of the image "
            "diagonal (1.5%) or a fraction of it (0.015). Default 10 for masks/segmenters, 0 with --from-alpha."),
        kernel: str = typer.Option("ellipse", "--kernel", help="Structuring element: ellipse, rect or cross."),
        threshold: float = typer.Option(0.5, "--threshold", help="--mask: values >= threshold are foreground."),
        lo: float = typer.Option(0.06, "--lo", help="--from-alpha / matting --segmenter: alpha <= lo is background."),
        hi: float = typer.Option(0.96, "--hi", help="--from-alpha / matting --segmenter: alpha >= hi is foreground."),
        device: str = flags.device(),
        runtime: Optional[str] = flags.runtime(),
        weights: Optional[str] = flags.weights(),
        option: flags.ListOpt = flags.option(),
        template: str = flags.template("{relpath}_trimap.{ext}", "The default _trimap suffix pairs with `matte "
                                                                 "--trimap DIR`."),
        overwrite: bool = flags.overwrite(),
        wait: bool = flags.wait(),
        executor: Optional[str] = flags.executor(),
        ray_address: Optional[str] = flags.ray_address(),
        offline: bool = flags.offline(),
        no_fetch: bool = flags.no_fetch(),
        fail_fast: bool = flags.fail_fast(),
        report: Optional[str] = flags.report(),
        json_out: bool = flags.json_out(),
        quiet: bool = flags.quiet(),
        verbose: bool = flags.verbose(),
    ) -> None:
        """Make trimaps: 0 = background, 128 = unknown, 255 = foreground (8-bit grey PNG).

        Examples:

        \b
          mattecli trimap examples/data/hair.png --from-alpha examples/data/hair_alpha.png --band 6
          mattecli trimap --mask masks/ --band 1.5% -o trimaps/
          mattecli trimap photos/ --segmenter bisenetv2 --classes person -o trimaps/
          cat img.png | mattecli trimap - --segmenter modnet -o - > trimap.png

        An input whose trimap already exists is skipped (a run can be repeated or resumed); --overwrite replaces it. Exit status: 0 all done, 1 some inputs failed, 2 usage error, 130 interrupted, 143 terminated.
        """
        from .. import batch
        from ..errors import UsageError
        from ..tasks import planned_outputs
        from ..tasks.trimap import TrimapTask
        from ._common import fetch_policy, say, wait_policy

        band = _check_values(lo, hi, threshold, kernel, band, mask, from_alpha, segmenter, classes)
        batch.check_device_precision(device)
        batch.check_report(report)
        from ..batch import executors

        ex = executors.make(executor, ray_address, device=device, quiet=quiet)
        fetch_policy(offline, no_fetch)
        wait_policy(wait)
        kind = "mask" if mask else ("alpha" if from_alpha else "segmenter")
        partner = mask or from_alpha
        pflag = "--mask" if mask else "--from-alpha"
        label = kind
        excl = batch.output_excludes(output)
        if inputs:
            items = batch.expand_inputs(inputs, exclude=excl)
            batch.drop_run_outputs(items, output, template=template, ext="png", types=["trimap"],
                                   model=segmenter or kind, verb="trimap")
            if partner:
                if partner == "-":
                    raise UsageError(f"{pflag} -: standard input is for the inputs; give {pflag} a file or folder "
                                     "(or omit the inputs)")
                batch.drop_partner_inputs(items, {kind: partner})
                batch.pair(items, partner, kind, flag=pflag, exclude=excl)
        else:
            if segmenter:
                raise UsageError("--segmenter needs input images")
            items = batch.expand_inputs([partner], what=pflag, exclude=excl)
            for it in items:
                it.partners[kind] = it.path
                base = batch.strip_suffix(it.path.stem, batch.SUFFIXES[kind])
                if base and not it.is_stdin:      # named after the image: masks/img_mask.png -> img_trimap.png
                    it.rel = it.rel.with_name(base + it.rel.suffix)
            batch.drop_run_outputs(items, output, template=template, ext="png", types=["trimap"], model=kind,
                                   verb="trimap")
        if not items:
            raise UsageError("no inputs left after removing the mask/alpha files")

        task = TrimapTask(kind=kind, band=band, kernel=kernel, threshold=threshold, lo=lo, hi=hi, device=device,
                          weights=weights, runtime=runtime)
        if segmenter:
            from ..registry import resolve

            entry, _ = resolve(segmenter)
            if entry.kind == "segmenter":
                task.classes = _select_classes(entry, classes.split(",") if classes else None)
            elif classes is not None:
                raise UsageError(f"--classes applies to segmenters; {entry.name} is a matting model whose alpha is "
                                 "thresholded (drop --classes, or use a segmenter such as bisenetv2)")
            elif entry.requires:
                raise UsageError(f"--segmenter {entry.name}: needs {', '.join(sorted(entry.requires))}; use a "
                                 "segmenter or a trimap-free matting model (see `mattecli models list`)")
            if weights is not None and not entry.weights:
                raise UsageError(f"model {entry.name} takes no weights; drop --weights")
            task.model, task.options = segmenter, model_options(entry, option)
            label = entry.name
        elif option or weights or runtime:
            raise UsageError("--option/--weights/--runtime apply to --segmenter only")
        plan = batch.OutputPlan(output, template=template, ext="png", verb="trimap", single_file_ok=len(items) == 1)
        if plan.is_file and not str(plan.output).lower().endswith(".png"):
            raise UsageError(f"-o {output}: trimaps are written as .png")
        batch.check_stdout(plan, items, ["trimap"], json_out)
        for it in items:
            it.info["outputs"] = [plan.path(it, type="trimap", model=label)]
        batch.check_plan(items, [it.info["outputs"][0] for it in items], plan=plan, types=["trimap"], model=label)

        import mattecli

        task.meta = {"Software": f"mattecli {mattecli.__version__}"}
        if plan.is_stdout or any(it.is_stdin for it in items):
            ex = None                            # standard input / output are this process's: run it here
        if segmenter:
            from ..backends.runtimes import clause as runtime_clause

            engine = runtime_clause(entry, device, None, runtime) if ex is None else ""
            say(quiet, f"trimap: {len(items)} input(s) with {label}{engine}"
                       + (f" on Ray ({ray_address or 'local'})" if ex is not None else ""))
        loaded = executors.prepare(ex, task, count=len(items))
        runner = batch.BatchRunner(verb="trimap", model=label if segmenter else None,
                                   weights_sha256=loaded["weights_sha256"],
                                   fail_fast=fail_fast, overwrite=overwrite, report=report, json_out=json_out,
                                   quiet=quiet, verbose=verbose)
        raise typer.Exit(runner.run(items, task, planned=planned_outputs, executor=ex))
