#!/usr/bin/env python3
"""Robust Video Matting: our PyTorch port versus onnxruntime running the authors' ONNX export, on this CPU.

Both sides use the same weights file (``rvm_mobilenetv3_fp32.onnx``: our loader imports its initialisers), the same
real frames (the bmv2 photo of a person, shifted by a few pixels per frame so that it is a moving sequence) and the
same number of intra-op threads. Each configuration runs in a fresh subprocess, so ``peak MB`` is that process's
``ru_maxrss`` (interpreter + library + weights + activations; the ``base MB`` column is the RSS after loading, before
the first frame).

  ours  : mattecli.load_model("rvm", weights=ONNX, runtime="torch") -> predict_batch(Batch(frames[B,3,H,W])) (B
          consecutive frames of one sequence, recurrent state carried), torch.inference_mode, BatchNorm folded (the
          ONNX has it folded too). The default runtime (auto: OpenVINO / onnxruntime + fused kernels) is compared in
          benchmarks/runtimes.py --rvm
  ort   : onnxruntime.InferenceSession(ONNX, CPUExecutionProvider); batch B = B consecutive frames, one call each
          (the export has no time axis and its batch axis holds independent clips), states carried

Configurations: 512x512 with downsample_ratio 1.0 and 1920x1080 with 0.25, batch 1 and 4. ``cpu ms/fr`` is the
process CPU time (user + sys) per frame: on a shared, oversubscribed machine it is steadier than wall time.
Extra rows with ``--variants`` show what the gap analysis tried (channels_last, 1 vs 2 threads, unfolded BN).

    python benchmarks/rvm.py                    # default: 8 timed frames per configuration, 2 threads
    python benchmarks/rvm.py --frames 16 --threads 1
    python benchmarks/rvm.py --threads 2 --passive   # shared/busy machine: no spin-waiting threads
    python benchmarks/rvm.py --variants         # + ours with an extra channels_last pass / unfolded BatchNorm
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
DEFAULT_ONNX = SHARED / "weights" / "rvm_mobilenetv3_fp32.onnx"
DEFAULT_PHOTO = SHARED / "data" / "bmv2_pair" / "test_fg.jpg"
CONFIGS = [((512, 512), 1.0), ((1080, 1920), 0.25)]


def make_frames(n: int, h: int, w: int, photo: Path):
    """n RGB float32 frames [n,3,h,w] in [0,1] from a real photo (resized to cover h x w, then panned)."""
    import cv2
    import numpy as np

    img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if img is None:
        rng = np.random.default_rng(0)  # no shared data: a textured synthetic frame
        img = (rng.random((h + 64, w + 64, 3)) * 255).astype(np.uint8)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    s = max((h + 4 * n) / img.shape[0], (w + 4 * n) / img.shape[1])
    img = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))),
                     interpolation=cv2.INTER_AREA)
    out = np.stack([img[2 * i:2 * i + h, 4 * i:4 * i + w] for i in range(n)])
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def worker(args) -> dict:
    import resource

    import numpy as np

    h, w = args.size
    batch, ratio = args.batch, args.ratio
    n = args.frames + args.warmup * batch
    frames = make_frames(n, h, w, Path(args.photo))
    if args.impl == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":  # --passive: no spinning on either side
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(args.weights, so, providers=["CPUExecutionProvider"])
        rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        r = np.array([ratio], np.float32)

        def step(x):   # B consecutive frames: one call each (the export's batch axis holds independent clips)
            nonlocal rec
            for i in range(x.shape[0]):
                fgr, pha, *rec = sess.run(None, {"src": x[i:i + 1], "r1i": rec[0], "r2i": rec[1], "r3i": rec[2],
                                                "r4i": rec[3], "downsample_ratio": r})
            return pha
    else:
        import torch

        torch.set_num_threads(args.threads)
        import mattecli
        from mattecli.backends.base import Batch
        from mattecli.backends.rvm.adapter import RVMAdapter

        RVMAdapter.fold_bn = args.impl != "ours-bn"
        weights = args.weights
        if args.impl == "ours-bn":  # the official .pth layout needs BN statistics: fake identity BN on top of ONNX
            weights = _unfolded_mapping(args.weights)
        m = mattecli.load_model("rvm", weights=weights, downsample_ratio=ratio, runtime="torch")
        if args.impl == "ours-cl":
            m.net.to(memory_format=torch.channels_last)

        def step(x):
            t = torch.from_numpy(x)
            if args.impl == "ours-cl":
                t = t.contiguous(memory_format=torch.channels_last)
            return m.predict_batch(Batch(t)).alpha
    base = rss_mb()
    times, cpu = [], []
    for i in range(0, n, batch):
        x = frames[i:i + batch]
        t0, c0 = time.perf_counter(), time.process_time()
        step(x)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    per_call = float(np.median(times[args.warmup:]))
    cpu_call = float(np.median(cpu[args.warmup:]))
    return {"impl": args.impl, "size": f"{w}x{h}", "ratio": ratio, "batch": batch, "threads": args.threads,
            "fps": batch / per_call, "ms_per_frame": 1000 * per_call / batch,
            "cpu_ms_per_frame": 1000 * cpu_call / batch, "base_mb": base,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _unfolded_mapping(onnx_path: str) -> dict:
    """Official .pth-style mapping from the ONNX weights: each folded conv gets an identity BatchNorm after it."""
    import torch

    from mattecli.backends.rvm.convert import expected_layout, folded_from_onnx

    folded = folded_from_onnx(onnx_path)
    want = expected_layout("mobilenetv3", folded=False, segmentation=True)
    out = {}
    for k, shape in want.items():
        if k.startswith("project_seg."):  # not in the export, unused by matting
            out[k] = torch.zeros(shape)
            continue
        if k in folded and tuple(folded[k].shape) == shape:
            out[k] = folded[k]
            continue
        parent, leaf = k.rsplit(".", 1)
        mod, idx = parent.rsplit(".", 1)
        bias = folded[f"{mod}.{int(idx) - 1}.bias"]  # the conv before this BN carried the folded bias
        c = bias.shape[0]
        eps = 1e-3 if k.startswith("backbone.") else 1e-5
        out[k] = {"weight": torch.ones(c), "bias": bias, "running_mean": torch.zeros(c),
                  "running_var": torch.full((c,), 1.0 - eps), "num_batches_tracked": torch.tensor(0)}[leaf]
    return out


def run_child(impl, size, ratio, batch, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--size", str(size[0]), str(size[1]), "--ratio", str(ratio),
           "--batch", str(batch), "--frames", str(args.frames), "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--weights", str(args.weights), "--photo", str(args.photo)]
    env = dict(os.environ)
    if args.passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # read by OpenMP when torch loads: idle threads sleep instead of spinning
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{impl} {size} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--weights", default=str(DEFAULT_ONNX), help="rvm_mobilenetv3_fp32.onnx (default: ../shared)")
    ap.add_argument("--photo", default=str(DEFAULT_PHOTO), help="photo the frames are cut from")
    ap.add_argument("--frames", type=int, default=8, help="timed frames per configuration (default 8)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for both sides (default 2)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--only", choices=["512", "1080"], help="run one resolution only")
    ap.add_argument("--passive", action="store_true",
                    help="idle worker threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE for torch, "
                         "allow_spinning=0 for onnxruntime): much faster with >1 thread on a busy machine")
    ap.add_argument("--variants", action="store_true", help="also ours with channels_last and with unfolded BN")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--ratio", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.impl = args.worker
        args.batch = args.batch[0]
        print(json.dumps(worker(args)))
        return
    if not Path(args.weights).is_file():
        raise SystemExit(f"{args.weights}: not found; pass --weights rvm_mobilenetv3_fp32.onnx "
                         "(`mattecli models fetch rvm` then `mattecli models path rvm`)")
    impls = ["ours", "ort"] + (["ours-cl", "ours-bn"] if args.variants else [])
    configs = [c for c in CONFIGS if args.only is None or str(c[0][0]) == args.only]
    rows = []
    print(f"{'impl':8} {'size':>9} {'ratio':>5} {'B':>2} {'thr':>3} {'frames/s':>9} {'ms/frame':>9} "
          f"{'cpu ms/fr':>9} {'base MB':>8} {'peak MB':>8}", flush=True)
    for size, ratio in configs:
        for b in args.batch:
            for impl in impls:
                r = run_child(impl, size, ratio, b, args)
                rows.append(r)
                print(f"{r['impl']:8} {r['size']:>9} {r['ratio']:>5} {r['batch']:>2} {r['threads']:>3} "
                      f"{r['fps']:9.2f} {r['ms_per_frame']:9.1f} {r['cpu_ms_per_frame']:9.1f} {r['base_mb']:8.0f} "
                      f"{r['peak_mb']:8.0f}",
                      flush=True)
    print("\nratio ours/ort (frames/s by wall clock, and by CPU time per frame; >1 = ours faster):")
    for size, ratio in configs:
        for b in args.batch:
            sel = {r["impl"]: r for r in rows if r["size"] == f"{size[1]}x{size[0]}" and r["batch"] == b}
            if "ours" in sel and "ort" in sel:
                cpu_ratio = sel["ort"]["cpu_ms_per_frame"] / sel["ours"]["cpu_ms_per_frame"]
                print(f"  {size[1]}x{size[0]} r={ratio} B={b}: wall {sel['ours']['fps'] / sel['ort']['fps']:.2f}x, "
                      f"cpu {cpu_ratio:.2f}x  "
                      f"(peak MB ours {sel['ours']['peak_mb']:.0f} / ort {sel['ort']['peak_mb']:.0f})")


if __name__ == "__main__":
    main()
