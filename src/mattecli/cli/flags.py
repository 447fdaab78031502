"""The flag vocabulary: every option that more than one verb takes is declared here, once.

One meaning per short flag and one long name per concept, in every verb:

======================  ==============================================================================
``-o, --output``        where outputs go (file, folder, template, or ``-`` = stdout)
``-m, --model``         registry model, or ``auto``
``-t, --trimap``        trimap file or folder (paired by stem)
``--bg``                clean background plate (background-matting models)
``-T, --output-type``   which outputs (alpha, foreground, rgba, composite)
``--composite-bg``      what a composite is put over: a colour, an image (or a video)
``--estimate``          how foreground colours are estimated (auto, model, ml, cf, none)
``--device``            auto (default everywhere), cpu, cuda[:N], mps
``-b, --batch-size``    images / frames per model call
``-q``, ``-v``          quiet / verbose; ``--json`` the report on stdout; ``--report FILE`` the report to a file
======================  ==============================================================================

A test walks every verb's options and fails on a clash (one short flag with two long names, one long name with two
meanings, a boolean flag shown with a value type).
"""
from __future__ import annotations

from typing import Any, List, Optional

import typer

# every boolean flag: no value type in --help (metavar ""), so `--tta` is not shown as `--tta <bool>`
_FLAG = {"metavar": ""}


def flag(default: bool, *names: str, help: str) -> Any:
    return typer.Option(default, *names, help=help, **_FLAG)


# -- inputs -------------------------------------------------------------------------------------------------------
def trimap(help: str = "Trimap file (used for every input) or folder, paired by file stem (img.png <-> img.png / "
                       "img_trimap.png).") -> Any:
    return typer.Option(None, "-t", "--trimap", help=help)


def bg(help: str = "Clean background plate file or folder, paired by file stem (img.png <-> img_back.png), for "
                   "background-matting models.") -> Any:
    return typer.Option(None, "--bg", help=help)


# -- model ---------------------------------------------------------------------------------------------------------
def model(default: Optional[str] = "auto", help: str = "Registry model (see `mattecli models list`) or auto: the "
          "registry's best model with cached weights for the inputs given.") -> Any:
    return typer.Option(default, "-m", "--model", help=help)


def weights() -> Any:
    return typer.Option(None, "--weights", help="Weights file to use instead of the cache (official checkpoint or "
                                                "converted).")


def device() -> Any:
    return typer.Option("auto", "--device", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N, mps.")


def precision() -> Any:
    return typer.Option("auto", "--precision", help="auto, fp32, fp16, bf16 (half precision where the model "
                                                    "allows it; auto = fp16 on CUDA where allowed).")


def option() -> Any:
    return typer.Option(None, "--option", help="Model option KEY=VALUE (official option names; see `mattecli "
                                               "models info MODEL`). Repeatable.")


def offline() -> Any:
    return flag(False, "--offline", help="Never use the network (also MATTECLI_OFFLINE=1): cached weights only.")


def no_fetch() -> Any:
    return flag(False, "--no-fetch", help="Do not download missing weights (say which command would).")


def batch_size(default: int = 4) -> Any:
    return typer.Option(default, "-b", "--batch-size", min=1, help="Images or frames per model call (halved "
                                                                   "automatically when the device runs out of "
                                                                   "memory).")


# -- outputs -------------------------------------------------------------------------------------------------------
def output(help: str) -> Any:
    return typer.Option(None, "-o", "--output", help=help)


def output_type(default: str, choices: str) -> Any:
    return typer.Option(default, "-T", "--output-type", help=f"Comma-separated: {choices}.")


def composite_bg(default: str, also: str = "") -> Any:
    return typer.Option(default, "--composite-bg", help="What composites are put over: a colour (#RRGGBB, R,G,B, "
                                                        "or a name: white, black, green = 0,255,0, greenscreen, "
                                                        "rvm-green...) or an image file (fit: cover)" + also + ".")


def estimate(default: str, choices: str) -> Any:
    return typer.Option(default, "--estimate", help=f"Foreground colours for foreground/rgba/composite outputs: "
                                                    f"{choices}.")


def premultiplied() -> Any:
    return flag(False, "--premultiplied", help="RGBA outputs premultiplied (RGB = alpha*F) instead of straight "
                                               "(RGB = F); the PNG text chunk 'alpha-mode' says which.")


def fmt() -> Any:
    return typer.Option(None, "--format", help="png (default), tif or jpg; with -o FILE the file's extension "
                                               "decides (jpg never for alpha or RGBA).")


def bits(help: str = "8 or 16 bits per channel (png/tif).") -> Any:
    return typer.Option(8, "--bits", help=help)


def template(default: Optional[str]) -> Any:
    return typer.Option(default, "--template", help="Output names under -o DIR. Fields: {stem} {relpath} {name} "
                                                    "{model} {type} {ext}.")


def overwrite() -> Any:
    return flag(False, "--overwrite", help="Replace outputs that exist (default: an input whose outputs all exist "
                                           "is skipped, and one whose outputs partly exist is an error).")


# -- running -------------------------------------------------------------------------------------------------------
def fail_fast() -> Any:
    return flag(False, "--fail-fast", help="Stop at the first failing input (default: keep going, exit 1 at the "
                                           "end).")


def report() -> Any:
    return typer.Option(None, "--report", help="Write the run report to a file: run.json or run.csv.")


def json_out() -> Any:
    return flag(False, "--json", help="Print the run report as JSON on stdout (instead of the output paths).")


def quiet() -> Any:
    return flag(False, "-q", "--quiet", help="Only errors and warnings on stderr.")


def verbose() -> Any:
    return flag(False, "-v", "--verbose", help="Per-input details and tracebacks on stderr.")


def inputs(help: str) -> Any:
    return typer.Argument(..., help=help, show_default=False)


ListOpt = Optional[List[str]]
