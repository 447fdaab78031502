#!/usr/bin/env python
"""Benchmark of ``mattecli video``: end-to-end frames/s against its two halves, and peak memory.

Measures, side by side in one run (each phase in its own subprocess so peak RSS is per phase):

  (a) model alone   - RVM ``predict_batch`` on frames decoded into memory beforehand
  (b) decode+encode - the same pipeline with a no-op model (decode thread -> encode thread, same codec settings)
  (c) end to end    - decode -> RVM -> encode, streamed
  (d) long clip     - a low-resolution clip of several minutes through (c), RSS sampled along the way

The clip is made from a real photo with a slow pan (default ../shared/data/bmv2_pair/test_fg.jpg). The target is
(c) >= 85 % of the serial-sum ceiling 1 / (1/a + 1/b). Run a short version with e.g. ``--frames 60 --size
960x540 --long-seconds 20``; ``--model modnet`` for an image model; ``--presets`` to compare x264 presets.

    python benchmarks/video_pipeline.py --help
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def keep_cache_home() -> None:
    """tests/conftest.py (imported for the oracles' weights) gives a process without MATTECLI_HOME a fresh temporary
    cache: pin the user's cache first, so that exports and their checks are reused across runs as in real use."""
    from mattecli.weights import home

    os.environ.setdefault("MATTECLI_HOME", str(home()))
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
DEFAULT_PHOTO = SHARED / "data" / "bmv2_pair" / "test_fg.jpg"
DEFAULT_WEIGHTS = SHARED / "weights" / "rvm_mobilenetv3_fp32.onnx"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_pan_clip(photo: Path, out: Path, frames: int, w: int, h: int, fps: Fraction = Fraction(30000, 1001)):
    """A slow horizontal pan + zoom over a photo, H.264 (ultrafast, crf 16) with a sine audio track."""
    import av
    import cv2
    import numpy as np

    img = cv2.imread(str(photo))[..., ::-1]
    if img is None:
        raise SystemExit(f"{photo}: cannot read the photo")
    ih, iw = img.shape[:2]
    # scale so that the photo is 15 % larger than the frame, then pan across the slack
    s = max(w / iw, h / ih) * 1.15
    big = cv2.resize(img, (int(iw * s + 0.5), int(ih * s + 0.5)), interpolation=cv2.INTER_AREA)
    bh, bw = big.shape[:2]
    c = av.open(str(out), "w")
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = {"preset": "ultrafast", "crf": "16", "x264-params": "log-level=error"}
    a = c.add_stream("aac", rate=48000)
    a.layout = "mono"
    for i in range(frames):
        t = i / max(1, frames - 1)
        x = int(round((bw - w) * t))
        y = int(round((bh - h) * (0.5 + 0.5 * np.sin(2 * np.pi * t)) / 1.0 * 0.5))
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[y:y + h, x:x + w]), format="rgb24")
        f.pts = i
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode(None):
        c.mux(p)
    secs = frames / float(fps)
    n = int(secs * 48000)
    block = 48000
    for k in range(0, n, block):
        m = min(block, n - k)
        tt = (np.arange(m) + k) / 48000
        af = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 330 * tt)).astype(np.float32)[None],
                                        format="flt", layout="mono")
        af.sample_rate, af.pts = 48000, k
        for p in a.encode(af):
            c.mux(p)
    for p in a.encode(None):
        c.mux(p)
    c.close()


class NullBackend:
    """No model: alpha = 1, foreground = the frame (what is left is decode, transfer, composition, encode)."""

    device = None

    def reset(self):
        pass

    def predict_batch(self, batch):
        import torch

        from mattecli.backends.base import Prediction

        x = batch.float_image()
        return Prediction(alpha=torch.ones_like(x[:, :1]), foreground=x)


def load_rvm(args):
    import mattecli

    if args.model != "rvm":
        return load_image_model(args)
    w = args.weights
    if w and Path(w).is_file():
        return mattecli.load_model("rvm", weights=w, device=args.device, precision=args.precision,
                                   **({"downsample_ratio": args.downsample_ratio} if args.downsample_ratio else {})), \
            "real (" + Path(w).name + ")"
    sys.path.insert(0, str(ROOT / "tests"))
    keep_cache_home()
    from conftest import Oracle  # noqa: E402  (synthetic official-layout weights; same network, same cost)

    return mattecli.load_model("rvm", weights=Oracle("rvm_mobilenetv3").torch_weights(), device=args.device,
                               precision=args.precision,
                               **({"downsample_ratio": args.downsample_ratio} if args.downsample_ratio else {})), \
        "synthetic (real weights not found)"


def load_image_model(args):
    """An image model (MODNet by default) with synthetic weights from ../shared/oracles (same network, same cost)."""
    import mattecli

    sys.path.insert(0, str(ROOT / "tests"))
    keep_cache_home()
    from conftest import Oracle  # noqa: E402

    folder = {"modnet": "modnet_mobilenetv2", "bgmv2.mobilenetv2": "bgmv2_mobilenetv2"}[args.model]
    m = mattecli.load_model(args.model, weights=Oracle(folder).torch_weights(), device=args.device,
                            precision=args.precision)
    return m, f"synthetic ({folder})"


