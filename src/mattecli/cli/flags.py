"""The flag vocabulary: every option that more than one verb takes is declared here, once.

One meaning per short flag and one long name per concept, in every verb:

======================  ==============================================================================
``-o, --output``        where outputs go (file, folder, template, or ``-`` = stdout); default: beside the inputs
``-m, --model``         registry model, or ``auto``
``-t, --trimap``        trimap file or folder (paired by stem)
``--bg``                clean background plate (background-matting models)
``-a, --alpha``         alpha mattes given as inputs (paired by stem)
``-f, --foreground``    foreground colours given as inputs (paired by stem)
``-T, --output-type``   which outputs (alpha, foreground, rgba, composite)
``--composite-bg``      what a composite is put over: a colour, an image (or a video)
``--estimate``          how foreground colours are estimated (auto, model, ml, cf, none)
``--device``            auto (default everywhere), cpu, cuda[:N], mps
``-b, --batch-size``    images / frames per model call
``--overwrite``         replace existing outputs (default: complete ones are skipped, partial ones are an error)
``--executor``          local (default) or ray: the same batch on Ray actors (``--ray-address`` picks the cluster)
``-q``, ``-v``          quiet / verbose; ``--json`` the report on stdout; ``--report FILE`` the report to a file
======================  ==============================================================================

Each shared option's help starts with the same first sentence in every verb (its meaning); a verb may add a
sentence of its own after it (``more=``). Defaults are the same everywhere, except for the options in
:data:`VERB_DEFAULTS`. ``tests/test_cli_vocabulary.py`` walks every verb's options and fails on a clash (one short
flag with two long names, one long name with two meanings, a boolean flag shown with a value type).
"""
from __future__ import annotations

from typing import Any, List, Optional

import typer

# every boolean flag: no value type in --help (metavar ""), so `--tta` is not shown as `--tta <bool>`
_FLAG = {"metavar": ""}

#: long names whose default depends on the verb (the only ones a verb may declare with its own default)
VERB_DEFAULTS = frozenset({"--model", "--output-type", "--composite-bg", "--estimate", "--template", "--batch-size"})

#: the first sentence of each shared option's help: its one meaning, in every verb
MEANINGS = {
    "--output": "Where the outputs go.",
    "--trimap": "Trimaps: 0 = background, 128 = unknown, 255 = foreground.",
    "--bg": "Clean background plate (the scene without the subject), for background-matting models.",
    "--alpha": "Alpha mattes, paired with the inputs by file stem (img.png <-> img.png / img_alpha.png).",
    "--foreground": "Foreground colours (F in I = alpha*F + (1-alpha)*B), paired with the inputs by file stem "
                    "(img.png <-> img_fg.png / img_foreground.png).",
    "--model": "Registry model (see `mattecli models list`).",
    "--weights": "Weights file to use instead of the cache (official checkpoint or converted).",
    "--device": "Where the model runs: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.",
    "--precision": "auto, fp32, fp16, bf16 (half precision where the model allows it; auto = fp16 on CUDA where "
                   "allowed).",
    "--runtime": "What runs the network: auto (the runtime measured fastest for the model on this device, else "
                 "torch), torch, onnxruntime or openvino (also MATTECLI_RUNTIME).",
    "--option": "Model option KEY=VALUE (official option names; see `mattecli models info MODEL`), repeatable.",
    "--offline": "Never use the network (also MATTECLI_OFFLINE=1).",
    "--no-fetch": "Do not download missing weights (say which command would).",
    "--max-side": "Run the model on inputs downscaled to this long side in pixels (area filter), then scale the "
                  "alpha and colours back (bilinear; the trimap's known pixels exact): bounds memory on huge images.",
    "--batch-size": "Images or frames per model call (halved automatically when the device runs out of memory).",
    "--output-type": "Outputs to write, comma-separated.",
    "--composite-bg": "What composites are put over: a colour or an image.",
    "--estimate": "How foreground colours are estimated (foreground, rgba and composite outputs).",
    "--premultiplied": "RGBA outputs premultiplied (RGB = alpha*F) instead of straight (RGB = F); the PNG text "
                       "chunk 'alpha-mode' says which.",
    "--format": "png (default), tif or jpg; with -o FILE the file's extension decides (jpg never for alpha or "
                "RGBA).",
    "--bits": "8 or 16 bits per channel (png/tif).",
    "--template": "Output file names, under -o DIR or (without -o) beside the inputs.",
    "--overwrite": "Replace outputs that exist (default: an input whose outputs all exist is skipped, and one whose "
                   "outputs partly exist is an error).",
    "--wait": "When another mattecli run is writing an output, wait for it to finish (default: that input fails "
              "at once, naming the output).",
    "--allow-truncated": "Video: when an input ends early (truncated or damaged), keep the frames that decode with "
                         "a warning (default: that clip fails, naming the frame).",
    "--align": "Background models: align the plate to a hand-held shot (feature matching + homography); a failed "
               "match warns and uses the plate as is.",
    "--executor": "Where the inputs are processed: local (this process, one after another) or ray (Ray actors "
                  "that load the model once each, on this machine or a cluster); default: $MATTECLI_EXECUTOR, else "
                  "local.",
    "--ray-address": "The Ray cluster for --executor ray: auto (the cluster this machine belongs to) or "
                     "ray://HOST:10001 (Ray Client); default: a local Ray with this machine's CPUs and GPUs (or "
                     "$RAY_ADDRESS).",
    "--fail-fast": "Stop at the first failing input (default: keep going, exit 1 at the end).",
    "--report": "Write the run report to a file: run.json or run.csv.",
    "--json": "Machine-readable output: JSON on stdout.",
    "--quiet": "Only errors and warnings on stderr.",
    "--verbose": "Per-input details and tracebacks on stderr.",
}

