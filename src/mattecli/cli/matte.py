"""``mattecli matte``: alpha mattes (and foreground, RGBA cut-outs, composites) for a batch of images.

Only the options are declared here; the per-input work is :class:`mattecli.tasks.matte.MatteTask` and the batch
semantics are :mod:`mattecli.batch`.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from . import flags
from ._common import handle_errors, model_options

def register(app: typer.Typer) -> None:
    @app.command("matte", no_args_is_help=True)
    @handle_errors
    def matte(
        inputs: List[str] = flags.inputs("Image files, folders (recursive), glob patterns, or - (one image on "
                                         "standard input)."),
        output: Optional[str] = flags.output("Output folder, a template containing {stem}/{relpath}, one file for "
                                             "one input and one output type, or - (one PNG on standard output). "
                                             "Default: beside each input (photo.jpg -> photo_alpha.png); inputs "
                                             "found in a folder go to a sibling folder (photos/ -> photos_matte/)."),
        model: str = flags.model(),
        trimap: Optional[str] = flags.trimap(),
        bg: Optional[str] = flags.bg(),
        weights: Optional[str] = flags.weights(),
        device: str = flags.device(),
        precision: str = flags.precision(),
        runtime: Optional[str] = flags.runtime(),
        option: flags.ListOpt = flags.option(),
        estimate: str = flags.estimate("auto", "auto (the model's own if it predicts one, else ml), model, ml "
                                               "(fast multi-level), cf (closed-form), none (the input colours)"),
        output_type: str = flags.output_type("alpha", "alpha, foreground, rgba, composite"),
        premultiplied: bool = flags.premultiplied(),
        composite_bg: str = flags.composite_bg("white"),
        fmt: Optional[str] = flags.fmt(),
        bits: int = flags.bits(),
        template: str = flags.template("{relpath}_{type}.{ext}"),
        tta: bool = flags.flag(False, "--tta", help="Test-time augmentation: the model's own where it has one "
                                                    "(FBA: 8 flips and rotations), else the average with the "
                                                    "horizontally flipped prediction."),
        align: bool = flags.flag(False, "--align", help="Background models: align the plate to a hand-held shot "
                                                        "(feature matching + homography); a failed match warns and "
                                                        "uses the plate as is."),
        max_side: Optional[int] = flags.max_side(),
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
        """Pull alpha mattes from images.

        Examples:

        \b
          mattecli matte img.jpg --model fba --trimap t.png
          mattecli matte examples/data/hair.png --trimap examples/data/hair_trimap.png -T alpha,rgba -o out/
          mattecli matte photos/ --trimap trimaps/ -o out/ --model closed-form --report run.csv
          cat img.png | mattecli matte - --model rvm -o - > alpha.png
          mattecli matte photos/ -o out/ --model rvm --executor ray --ray-address auto --device cuda

        RGBA outputs are straight (unassociated) alpha unless --premultiplied; the PNG records which in its 'alpha-mode' text chunk. An input whose outputs already exist is skipped (a run can be repeated or resumed); --overwrite replaces them. Exit status: 0 all done, 1 some inputs failed (or the --report could not be written), 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both still write the report.
        """
        from .. import batch
        from ..errors import UsageError
        from ..tasks.matte import ESTIMATES, MatteTask, parse_types
        from ..backends.runtimes import clause as runtime_clause
        from ._common import fetch_policy, say, wait_policy

        types = parse_types(output_type)
        if estimate not in ESTIMATES:
            raise UsageError(f"--estimate {estimate!r}: use one of {', '.join(ESTIMATES)}")
        fmt_l = (fmt or "png").lower().lstrip(".")
        if fmt_l not in ("png", "tif", "tiff", "jpg", "jpeg"):
            raise UsageError(f"--format {fmt!r}: use png, tif or jpg")
        if fmt_l in ("jpg", "jpeg") and set(types) & {"alpha", "rgba"}:
            raise UsageError("--format jpg cannot hold an alpha matte or an RGBA cut-out; use --format png or tif")
        if bits not in (8, 16):
            raise UsageError("--bits must be 8 or 16")
        batch.check_device_precision(device, precision)
        batch.check_report(report)
        from ..batch import executors

        ex = executors.make(executor, ray_address, device=device, quiet=quiet)
        fetch_policy(offline, no_fetch)
        wait_policy(wait)
        excl = batch.output_excludes(output)
        items = batch.expand_inputs(inputs, exclude=excl)

        from ..registry import resolve

        if model.strip().lower() == "auto":
            from ..choose import pick_auto

            name, why = pick_auto(trimap is not None, bg is not None)
            say(quiet, f"--model auto: using {name} ({why})")
        else:
            name = model
        entry, _ = resolve(name)
        if entry.kind != "matting":
            raise UsageError(f"model {entry.name} is a {entry.kind}, not a matting model; use it with `mattecli "
                             f"trimap --segmenter {entry.name}`")
        if "trimap" in entry.requires and trimap is None:
            raise UsageError(f"model {entry.name} needs a trimap: pass --trimap FILE|DIR (make one with `mattecli "
                             "trimap`)")
        if "background" in entry.requires and bg is None:
            raise UsageError(f"model {entry.name} needs a clean background plate: pass --bg FILE|DIR")
        if weights is not None and not entry.weights:
            raise UsageError(f"model {entry.name} takes no weights; drop --weights")
        if estimate == "model" and "foreground" not in entry.outputs:
            raise UsageError(f"--estimate model: {entry.name} does not predict a foreground; use ml or cf")
        if trimap is not None and "trimap" not in entry.requires | entry.optional and not quiet:
            print(f"mattecli: warning: {entry.name} does not use a trimap; --trimap is ignored", file=sys.stderr)
        if bg is not None and "background" not in entry.requires | entry.optional and not quiet:
            print(f"mattecli: warning: {entry.name} does not use a background plate; --bg is ignored",
                  file=sys.stderr)
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
        batch.drop_run_outputs(items, output, template=template, ext=ext, types=types, model=model_label,
                               verb="matte")
        batch.drop_partner_inputs(items, {"trimap": trimap, "bg": bg})
        batch.pair(items, trimap, "trimap", flag="--trimap", exclude=excl)
        batch.pair(items, bg, "bg", flag="--bg", exclude=excl)
        if not items:
            raise UsageError("no inputs left after removing the trimap/plate files")
        plan = batch.OutputPlan(output, template=template, ext=ext, verb="matte",
                                single_file_ok=len(items) == 1 and len(types) == 1)
        types = batch.check_stdout(plan, items, types, json_out)
        for it in items:
            it.info["outputs"] = [plan.path(it, type=t, model=model_label) for t in types]
        batch.check_single_file(plan, fmt, types)
        batch.check_plan(items, [p for it in items for p in it.info["outputs"]], plan=plan, types=types,
                         model=model_label)

        import mattecli

        task = MatteTask(model=name, types=types, options=opts, weights=weights, device=device,
                         precision=precision, estimate=estimate, premultiplied=premultiplied,
                         composite_bg=composite_bg, bits=bits, tta=tta, max_side=max_side, runtime=runtime,
                         meta={"Software": f"mattecli {mattecli.__version__}", "mattecli-model": model_label})
        if "composite" in types:
            task.composite_background()          # a bad --composite-bg is a usage error before any work
        if plan.is_stdout or any(it.is_stdin for it in items):
            ex = None                            # standard input / output are this process's: run it here
        engine = runtime_clause(entry, device, precision, runtime) if ex is None else ""   # Ray: the workers' device
        say(quiet, f"matte: {len(items)} input(s) with {model_label}{engine}"
                   + (f" on Ray ({ray_address or 'local'})" if ex is not None else ""))
        loaded = executors.prepare(ex, task, count=len(items))
        runner = batch.BatchRunner(verb="matte", model=model_label, weights_sha256=loaded["weights_sha256"],
                                   fail_fast=fail_fast, overwrite=overwrite, report=report, json_out=json_out,
                                   quiet=quiet, verbose=verbose)
        raise typer.Exit(runner.run(items, task, planned=batch.planned_outputs, executor=ex))
