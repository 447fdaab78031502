#!/usr/bin/env python
"""Benchmark of ``--executor ray``: throughput with 1 and 2 local Ray workers against the local executor, and what
the warm-up frames of a segmented clip buy a temporal model.

  (a) images    - closed-form and RVM on N small images: images/s local (torch's threads, and 1 thread as a Ray
                  worker has), Ray 1 worker, Ray 2 workers (the run itself; starting Ray and the workers is
                  reported apart, it is paid once per run)
  (b) clip      - RVM on one clip: frames/s of a sequential run against the same clip cut at keyframes into
                  segments on 2 Ray workers (warm-up frames, segment encodes and the stream-copy join included)
  (c) warm      - RVM segments started cold (N = 0) or after N warm-up frames, against the sequential run: the
                  alpha difference (0..255 levels) over the frames of the segments after a cut, and over their
                  first 8 frames: mean, share of pixels more than 8 levels off, 99.9th percentile, largest
  (d) overhead  - a no-op task (copy a 1-pixel PNG) on many items: the executor's own milliseconds per item

The clip is a slow pan over a real photo (``../shared/data/bmv2_pair/test_fg.jpg``), keyframes every ``--gop``
frames; RVM's weights are ``../shared/weights/rvm_mobilenetv3_fp32.onnx``. A short run:

    python benchmarks/ray_scaleout.py --images 8 --frames 96 --gop 24 --warm 0,8,32
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtimes import PeakRSS  # noqa: E402  (benchmarks/runtimes.py)
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
PHOTO = SHARED / "data" / "bmv2_pair" / "test_fg.jpg"
WEIGHTS = SHARED / "weights" / "rvm_mobilenetv3_fp32.onnx"


def make_clip(out: Path, frames: int, w: int, h: int, gop: int) -> None:
    """A slow pan + zoom over the photo, H.264 with B-frames and a keyframe every ``gop`` frames, AAC audio."""
    import av
    import cv2

    img = cv2.imread(str(PHOTO))[..., ::-1]
    ih, iw = img.shape[:2]
    c = av.open(str(out), "w")
    v = c.add_stream("libx264", rate=24)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = {"preset": "fast", "crf": "16", "g": str(gop), "keyint_min": str(gop),
                 "x264-params": "log-level=error"}
    a = c.add_stream("aac", rate=48000)
    a.layout = "mono"
    for i in range(frames):
        t = i / max(1, frames - 1)
        cw, ch = int(iw * (0.75 - 0.1 * t)), int(ih * (0.75 - 0.1 * t))
        x, y = int((iw - cw) * (0.2 + 0.5 * t)), int((ih - ch) * 0.5)
        crop = cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
        f.pts = i
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode(None):
        c.mux(p)
    n = int(frames / 24 * 48000)
    af = av.AudioFrame.from_ndarray((0.1 * np.sin(np.arange(n) / 48000 * 2 * np.pi * 330)).astype(np.float32)[None],
                                    format="flt", layout="mono")
    af.sample_rate, af.pts = 48000, 0
    for p in a.encode(af):
        c.mux(p)
    for p in a.encode(None):
        c.mux(p)
    c.close()


def make_images(folder: Path, n: int, size: int) -> None:
    """n crops of the photo (size x size) with a trimap made from a centred ellipse (closed-form needs one)."""
    import cv2

    img = cv2.imread(str(PHOTO))
    (folder / "imgs").mkdir(parents=True)
    (folder / "tri").mkdir()
    ih, iw = img.shape[:2]
    for i in range(n):
        x = int((iw - ih) * i / max(1, n - 1))
        crop = cv2.resize(img[:, x:x + ih], (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / "imgs" / f"im{i:03d}.png"), crop)
        tri = np.zeros((size, size), np.uint8)
        cv2.ellipse(tri, (size // 2, size // 2), (size // 4, size // 3), 0, 0, 360, 128, -1)
        cv2.ellipse(tri, (size // 2, size // 2), (size // 6, size // 4), 0, 0, 360, 255, -1)
        cv2.imwrite(str(folder / "tri" / f"im{i:03d}.png"), tri)


def _items(folder: Path, out: Path, model: str):
    from mattecli import batch

    items = batch.expand_inputs([folder / "imgs"])
    batch.pair(items, folder / "tri", "trimap")
    for it in items:
        it.info["outputs"] = [out / f"{it.stem}_alpha.png"]
    return items


def worker_peak_mb(ex) -> float:
    """Peak resident memory (VmHWM) of the Ray workers of ``ex`` on this machine, summed (0 for local)."""
    total = 0.0
    for _node, pid in (getattr(ex, "info", None) or {}).get("pids", []):
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration, ValueError):
            pass
    return total


@contextlib.contextmanager
def torch_threads(n: int | None):
    """The local executor with ``n`` torch threads (None: torch's default, one per core); a Ray worker has 1."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_images(folder: Path, model: str, workers: int | None, threads: int | None = None) -> dict:
    """One batch of images; workers None = local (with ``threads`` torch threads). Start-up and run seconds."""
    from mattecli.batch import executors
    from mattecli.batch.runner import BatchRunner, planned_outputs
    from mattecli.tasks.matte import MatteTask

    out = folder / f"out_{model}_{workers or 'local'}_{threads}_{time.monotonic_ns()}"
    items = _items(folder, out, model)
    task = MatteTask(model=model, types=["alpha"], weights=str(WEIGHTS) if model == "rvm" else None,
                     device="cpu")
    ex = None
    if workers:
        from mattecli.batch.executors.ray_pool import RayExecutor

        ex = RayExecutor(workers=workers, quiet=True)
    with torch_threads(threads), contextlib.redirect_stdout(io.StringIO()), PeakRSS() as peak:
        t0 = time.perf_counter()
        executors.prepare(ex, task, count=len(items))
        t1 = time.perf_counter()
        code = BatchRunner(verb="matte", quiet=True, progress=False).run(items, task, planned=planned_outputs,
                                                                         executor=ex)
        t2 = time.perf_counter()
    assert code == 0, code
    return {"startup_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2), "items_per_s": round(len(items) / (t2 - t1), 3),
            "driver_peak_mb": round(peak.peak), "workers_peak_mb": round(worker_peak_mb(ex))}


class CopyTask:
    """No model: copy the input to its output (what is left is the executor's own cost per item)."""

    def load(self):
        return None

    def __call__(self, it):
        from mattecli.imaging.io import atomic_write_bytes

        out = it.info["outputs"][0]
        atomic_write_bytes(out, Path(it.path).read_bytes())
        return {"outputs": [out]}


def run_overhead(folder: Path, n: int, workers: int | None) -> dict:
    """ms per item of a no-op task: the executor's own cost (dispatch, pickling, report, atomic write)."""
    from mattecli import batch
    from mattecli.batch import executors
    from mattecli.batch.runner import BatchRunner, planned_outputs

    src = folder / "noop"
    if not src.exists():
        src.mkdir()
        for i in range(n):
            (src / f"n{i:04d}.png").write_bytes(PNG_1x1)
    out = folder / f"noop_out_{workers or 'local'}_{time.monotonic_ns()}"
    items = batch.expand_inputs([src])
    for it in items:
        it.info["outputs"] = [out / it.path.name]
    ex = None
    if workers:
        from mattecli.batch.executors.ray_pool import RayExecutor

        ex = RayExecutor(workers=workers, quiet=True)
    task = CopyTask()
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        executors.prepare(ex, task, count=len(items))
        t1 = time.perf_counter()
        BatchRunner(verb="copy", quiet=True, progress=False).run(items, task, planned=planned_outputs, executor=ex)
        t2 = time.perf_counter()
    return {"startup_s": round(t1 - t0, 2), "ms_per_item": round(1000 * (t2 - t1) / len(items), 2)}


PNG_1x1 = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                        "3a7e9b550000000a49444154789c63600000000200015e2a2b2e0000000049454e44ae426082")