ListOpt = Optional[List[str]]


def _help(name: str, more: str = "") -> str:
    first = MEANINGS[name]
    return f"{first} {more}" if more else first


def flag(default: bool, *names: str, help: str) -> Any:
    return typer.Option(default, *names, help=help, **_FLAG)


def inputs(help: str) -> Any:
    return typer.Argument(..., help=help, show_default=False)


# -- inputs and their partner files -------------------------------------------------------------------------------
PAIRED = "A file serves every input; a folder is paired by file stem"


def trimap(more: str = f"{PAIRED} (img.png <-> img.png / img_trimap.png).") -> Any:
    return typer.Option(None, "-t", "--trimap", help=_help("--trimap", more))


def bg(more: str = f"{PAIRED} (img.png <-> img.png / img_back.png).") -> Any:
    return typer.Option(None, "--bg", help=_help("--bg", more))


def alpha(more: str = "A file serves every input.", default: Any = None) -> Any:
    return typer.Option(default, "-a", "--alpha", help=_help("--alpha", more), show_default=False)


def foreground(more: str = "") -> Any:
    return typer.Option(None, "-f", "--foreground", help=_help("--foreground", more))


# -- model ---------------------------------------------------------------------------------------------------------
AUTO = "auto: the registry's best model with cached weights for the inputs given."


def model(default: Optional[str] = "auto", more: str = AUTO) -> Any:
    return typer.Option(default, "-m", "--model", help=_help("--model", more))


def weights() -> Any:
    return typer.Option(None, "--weights", help=_help("--weights"))


def device() -> Any:
    return typer.Option("auto", "--device", help=_help("--device"))


def precision() -> Any:
    return typer.Option("auto", "--precision", help=_help("--precision"))


def runtime() -> Any:
    return typer.Option(None, "--runtime", help=_help("--runtime"), show_default="auto")


def option() -> Any:
    return typer.Option(None, "--option", help=_help("--option"))


def offline(more: str = "Only cached weights are used.") -> Any:
    return flag(False, "--offline", help=_help("--offline", more))


def no_fetch() -> Any:
    return flag(False, "--no-fetch", help=_help("--no-fetch"))


def batch_size(default: int = 4) -> Any:
    return typer.Option(default, "-b", "--batch-size", min=1, help=_help("--batch-size"))


def max_side() -> Any:
    return typer.Option(None, "--max-side", min=16, help=_help("--max-side"))


def align() -> Any:
    return flag(False, "--align", help=_help("--align"))


# -- outputs -------------------------------------------------------------------------------------------------------
def output(more: str) -> Any:
    return typer.Option(None, "-o", "--output", help=_help("--output", more))


def output_type(default: str, choices: str) -> Any:
    return typer.Option(default, "-T", "--output-type", help=_help("--output-type", f"One or more of: {choices}."))


COLOURS = "Colours: #RRGGBB, R,G,B or a name (white, black, green = 0,255,0, greenscreen, rvm-green...)."


def composite_bg(default: Optional[str], more: str = "An image file is fitted to each input (cover).") -> Any:
    return typer.Option(default, "--composite-bg", help=_help("--composite-bg", f"{COLOURS} {more}"))


def estimate(default: str, choices: str) -> Any:
    return typer.Option(default, "--estimate", help=_help("--estimate", f"One of: {choices}."))


def premultiplied() -> Any:
    return flag(False, "--premultiplied", help=_help("--premultiplied"))


def fmt() -> Any:
    return typer.Option(None, "--format", help=_help("--format"))


def bits(more: str = "") -> Any:
    return typer.Option(8, "--bits", help=_help("--bits", more))


FIELDS = "Fields: {stem} {relpath} {name} {model} {type} {ext}."


def template(default: Optional[str], more: str = "") -> Any:
    return typer.Option(default, "--template", help=_help("--template", f"{FIELDS} {more}".strip()))


def overwrite() -> Any:
    return flag(False, "--overwrite", help=_help("--overwrite"))


def wait() -> Any:
    return flag(False, "--wait", help=_help("--wait"))


def allow_truncated() -> Any:
    return flag(False, "--allow-truncated", help=_help("--allow-truncated"))


# -- running -------------------------------------------------------------------------------------------------------
def executor(more: str = "Same outputs, report and exit code either way.") -> Any:
    return typer.Option(None, "--executor", help=_help("--executor", more), show_default=False)


def ray_address() -> Any:
    return typer.Option(None, "--ray-address", help=_help("--ray-address"), show_default=False)


def fail_fast() -> Any:
    return flag(False, "--fail-fast", help=_help("--fail-fast"))


def report() -> Any:
    return typer.Option(None, "--report", help=_help("--report"))


def json_out(more: str = "The run report, instead of the output paths.") -> Any:
    return flag(False, "--json", help=_help("--json", more))


def quiet(more: str = "") -> Any:
    return flag(False, "-q", "--quiet", help=_help("--quiet", more))


def verbose() -> Any:
    return flag(False, "-v", "--verbose", help=_help("--verbose"))
