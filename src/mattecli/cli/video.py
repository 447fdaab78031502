"""``mattecli video``: matte videos and image sequences with a streaming, batched pipeline.

Only the options are declared here; the work is :class:`mattecli.video.command.VideoCommand`. No torch import at
module level.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from . import flags
from ._common import handle_errors, model_options

HELP = """Matte videos or image sequences: decode, run a model in batches on the CPU/GPU, encode - all streamed.

INPUTS: video files, folders of frames, frame patterns (frames/%06d.png) or folders of clips (searched recursively); each clip is one item of the run (errors per clip, --report, --json).

Outputs (-T/--output-type, comma-separated): composite (over --composite-bg, default rvm-green), alpha (grayscale matte), foreground, rgba (with alpha). For one clip and one type, -o OUT picks the format from its extension: .mov = ProRes 4444 (rgba) or ProRes 422 HQ, .webm = VP9 (with alpha for rgba), .mp4 = H.264 (alpha: luma-only gray), .mkv = H.264 (alpha: FFV1 gray, lossless; rgba: FFV1), a folder or a %06d.png pattern = PNG sequence. Otherwise -o is a folder (names from --template) or a template itself. Without -o the outputs go beside each clip (clip.mp4 -> clip_composite.mp4); the clips found in a folder go to a sibling folder (clips/ -> clips_video/). Audio, subtitles, timestamps, frame rate, rotation and colour tags are kept. Alpha files are decoded back and checked; interrupted runs leave *.partial.* files, never a corrupt output. A clip whose outputs already exist is skipped (a run can be repeated or resumed); --overwrite replaces them.

Exit status: 0 all done, 1 some clips failed, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

Examples:

  mattecli video clip.mp4 -T rgba -o clip_rgba.mov

  mattecli video clips/ -T composite,alpha -o out/ --report run.json

  mattecli video clip.mp4 --bg plate.png -o out.mp4 --composite-bg beach.jpg
"""


def register(app: typer.Typer) -> None:
    @app.command("video", help=HELP, no_args_is_help=True)
    @handle_errors
    def video(
        inputs: List[str] = typer.Argument(..., metavar="INPUTS", show_default=False, help="Video files, folders of "
                                           "frames, patterns like frames/%06d.png, or folders of clips."),
        model: str = flags.model("auto", f"{flags.AUTO} For video a temporal model such as rvm is preferred (a "
                                         "plate model with --bg)."),
        bg: Optional[str] = flags.bg("An image, a video or a folder of frames; for several clips, a folder of "
                                     "plates named after the clips."),
        trimap: Optional[str] = flags.trimap("One per frame (a folder of frames, a %06d pattern or a video) for "
                                             "trimap models; for several clips, a folder of them named after the "
                                             "clips."),
        weights: Optional[str] = flags.weights(),
        output_type: str = flags.output_type("composite", "composite, alpha, foreground, rgba"),
        output: Optional[str] = flags.output("One clip and one type: the output file, folder or %06d.png pattern. "
                                             "Else a folder, or a template with {stem} {relpath} {name} {dir} "
                                             "{model} {type} {ext}. Default: beside each clip (clip.mp4 -> "
                                             "clip_composite.mp4); clips found in a folder go to a sibling folder "
                                             "(clips/ -> clips_video/)."),
        template: Optional[str] = flags.template(None, "Also {dir} (the clip's folder). Default "
                                                       "{relpath}_{type}.{ext}."),
        composite_bg: str = flags.composite_bg("rvm-green", "An image or a video is fitted to the frames (cover); "
                                                            "green is 0,255,0, rvm-green RVM's 120,255,155."),
        batch_size: int = flags.batch_size(4),
        device: str = flags.device(),
        precision: str = flags.precision(),
        runtime: Optional[str] = flags.runtime(),
        downsample_ratio: str = typer.Option("auto", "--downsample-ratio", help="RVM: auto (long side to 480 px, the "
                                             "authors' portrait column), auto-fullbody (768 px), or a number in "
                                             "(0,1]."),
        smooth: str = typer.Option("none", "--smooth", help="Temporal smoothing of alpha: none, ema[:W], "
                                                            "median[:N]."),
        lossless: bool = flags.flag(False, "--lossless", help="Lossless alpha/RGBA (FFV1 .mkv, H.264 qp 0 .mp4, "
                                                              "VP9 lossless .webm)."),
        codec: Optional[str] = typer.Option(None, "--codec", help="h264, h265, prores, vp9, ffv1 (must fit the "
                                                                  "container)."),
        crf: Optional[float] = typer.Option(None, "--crf", help="Quality for H.264/H.265/VP9 (lower = better; "
                                                                "defaults 18/22/30)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="x264/x265 preset (default: fast)."),
        bits: int = flags.bits("Video: PNG-sequence outputs (ProRes 4444 is 16-bit by itself)."),
        option: flags.ListOpt = flags.option(),
        align: bool = flags.align(),
        fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of image-sequence inputs (default 30)."),
        no_audio: bool = flags.flag(False, "--no-audio", help="Do not copy audio/subtitles."),
        keep_partial: bool = flags.flag(True, "--keep-partial/--no-partial", help="On Ctrl-C/failure keep "
                                        "playable *.partial.* outputs."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the model (torch)."),
        overwrite: bool = flags.overwrite(),
        executor: Optional[str] = flags.executor(),
        ray_address: Optional[str] = flags.ray_address(),
        wait: bool = flags.wait(),
        allow_truncated: bool = flags.allow_truncated(),
        offline: bool = flags.offline(),
        no_fetch: bool = flags.no_fetch(),
        fail_fast: bool = flags.fail_fast(),
        report: Optional[str] = flags.report(),
        json_out: bool = flags.json_out(),
        quiet: bool = flags.quiet("No progress bar or summary."),
        verbose: bool = flags.verbose(),
    ) -> None:
        from ..video.command import VideoCommand
        from ..video.settings import VideoSettings
        from ._common import fetch_policy

        fetch_policy(offline, no_fetch)
        settings = VideoSettings(
            inputs=list(inputs), model=model, bg=bg, trimap=trimap, weights=weights, output_type=output_type,
            output=output, template=template, composite_bg=composite_bg, batch_size=batch_size, device=device,
            precision=precision, runtime=runtime, downsample_ratio=downsample_ratio, smooth=smooth, lossless=lossless, codec=codec,
            crf=crf, preset=preset, bits=bits, align=align, fps=fps, audio=not no_audio, keep_partial=keep_partial,
            threads=threads, quiet=quiet, verbose=verbose, report=report, json_out=json_out, fail_fast=fail_fast,
            overwrite=overwrite, wait=wait, allow_truncated=allow_truncated)
        from ..batch import executors

        ex = executors.make(executor, ray_address, device=device, quiet=quiet)
        cmd = VideoCommand(settings)
        entry = cmd.choose_model()
        options = model_options(entry, option, **cmd.model_extra())
        raise typer.Exit(cmd.run(options, executor=ex))