def _clip_task(rvm_kw: dict, **kw):
    from mattecli.video.clip_task import ClipTask
    from mattecli.video.settings import VideoSettings

    s = VideoSettings(inputs=[], output_type="alpha", batch_size=4, quiet=True, device="cpu",
                      weights=str(WEIGHTS))
    return ClipTask(settings=s, name="rvm", label="rvm", options=rvm_kw, ratio_option=True, temporal=True, **kw)


def _clip_item(src: Path, out: Path):
    from mattecli.batch import Item
    from mattecli.video.encode_plan import plan_output

    return Item(path=src, rel=Path(src.name), info={"plans": [plan_output("alpha", str(out), lossless=True)]})


def run_clip(src: Path, folder: Path, workers: int | None, warm: int, min_frames: int,
             threads: int | None = None) -> dict:
    from mattecli.batch import executors
    from mattecli.batch.runner import BatchRunner
    from mattecli.video.clip_task import clip_outputs
    from mattecli.video.targets import output_complete

    task = _clip_task({}, warm=warm, min_segment_frames=min_frames)
    ex = None
    if workers:
        from mattecli.batch.executors.ray_pool import RayExecutor

        ex = RayExecutor(workers=workers, quiet=True)
    name = f"clip_{workers or 'local'}_{threads}_{time.monotonic_ns()}"
    it = _clip_item(src, folder / f"{name}.mkv")
    rep = folder / f"{name}.json"
    with torch_threads(threads), contextlib.redirect_stdout(io.StringIO()), PeakRSS() as peak:
        t0 = time.perf_counter()
        executors.prepare(ex, task, count=1)
        t1 = time.perf_counter()
        code = BatchRunner(verb="video", quiet=True, progress=False, report=rep, is_complete=output_complete).run(
            [it], task, planned=clip_outputs, executor=ex)
        t2 = time.perf_counter()
    assert code == 0, code
    row = json.loads(rep.read_text())["items"][0]
    return {"startup_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2), "frames": row["frames"],
            "frames_per_s": round(row["frames"] / (t2 - t1), 3), "segments": row.get("segments", 1),
            "driver_peak_mb": round(peak.peak), "workers_peak_mb": round(worker_peak_mb(ex))}