def phase(args) -> dict:
    """Run one phase in this process; returns a dict of figures."""
    import torch

    from mattecli.backends.base import Batch
    from mattecli.backends.rvm.adapter import auto_downsample_ratio
    from mattecli.video.encode_plan import plan_output
    from mattecli.video.job import VideoJob
    from mattecli.video.pipeline import VideoPipeline
    from mattecli.video.reader import VideoSource

    if args.threads:
        torch.set_num_threads(args.threads)
    clip = args.clip
    res: dict = {"phase": args.phase}
    if args.phase == "model":
        src = VideoSource(clip)
        if not args.downsample_ratio and args.model == "rvm":
            args.downsample_ratio = auto_downsample_ratio(src.info.height, src.info.width)
        k = min(args.frames, args.model_frames)
        frames = []
        for f in src.frames():
            frames.append(f.image)
            if len(frames) >= k:
                break
        src.close()
        model, res["weights"] = load_rvm(args)
        import numpy as np

        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)   # uint8 [N,3,H,W], as the pipeline feeds it
        model.reset()
        with torch.inference_mode():   # warm-up (one batch), not timed
            model.predict_batch(Batch(image=x[: args.batch_size].to(model.device)))
            model.reset()
            t0 = time.perf_counter()
            done = 0
            for i in range(0, len(frames), args.batch_size):
                xb = x[i:i + args.batch_size].to(model.device)
                model.predict_batch(Batch(image=xb)).alpha.cpu()
                done += xb.shape[0]
            dt = time.perf_counter() - t0
        res.update(frames=done, seconds=dt, fps=done / dt, downsample_ratio=args.downsample_ratio,
                   runtime=model.runtime_line())
    else:
        src = VideoSource(clip)
        info = src.info
        if args.phase in ("e2e", "long"):
            if not args.downsample_ratio and args.model == "rvm":
                args.downsample_ratio = auto_downsample_ratio(info.height, info.width)
            model, res["weights"] = load_rvm(args)
            res["downsample_ratio"] = args.downsample_ratio
        else:
            model = NullBackend()
        out = Path(args.workdir) / f"out_{args.phase}_{args.preset or 'default'}{args.out_ext}"
        plan = plan_output(args.output_type, str(out), preset=args.preset)
        job = VideoJob([plan], batch_size=args.batch_size, progress=False)
        pipe = VideoPipeline(src, model, job)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(0.5):
                samples.append((getattr(pipe, "frames_done", 0), current_rss_mb()))
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        r = pipe.run()
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        res.update(frames=r.frames, seconds=dt, fps=r.frames / dt, output=str(out), bytes=out.stat().st_size)
        if args.phase == "long" and samples:
            n = r.frames
            marks = {}
            for q in (0.1, 0.25, 0.5, 0.75, 1.0):
                cands = [s for s in samples if s[0] <= q * n]
                if cands:
                    marks[f"{int(q * 100)}%"] = round(cands[-1][1], 1)
            res["rss_along_mb"] = marks
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return res


def run_phase(args, name: str, clip: Path, frames: int) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--clip", str(clip), "--frames", str(frames),
           "--model", args.model,
           "--workdir", args.workdir, "--batch-size", str(args.batch_size), "--device", args.device,
           "--precision", args.precision, "--output-type", args.output_type, "--out-ext", args.out_ext,
           "--model-frames", str(args.model_frames)] + (["--preset", args.preset] if args.preset else [])
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.downsample_ratio:
        cmd += ["--downsample-ratio", str(args.downsample_ratio)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def presets(args, clip: Path, w: int, h: int, load) -> None:
    """Phase (b) once per x264 preset: what the encoder costs at each, and what it saves in bytes."""
    rows = []
    for p in args.presets or ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]:
        args.preset = p
        rows.append((p, run_phase(args, "codec", clip, args.frames)))
    print(f"\ndecode + {args.output_type}{args.out_ext} encode, no model: {w}x{h}, {args.frames} frames, x264 crf as "
          f"planned; load average at start {load[0]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| {'preset':10s} | {'frames/s':>8s} | {'MB':>7s} | {'size vs fast':>12s} | {'PSNR dB':>7s} | "
          f"{'peak RSS MB':>11s} |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 9}|{'-' * 14}|{'-' * 9}|{'-' * 13}|")
    ref = next((r["bytes"] for p, r in rows if p == "fast"), rows[0][1]["bytes"])
    for p, r in rows:
        q = psnr(clip, Path(r["output"])) if args.output_type == "composite" else float("nan")
        print(f"| {p:10s} | {r['fps']:8.2f} | {r['bytes'] / 1e6:7.2f} | {r['bytes'] / ref:11.2f}x | {q:7.2f} | "
              f"{r['peak_rss_mb']:11.0f} |")
    print("(no model: alpha = 1, so the composite is the input frame; luma PSNR of the output against the input clip)")


