"""``mattecli video``: matte videos and image sequences with a streaming, batched pipeline.

Only the options are declared here; the work is :class:`mattecli.video.command.VideoCommand`. No torch import at
module level.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from ._common import handle_errors, model_options

HELP = """Matte videos or image sequences: decode, run a model in batches on the CPU/GPU, encode - all streamed.

INPUTS: video files, folders of frames, frame patterns (frames/%06d.png) or folders of clips (searched recursively); each clip is one item of the run (errors per clip, --report, --json).

Outputs (--output-type, comma-separated): composite (over --composite-bg, default rvm-green), alpha (grayscale matte), foreground, rgba (with alpha). For one clip and one type, -o OUT picks the format from its extension: .mov = ProRes 4444 (rgba) or ProRes 422 HQ, .webm = VP9 (with alpha for rgba), .mp4 = H.264 (alpha: luma-only gray), .mkv = H.264 (alpha: FFV1 gray, lossless; rgba: FFV1), a folder or a %06d.png pattern = PNG sequence. Otherwise -o is a folder (names from --template) or a template itself; without -o the outputs go beside each clip. Audio, subtitles, timestamps, frame rate, rotation and colour tags are kept. Alpha files are decoded back and checked; interrupted runs leave *.partial.* files, never a corrupt output.

Exit status: 0 all done, 1 some clips failed, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

Examples:

  mattecli video clip.mp4 -t rgba -o clip_rgba.mov

  mattecli video clips/ -t composite,alpha -o out/ --report run.json

  mattecli video clip.mp4 --bg plate.png -o out.mp4 --composite-bg beach.jpg
"""


def register(app: typer.Typer) -> None:
    @app.command("video", help=HELP, no_args_is_help=True)
    @handle_errors
    def video(
        inputs: List[str] = typer.Argument(..., metavar="INPUTS", help="Video files, folders of frames, patterns like frames/%06d.png, or folders of clips."),
        model: str = typer.Option("auto", "--model", "-m", help="Registry model, or auto: the registry's choice for the inputs given (a temporal model such as rvm preferred; a plate model with --bg)."),
        bg: Optional[str] = typer.Option(None, "--bg", help="Clean background plate (image, video or folder of frames) for plate models; a folder of plates named after the clips for several clips."),
        trimap: Optional[str] = typer.Option(None, "--trimap", help="Trimaps, one per frame (folder, %06d pattern or video) for trimap models; a folder of them named after the clips for several clips."),
        weights: Optional[str] = typer.Option(None, "--weights", help="Weights file (official checkpoint or converted)."),
        output_type: str = typer.Option("composite", "--output-type", "-t", help="composite, alpha, foreground, rgba (comma-separated)."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="One clip and one type: the output file, folder or %06d.png pattern. Else a folder, or a template with {stem} {relpath} {name} {dir} {model} {type} {ext}."),
        template: Optional[str] = typer.Option(None, "--template", help="Output names under -o FOLDER (default {relpath}_{type}.{ext}), or without -o full paths (default {dir}/{stem}_{type}.{ext})."),
        composite_bg: str = typer.Option("rvm-green", "--composite-bg", help="Colour (#RRGGBB, R,G,B, name: green is 0,255,0; rvm-green is RVM's 120,255,155), image or video behind the composite."),
        batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per model call (halved automatically when the device runs out of memory)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps."),
        precision: str = typer.Option("auto", "--precision", help="auto, fp32, fp16, bf16 (half precision where the model allows it)."),
        downsample_ratio: str = typer.Option("auto", "--downsample-ratio", help="RVM: auto (long side to 480 px, the authors' portrait column), auto-fullbody (768 px), or a number in (0,1]."),
        smooth: str = typer.Option("none", "--smooth", help="Temporal smoothing of alpha: none, ema[:W], median[:N]."),
        lossless: bool = typer.Option(False, "--lossless", help="Lossless alpha/RGBA (FFV1 .mkv, H.264 qp 0 .mp4, VP9 lossless .webm)."),
        codec: Optional[str] = typer.Option(None, "--codec", help="h264, h265, prores, vp9, ffv1 (must fit the container)."),
        crf: Optional[float] = typer.Option(None, "--crf", help="Quality for H.264/H.265/VP9 (lower = better; defaults 18/22/30)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="x264/x265 preset (default: fast)."),
        bits: int = typer.Option(8, "--bits", help="PNG sequence bit depth: 8 or 16."),
        option: Optional[List[str]] = typer.Option(None, "--option", help="Model option KEY=VALUE (official names; repeatable)."),
        align: bool = typer.Option(False, "--align", help="Plate models: align the plate to each frame of a hand-held shot (feature matching + homography); a failed match warns and uses the plate as is."),
        fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of image-sequence inputs (default 30)."),
        no_audio: bool = typer.Option(False, "--no-audio", help="Do not copy audio/subtitles."),
        keep_partial: bool = typer.Option(True, "--keep-partial/--no-partial", help="On Ctrl-C/failure keep playable *.partial.* outputs."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the model (torch)."),
        fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing clip (default: keep going, exit 1 at the end)."),
        report: Optional[str] = typer.Option(None, "--report", help="Write a per-clip report: run.json or run.csv."),
        json_out: bool = typer.Option(False, "--json", help="Print the run report as JSON on stdout (instead of the output paths)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary; only errors and warnings."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Per-clip details and tracebacks on stderr."),
    ) -> None:
        from ..video.command import VideoCommand
        from ..video.settings import VideoSettings

        settings = VideoSettings(
            inputs=list(inputs), model=model, bg=bg, trimap=trimap, weights=weights, output_type=output_type,
            output=output, template=template, composite_bg=composite_bg, batch_size=batch_size, device=device,
            precision=precision, downsample_ratio=downsample_ratio, smooth=smooth, lossless=lossless, codec=codec,
            crf=crf, preset=preset, bits=bits, align=align, fps=fps, audio=not no_audio, keep_partial=keep_partial,
            threads=threads, quiet=quiet, verbose=verbose, report=report, json_out=json_out, fail_fast=fail_fast)
        cmd = VideoCommand(settings)
        entry = cmd.choose_model()
        options = model_options(entry, option, **cmd.model_extra())
        raise typer.Exit(cmd.run(options))