def _alphas(path) -> list:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]


def run_warm(src: Path, folder: Path, warms: list, parts: int, min_frames: int) -> list:
    """Segments run here one after another (the numbers do not depend on where they run)."""
    import mattecli
    from mattecli.video import segments as S
    from mattecli.video.encode_plan import plan_output
    from mattecli.video.join import join_segments
    from mattecli.video.reader import VideoSource

    model = mattecli.load_model("rvm", weights=str(WEIGHTS), device="cpu")
    task = _clip_task({})
    task._backend = model
    seq = folder / "warm_seq.mkv"
    task(_clip_item(src, seq))
    ref = _alphas(seq)
    idx = S.key_index(str(src))
    info = VideoSource(str(src)).info
    rows = []
    for n in warms:
        segs = S.plan_segments(idx, parts, warm=n, min_frames=min_frames)
        plan = plan_output("alpha", str(folder / f"warm_{n}.mkv"), lossless=True)
        t0 = time.perf_counter()
        for seg in segs:
            S.run_segment(model, str(src), seg, info, [plan], batch_size=4)
        secs = time.perf_counter() - t0
        files = [S.segment_plans([plan], seg.index)[0].path for seg in segs]
        join_segments(plan, files, info, starts=[seg.start_pts for seg in segs], audio=False)
        for f in files:
            os.remove(f)
        got = _alphas(plan.path)
        d = [np.abs(a - b) for a, b in zip(ref, got)]
        cut = [s for s in segs if s.first > 0]
        every = np.stack([d[i] for s in cut for i in range(s.first, s.stop)])
        head = np.stack([d[i] for s in cut for i in range(s.first, min(s.stop, s.first + 8))])
        rows.append({"warm": n, "segments": len(segs), "frames": len(every),
                     "mean": round(float(every.mean()), 4), "first8_mean": round(float(head.mean()), 4),
                     "over8_pct": round(100 * float((every > 8).mean()), 4),
                     "first8_over8_pct": round(100 * float((head > 8).mean()), 4),
                     "p999": int(np.percentile(every, 99.9)), "max": int(every.max()),
                     "seconds": round(secs, 1)})
        print(f"  warm {n:3d}: {rows[-1]}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=32, help="images per batch (a)")
    ap.add_argument("--image-size", type=int, default=128, help="closed-form image side (a)")
    ap.add_argument("--rvm-image-size", type=int, default=256, help="RVM image side (a)")
    ap.add_argument("--frames", type=int, default=160, help="clip length (b, c)")
    ap.add_argument("--size", default="320x180", help="clip size WxH (b, c)")
    ap.add_argument("--gop", type=int, default=32, help="keyframe interval of the clip")
    ap.add_argument("--workers", default="1,2", help="Ray worker counts (a)")
    ap.add_argument("--warm", default="0,8,32", help="warm-up frame counts (c)")
    ap.add_argument("--parts", type=int, default=4, help="segments for (c)")
    ap.add_argument("--only", default="overhead,images,clip,warm", help="which parts to run")
    ap.add_argument("--noop", type=int, default=200, help="items of the no-op task (d)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration (the best one counts)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    for p in (PHOTO, WEIGHTS):
        if not p.exists():
            print(f"{p} is missing (../shared)", file=sys.stderr)
            return 2
    only = set(args.only.split(","))
    w, h = (int(v) for v in args.size.split("x"))
    res: dict = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="mattecli-ray-bench-") as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)
        src = tmp / "clip.mp4"
        make_clip(src, args.frames, w, h, args.gop)
        if only & {"overhead", "images", "clip"}:
            import ray

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            t0 = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            res["ray_init_s"] = round(time.perf_counter() - t0, 2)
            print(f"ray.init: {res['ray_init_s']} s", flush=True)
        if "overhead" in only:
            rows = {"local": run_overhead(tmp, args.noop, None)}
            for n in (int(x) for x in args.workers.split(",")):
                rows[f"ray{n}"] = run_overhead(tmp, args.noop, n)
            print(f"no-op ({args.noop} items): {rows}", flush=True)
            res["overhead"] = rows
        if "images" in only:
            for model, size in (("closed-form", args.image_size), ("rvm", args.rvm_image_size)):
                folder = tmp / f"img_{model}"
                make_images(folder, args.images, size)
                run_images(folder, model, None)            # this process's first run: imports, JIT, caches
                runs = [("local", None, None), ("local_1thread", None, 1)]
                runs += [(f"ray{n}", n, None) for n in (int(x) for x in args.workers.split(","))]
                rows = {}
                for name, workers, threads in runs:
                    tries = [run_images(folder, model, workers, threads) for _ in range(args.repeat)]
                    rows[name] = max(tries, key=lambda r: r["items_per_s"])
                print(f"{model} ({args.images} images, {size}x{size}): {rows}", flush=True)
                res[f"images_{model}"] = rows
        if "clip" in only:
            from mattecli.video.segments import DEFAULT_WARM

            runs = [("local", None, None), ("local_1thread", None, 1)]
            runs += [(f"ray{n}", n, None) for n in (int(x) for x in args.workers.split(","))]
            rows = {}
            for name, workers, threads in runs:
                tries = [run_clip(src, tmp, workers, DEFAULT_WARM, args.gop, threads) for _ in range(args.repeat)]
                rows[name] = max(tries, key=lambda r: r["frames_per_s"])
            print(f"rvm clip ({args.frames} frames, {args.size}): {rows}", flush=True)
            res["clip_rvm"] = rows
        if only & {"overhead", "images", "clip"}:
            import ray

            ray.shutdown()
        if "warm" in only:
            print(f"rvm warm-up ({args.frames} frames, {args.parts} segments):", flush=True)
            res["warm_rvm"] = run_warm(src, tmp, [int(x) for x in args.warm.split(",")], args.parts, args.gop)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