def psnr(a: Path, b: Path) -> float:
    """Mean luma PSNR (dB) of clip b against clip a over their common frames (the Y planes: what the encoder lost,
    without the RGB <-> YUV round trip's own rounding)."""
    import av
    import numpy as np

    ca, cb = av.open(str(a)), av.open(str(b))
    vals = []
    for fa, fb in zip(ca.decode(video=0), cb.decode(video=0)):
        x = fa.to_ndarray(format="gray").astype(np.float32)
        y = fb.to_ndarray(format="gray").astype(np.float32)
        mse = float(np.mean((x - y) ** 2))
        vals.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
    ca.close()
    cb.close()
    return float(np.mean(vals))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames of the benchmark clip (default 300)")
    ap.add_argument("--size", default="1920x1080", help="WxH of the benchmark clip (default 1920x1080)")
    ap.add_argument("--photo", default=str(DEFAULT_PHOTO), help="photo the clip pans over")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.is_file() else None,
                    help="RVM weights (default: ../shared/weights/rvm_mobilenetv3_fp32.onnx; else synthetic)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--downsample-ratio", type=float, default=None, help="default: auto (authors' table)")
    ap.add_argument("--output-type", default="composite")
    ap.add_argument("--out-ext", default=".mp4")
    ap.add_argument("--preset", default=None, help="x264 preset of the output (default: the CLI's default)")
    ap.add_argument("--model-frames", type=int, default=48, help="frames held in memory for phase (a)")
    ap.add_argument("--model", default="rvm", choices=["rvm", "modnet", "bgmv2.mobilenetv2"],
                    help="rvm (real weights when found) or an image model with synthetic weights")
    ap.add_argument("--presets", nargs="*", default=None,
                    help="instead: decode + encode alone with each of these x264 presets (frames/s, file size)")
    ap.add_argument("--long-seconds", type=float, default=180.0, help="length of the long clip (0 = skip)")
    ap.add_argument("--long-size", default="256x144", help="WxH of the long clip")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--workdir", default=None, help="where clips and outputs go (default: a temp folder)")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.phase:
        print(json.dumps(phase(args)))
        return

    args.workdir = args.workdir or tempfile.mkdtemp(prefix="mattecli_bench_")
    os.makedirs(args.workdir, exist_ok=True)
    w, h = (int(v) for v in args.size.lower().split("x"))
    clip = Path(args.workdir) / f"pan_{w}x{h}_{args.frames}.mp4"
    if not clip.exists():
        t0 = time.perf_counter()
        make_pan_clip(Path(args.photo), clip, args.frames, w, h)
        print(f"made {clip} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    load = os.getloadavg()
    if args.presets is not None:
        presets(args, clip, w, h, load)
        return
    rows = []
    a = run_phase(args, "model", clip, args.frames)
    rows.append(("(a) model alone (pre-decoded)", a))
    b = run_phase(args, "codec", clip, args.frames)
    rows.append(("(b) decode + encode, no model", b))
    c = run_phase(args, "e2e", clip, args.frames)
    rows.append(("(c) end to end", c))
    long_row = None
    if args.long_seconds > 0:
        lw, lh = (int(v) for v in args.long_size.lower().split("x"))
        nl = int(args.long_seconds * 30000 / 1001)
        lclip = Path(args.workdir) / f"pan_{lw}x{lh}_{nl}.mp4"
        if not lclip.exists():
            make_pan_clip(Path(args.photo), lclip, nl, lw, lh)
        long_row = run_phase(args, "long", lclip, nl)
        rows.append((f"(d) long clip {lw}x{lh}, {nl} frames", long_row))

    print(f"\nmattecli video benchmark: {w}x{h}, {args.frames} frames, {args.model} {c.get('weights', '')}, "
          f"downsample_ratio {c.get('downsample_ratio')}, batch {args.batch_size}, device {args.device}, "
          f"output {args.output_type}{args.out_ext} (x264 preset {args.preset or 'default'})")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs\n")
    print(f"| {'phase':44s} | {'frames':>6s} | {'seconds':>8s} | {'frames/s':>8s} | {'peak RSS MB':>11s} |")
    print(f"|{'-' * 46}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for name, r in rows:
        print(f"| {name:44s} | {r['frames']:6d} | {r['seconds']:8.1f} | {r['fps']:8.2f} | {r['peak_rss_mb']:11.0f} |")
    bound = min(a["fps"], b["fps"])
    serial = 1 / (1 / a["fps"] + 1 / b["fps"])
    print(f"\nserial-sum ceiling 1 / (1/a + 1/b) = {serial:.2f} frames/s; end to end = {c['fps']:.2f} = "
          f"{100 * c['fps'] / serial:.0f} % of it (target >= 85 %)")
    print(f"end to end / min(a, b) = {c['fps']:.2f} / {bound:.2f} = {100 * c['fps'] / bound:.0f} %")
    print(f"model: {a.get('runtime', '')}")
    if long_row and long_row.get("rss_along_mb"):
        print("long clip RSS along the run (MB): " + ", ".join(f"{k} {v}" for k, v in long_row["rss_along_mb"].items()))
    print(f"\nclips and outputs in {args.workdir}")


if __name__ == "__main__":
    main()
