"""``mattecli video``: matte a video (or image sequence) with a streaming, batched pipeline.

No torch import at module level: everything heavy is imported inside the command.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from ._common import handle_errors, model_options, warn_line

HELP = """Matte a video or image sequence: decode, run a model in batches on the CPU/GPU, encode - all streamed.

Outputs (--output-type, comma-separated): composite (over --composite-bg), alpha (grayscale matte), foreground, rgba (with alpha). With one type, -o OUT picks the format from its extension: .mov = ProRes 4444 (rgba) or ProRes 422 HQ, .webm = VP9 (with alpha for rgba), .mp4 = H.264 (alpha: luma-only gray), .mkv = H.264 (alpha: FFV1 gray, lossless; rgba: FFV1), a folder or a %06d.png pattern = PNG sequence. Audio, subtitles, timestamps, frame rate, rotation and colour tags are kept. Alpha files are decoded back and checked; interrupted runs leave *.partial.* files, never a corrupt output.

Examples:

  mattecli video clip.mp4 -t rgba -o clip_rgba.mov

  mattecli video clip.mp4 -t composite,alpha --template "out/{stem}_{type}.{ext}"

  mattecli video clip.mp4 --bg plate.png -o out.mp4 --composite-bg beach.jpg
"""


def _default_ext(otype: str) -> str:
    from ..video.writer import DEFAULT_EXT

    return DEFAULT_EXT[otype].lstrip(".")


def output_targets(input_path: str, types: list[str], output: str | None, template: str | None) -> dict[str, str]:
    """Output path per type: -o OUT (one type), -o FOLDER (several), or a template with {stem} {type} {ext} {dir}."""
    from ..errors import UsageError

    src = input_path.rstrip("/\\")
    stem = os.path.splitext(os.path.basename(src))[0] or "video"
    in_dir = os.path.dirname(os.path.abspath(src))
    if "%" in stem:   # a pattern: name outputs after its folder, and put them beside that folder
        stem = os.path.basename(in_dir) or "frames"
        in_dir = os.path.dirname(in_dir)
    if output and template:
        raise UsageError("give either -o/--output or --template, not both")
    if output and "{" in output:
        template, output = output, None
    if output:
        if len(types) == 1:
            return {types[0]: output}
        if os.path.splitext(output.rstrip("/\\"))[1].lower() in (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".png"):
            raise UsageError(f"-o {output}: with several --output-type values -o is a folder; use --template "
                             "'out/{stem}_{type}.{ext}' to name files")
        return {t: os.path.join(output, f"{stem}_{t}.{_default_ext(t)}") for t in types}
    template = template or "{dir}/{stem}_{type}.{ext}"
    if len(types) > 1 and "{type}" not in template:
        raise UsageError("--template must contain {type} when several output types are written")
    out = {}
    for t in types:
        try:
            out[t] = template.format(stem=stem, type=t, ext=_default_ext(t), dir=in_dir)
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"--template {template!r}: unknown placeholder {e}; use {{stem}} {{type}} {{ext}} "
                             "{dir}") from None
    return out


def _interrupt_on_sigterm():
    """During a run, SIGTERM (and a SIGINT that a parent shell set to 'ignore') stop it like Ctrl-C: outputs are
    closed as playable ``*.partial.*`` files instead of being left half-written. Returns a function that restores
    the previous handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    saved = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            saved[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass

    def restore():
        for sig, h in saved.items():
            try:
                signal.signal(sig, h)
            except (ValueError, OSError, TypeError):
                pass
    return restore


def _one_line_os_error(e: BaseException, default_path: str):
    """Last line of defence: an OS/FFmpeg error that no stage mapped becomes a one-line MatteError (no traceback)."""
    from ..video.writer import output_os_error

    path = getattr(e, "filename", None) or default_path
    return output_os_error(str(path), e, "failed")


def register(app: typer.Typer) -> None:
    @app.command("video", help=HELP, no_args_is_help=True)
    @handle_errors
    def video(
        input: str = typer.Argument(..., metavar="INPUT", help="Video file, image-sequence folder, or pattern like frames/%06d.png."),
        model: str = typer.Option("auto", "--model", "-m", help="Registry model; auto = rvm, or bgmv2 with --bg."),
        bg: Optional[str] = typer.Option(None, "--bg", help="Clean background plate (image or video) for plate models (bgmv2)."),
        trimap: Optional[str] = typer.Option(None, "--trimap", help="Trimap sequence (folder, %06d pattern or video) for trimap models."),
        weights: Optional[str] = typer.Option(None, "--weights", help="Weights file (official checkpoint or converted)."),
        output_type: str = typer.Option("composite", "--output-type", "-t", help="composite, alpha, foreground, rgba (comma-separated)."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Output file/folder/pattern (one type), or folder (several)."),
        template: Optional[str] = typer.Option(None, "--template", help="Output path template: {dir} {stem} {type} {ext}."),
        composite_bg: str = typer.Option("green", "--composite-bg", help="Colour (name, #RRGGBB, R,G,B), image or video behind the composite."),
        batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per model call (halved automatically on CUDA OOM)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
        precision: str = typer.Option("auto", "--precision", help="auto, fp32, fp16, bf16 (half precision where the model allows it)."),
        downsample_ratio: str = typer.Option("auto", "--downsample-ratio", help="RVM: auto (authors' table by resolution), auto-fullbody, or a number in (0,1]."),
        smooth: str = typer.Option("none", "--smooth", help="Temporal smoothing of alpha: none, ema[:W], median[:N]."),
        lossless: bool = typer.Option(False, "--lossless", help="Lossless alpha/RGBA (FFV1 .mkv, H.264 qp 0 .mp4, VP9 lossless .webm)."),
        codec: Optional[str] = typer.Option(None, "--codec", help="h264, h265, prores, vp9, ffv1 (must fit the container)."),
        crf: Optional[float] = typer.Option(None, "--crf", help="Quality for H.264/H.265/VP9 (lower = better; defaults 18/22/30)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="x264/x265 preset (default: fast)."),
        bits: int = typer.Option(8, "--bits", help="PNG sequence bit depth: 8 or 16."),
        option: Optional[List[str]] = typer.Option(None, "--option", help="Model option KEY=VALUE (official names; repeatable)."),
        align: bool = typer.Option(False, "--align", help="Plate models: align the plate to each frame of a hand-held shot (feature matching + homography); a failed match warns and uses the plate as is."),
        fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of an image-sequence input (default 30)."),
        no_audio: bool = typer.Option(False, "--no-audio", help="Do not copy audio/subtitles."),
        keep_partial: bool = typer.Option(True, "--keep-partial/--no-partial", help="On Ctrl-C/failure keep playable *.partial.* outputs."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the model (torch)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    ) -> None:
        from ..errors import UsageError
        from ..registry import resolve
        from ..video.pipeline import parse_smooth
        from ..video.writer import OUTPUT_TYPES

        types = [t.strip().lower() for t in output_type.split(",") if t.strip()]
        bad = [t for t in types if t not in OUTPUT_TYPES]
        if bad or not types:
            raise UsageError(f"--output-type {output_type!r}: use one or more of {', '.join(OUTPUT_TYPES)}")
        parse_smooth(smooth)

        # model entry first (cheap, no torch): unknown names and missing inputs fail before any decoding
        auto = model.strip().lower() == "auto"
        name = ("bgmv2" if bg else "rvm") if auto else model
        entry, _ = resolve(name)
        if "background" in entry.requires and not bg:
            raise UsageError(f"model {entry.name} needs a clean background plate: pass --bg plate.png|plate.mp4")
        if "trimap" in entry.requires and not trimap:
            raise UsageError(f"model {entry.name} needs a trimap per frame: pass --trimap FOLDER|PATTERN|VIDEO")
        if align and "align" not in entry.options:
            raise UsageError(f"--align: model {entry.name} takes no background plate to align")
        opts = model_options(entry, option, **({"align": True} if align else {}))

        try:
            _run(input, fps, types, output, template, lossless, codec, crf, preset, bits, entry, opts,
                 downsample_ratio, threads, name, weights, device, precision, auto, bg, quiet, batch_size, trimap,
                 composite_bg, smooth, no_audio, keep_partial)
        except Exception as e:
            from ..errors import MatteError

            if isinstance(e, MatteError):
                raise
            import av

            if isinstance(e, (OSError, av.error.FFmpegError)):
                raise _one_line_os_error(e, output or input) from None
            raise


def _run(input, fps, types, output, template, lossless, codec, crf, preset, bits, entry, opts, downsample_ratio,
         threads, name, weights, device, precision, auto, bg, quiet, batch_size, trimap, composite_bg, smooth,
         no_audio, keep_partial) -> None:
    from ..errors import UsageError, WeightsUnavailable
    from ..video.pipeline import VideoJob, rvm_auto_downsample, run_video
    from ..video.reader import VideoSource
    from ..video.writer import plan_output

    source = VideoSource(input, fps=fps)
    try:
        info = source.info
        targets = output_targets(input, types, output, template)
        plans = [plan_output(t, targets[t], lossless=lossless, codec=codec, crf=crf, preset=preset,
                             bits=bits, frame_count=info.frame_count) for t in types]
        ratio = None
        if "downsample_ratio" in entry.options and "downsample_ratio" not in opts:
            dr = downsample_ratio.strip().lower()
            if dr in ("auto", "auto-portrait"):
                ratio = rvm_auto_downsample(info.height, info.width)
            elif dr in ("auto-fullbody", "auto-full-body"):
                ratio = rvm_auto_downsample(info.height, info.width, "full-body")
            else:
                try:
                    ratio = float(dr)
                except ValueError:
                    raise UsageError(f"--downsample-ratio {downsample_ratio!r}: use auto, auto-fullbody or a "
                                     "number in (0, 1]") from None
                if not 0 < ratio <= 1:
                    raise UsageError(f"--downsample-ratio {ratio}: must be in (0, 1]")
            opts["downsample_ratio"] = ratio
        elif downsample_ratio.strip().lower() != "auto" and "downsample_ratio" not in entry.options:
            raise UsageError(f"--downsample-ratio applies to models with that option (rvm), not {entry.name}")

        if threads:
            from ..runtime import set_threads

            set_threads(threads)
        import mattecli

        try:
            if entry.weights:
                backend = mattecli.load_model(name, weights=weights, device=device, precision=precision, **opts)
            else:
                backend = mattecli.load_model(name, weights=weights, **opts)
        except WeightsUnavailable as e:
            if auto:
                why = "--bg was given" if bg else "no --bg was given"
                raise WeightsUnavailable(f"--model auto picked {entry.name} ({why}): {e}") from None
            raise
        if not quiet:
            dev = getattr(backend, "device", "cpu")
            extra = f", downsample_ratio {ratio:g}" if ratio else ""
            print(f"mattecli: {info.path}: {info.describe()}; model {entry.name} on {dev}{extra}, "
                  f"batch {batch_size}", file=sys.stderr)
            for p in plans:
                print(f"mattecli:   -> {p.describe()}", file=sys.stderr)
        job = VideoJob(outputs=plans, batch_size=batch_size, plate=bg, trimap=trimap,
                       composite_bg=composite_bg, smooth=smooth, audio=not no_audio,
                       progress=not quiet, keep_partial=keep_partial)
        notes: list[str] = []
        restore = _interrupt_on_sigterm()
        try:
            res = run_video(source, backend, job, notes=notes)
        finally:
            restore()
            for n in dict.fromkeys(notes):
                warn_line(n)
    finally:
        source.close()
    for path in res.outputs:
        print(path)
    if not quiet:
        print(f"mattecli: {res.frames} frames in {res.seconds:.1f} s ({res.fps:.2f} fps)", file=sys.stderr)
