#!/usr/bin/env python3
"""Runtimes: each model's ``predict`` on eager torch, onnxruntime and OpenVINO, side by side (ratios in one process).

For each registry entry (synthetic weights from ../shared/oracles, the same mapping for every runtime), one
subprocess loads the model once per runtime, runs one untimed call per size (the export + the first-call check),
then ``--reps`` rounds that time every runtime in turn (interleaved, so a change of machine load hits all of them);
the median is reported. ``peak MB`` is the largest resident-memory increase during a timed call (sampled every
2 ms: activations and engine workspaces), ``load MB`` what loading the runtime added (weights + engine).
``auto`` is what ``--runtime auto`` picks for the entry today. The last lines propose each entry's
``runtimes={"cpu": (...)}`` order: the runtimes faster than torch by more than 10 % at both sizes, fastest first.

RVM (``--rvm``): the real weights (../shared/weights/rvm_mobilenetv3_fp32.onnx), 1920x1080 frames cut from a real
photo, downsample 0.25 (the default ratio): ``load_model("rvm").predict`` (defaults: runtime auto) and
``predict_batch`` of 4 frames against onnxruntime on the authors' own ONNX export (one frame per call, states
carried: the export has no time axis) and against eager torch; ``--memory`` adds each one's peak RSS, alone in a
process.

    python benchmarks/runtimes.py                     # every entry, 512x512 and 1920x1080, 3 rounds
    python benchmarks/runtimes.py --models modnet fba --sizes 512x512 --reps 5
    python benchmarks/runtimes.py --rvm --reps 8
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def keep_cache_home() -> None:
    """tests/conftest.py (imported for the oracles' weights) gives a process without MATTECLI_HOME a fresh temporary
    cache: pin the user's cache first, so that exports and their checks are reused across runs as in real use."""
    from mattecli.weights import home

    os.environ.setdefault("MATTECLI_HOME", str(home()))
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
RVM_ONNX = SHARED / "weights" / "rvm_mobilenetv3_fp32.onnx"
PHOTO = SHARED / "data" / "bmv2_pair" / "test_fg.jpg"

#: entry -> (oracle folder, load options)
MODELS = {
    "modnet": ("modnet_mobilenetv2", {}),
    "bgmv2.mobilenetv2": ("bgmv2_mobilenetv2", {}),
    "bgmv2": ("bgmv2_resnet50", {}),
    "bisenetv2.cocostuff": ("bisenetv2_coco", {}),
    "ppmatting": ("ppmatting_hrnet-w18-human", {}),
    "dim": ("dim_huochaitiantang-vgg16-skip-stage1", {}),
    "dim.foamliu": ("dim_foamliu-segnet", {}),
    "fba": ("fba_resnet50-gn-ws", {}),
    "gfm": ("gfm_r34_tt", {}),
    "sim": ("sim_matting", {"classifier_weights": "sim_classifier"}),
    "bgm": ("bgmv1_netg", {"segmenter": None}),
    "gca": ("gca_dist-all-data", {}),
    "cam.lap": ("conmat_lap", {}),
}
RUNTIMES = ("torch", "onnxruntime", "openvino")


class PeakRSS:
    """Largest RSS (MB) seen while the block runs, sampled by a thread."""

    def __init__(self, every: float = 0.002):
        self.every = every

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self):
        self.base = self.peak = self.rss()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, self.rss())
                time.sleep(self.every)

        self._t = threading.Thread(target=sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def delta(self) -> float:
        return self.peak - self.base


def _oracle_weights(folder: str):
    sys.path.insert(0, str(ROOT / "tests"))
    keep_cache_home()
    from conftest import Oracle   # the oracles' own recipe (special layouts included)

    return Oracle(folder).torch_weights()


def _inputs(entry, h: int, w: int):
    import numpy as np

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kw = {}
    if "trimap" in entry.requires:
        yy, xx = np.mgrid[0:h, 0:w]
        r = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2
        tri = np.zeros((h, w), np.uint8)
        tri[r < 1.5] = 128
        tri[r < 0.5] = 255
        kw["trimap"] = tri
    if "background" in entry.requires:
        kw["background"] = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return img, kw


def _call(model, entry, img, kw):
    """predict (numpy in and out); BGM v1 gets its person mask as an input (the segmenter is not timed)."""
    if entry.family == "bgm":
        import numpy as np

        from mattecli.backends.base import Batch

        h, w = img.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        mask[h // 5:, w // 4: 3 * w // 4] = 255
        return model.predict_batch(Batch.from_numpy(img, None, kw["background"]), segmentation=[mask]).result(0)
    return model.predict(img, **kw)


def worker_family(args) -> list[dict]:
    import numpy as np

    import mattecli
    from mattecli.backends.runtimes import installed
    from mattecli.registry import resolve

    entry, _ = resolve(args.worker)
    folder, opts = MODELS[args.worker]
    weights = _oracle_weights(folder)
    opts = {k: (_oracle_weights(v) if k == "classifier_weights" else v) for k, v in opts.items()}
    models, load_mb = {}, {}
    for rt in RUNTIMES:
        if not installed(rt):
            continue
        with PeakRSS() as p:
            try:
                models[rt] = mattecli.load_model(args.worker, weights=weights, runtime=rt, **opts)
            except Exception as e:   # a family that cannot export says why
                print(json.dumps({"model": args.worker, "runtime": rt, "skipped": str(e)}), flush=True)
                continue
        load_mb[rt] = p.delta
    auto = mattecli.load_model(args.worker, weights=weights, **opts).runtime.name
    rows = []
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        img, kw = _inputs(entry, h, w)
        for rt, m in models.items():
            _call(m, entry, img, kw)          # export + first-call check (not timed)
        times = {rt: [] for rt in models}
        peaks = {rt: 0.0 for rt in models}
        for _ in range(args.reps):
            for rt, m in models.items():
                with PeakRSS() as p:
                    t0 = time.perf_counter()
                    _call(m, entry, img, kw)
                    times[rt].append(time.perf_counter() - t0)
                peaks[rt] = max(peaks[rt], p.delta)
        for rt in models:
            rows.append({"model": args.worker, "size": size, "runtime": rt, "auto": auto,
                         "ms": 1000 * float(np.median(times[rt])), "peak_mb": peaks[rt], "load_mb": load_mb[rt],
                         "engine": bool(getattr(models[rt], "_engine_calls", None))})
    return rows


def _frames(n: int, h: int, w: int):
    import cv2
    import numpy as np

    img = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    if img is None:
        img = (np.random.default_rng(0).random((h + 64, w + 64, 3)) * 255).astype(np.uint8)
    img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (w + 4 * n, h + 2 * n), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(img[2 * i:2 * i + h, 4 * i:4 * i + w]) for i in range(n)]


def worker_rvm(args) -> list[dict]:
    import numpy as np
    import onnxruntime as ort
    import torch

    import mattecli
    from mattecli.backends.base import Batch

    h, w, ratio, b = 1080, 1920, 0.25, args.rvm_batch
    frames = _frames(8, h, w)
    as_float = [np.ascontiguousarray(f.transpose(2, 0, 1)[None].astype(np.float32) / 255.0) for f in frames]
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(RVM_ONNX), so, providers=["CPUExecutionProvider"])
    state = {"rec": [np.zeros((1, 1, 1, 1), np.float32)] * 4, "i": 0}
    r = np.array([ratio], np.float32)

    def authors():   # b frames, one call each, states carried
        for _ in range(b):
            x = as_float[state["i"] % 8]
            rec = state["rec"]
            out = sess.run(None, {"src": x, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3],
                                  "downsample_ratio": r})
            state["rec"], state["i"] = out[2:], state["i"] + 1
        return out

    calls = {"authors-onnx/ort": authors}
    runtimes = {"ours-default": None, "ours-onnxruntime": "onnxruntime", "ours-torch": "torch"}
    if args.only:                       # --memory: one implementation per process, ru_maxrss is its own
        calls = {k: v for k, v in calls.items() if k == args.only}
        runtimes = {k: v for k, v in runtimes.items() if k == args.only}
    for name, rt in runtimes.items():
        m = mattecli.load_model("rvm", weights=str(RVM_ONNX), runtime=rt)
        if name == "ours-default":
            print(json.dumps({"line": m.runtime_line()}), flush=True)
        if b == 1:
            calls[name] = (lambda m: lambda: m.predict(frames[state["i"] % 8]))(m)
        else:
            bt = torch.from_numpy(np.stack(frames[:b])).permute(0, 3, 1, 2).contiguous()
            calls[name] = (lambda m, bt: lambda: m.predict_batch(Batch(bt)).result(b - 1))(m, bt)
    for f in calls.values():
        f()
        f()
    times = {k: [] for k in calls}
    peaks = {k: 0.0 for k in calls}
    for _ in range(args.reps):
        for k, f in calls.items():
            with PeakRSS() as p:
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) / b)
            peaks[k] = max(peaks[k], p.delta)
    if args.only:
        import resource

        return [{"model": "rvm", "batch": b, "runtime": args.only,
                 "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}]
    base = float(np.median(times["authors-onnx/ort"]))
    return [{"model": "rvm", "size": f"{w}x{h}", "batch": b, "runtime": k, "ms": 1000 * float(np.median(v)),
             "peak_mb": peaks[k], "vs_authors_ort": base / float(np.median(v))} for k, v in times.items()]


def run(cmd: list[str]) -> list[dict]:
    p = subprocess.run([sys.executable, __file__, *cmd], capture_output=True, text=True)
    rows = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            rows.append(json.loads(line))
    if p.returncode != 0:
        print(f"  failed: {' '.join(cmd)}\n{p.stderr[-1500:]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--sizes", nargs="+", default=["512x512", "1920x1080"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, help="intra-op threads of every runtime (default: torch's default)")
    ap.add_argument("--rvm", action="store_true", help="RVM against the authors' ONNX on onnxruntime instead")
    ap.add_argument("--rvm-batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--memory", action="store_true",
                    help="with --rvm: also each implementation alone in its own process (its peak RSS)")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)   # the engines take torch's thread count
    if args.worker == "rvm":
        args.rvm_batch = args.rvm_batch[0]
        for row in worker_rvm(args):
            print(json.dumps(row), flush=True)
        return
    if args.worker:
        for row in worker_family(args):
            print(json.dumps(row), flush=True)
        return
    threads = ["--threads", str(args.threads)] if args.threads else []
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, threads {args.threads or 'default'}",
          flush=True)
    if args.rvm:
        print(f"{'rvm 1920x1080 r=0.25':24} {'B':>2} {'ms/frame':>9} {'vs authors ort':>14} {'peak MB':>8}")
        for b in args.rvm_batch:
            for r in run(["--worker", "rvm", "--rvm-batch", str(b), "--reps", str(args.reps)] + threads):
                if "line" in r:
                    print(f"  {r['line']}")
                    continue
                print(f"{r['runtime']:24} {r['batch']:>2} {r['ms']:9.1f} {r['vs_authors_ort']:13.2f}x "
                      f"{r['peak_mb']:8.0f}", flush=True)
        if args.memory:
            print("\npeak RSS of a process running one implementation (load, warm-up, --reps calls):")
            for b in args.rvm_batch:
                for impl in ("authors-onnx/ort", "ours-default", "ours-onnxruntime", "ours-torch"):
                    for r in run(["--worker", "rvm", "--rvm-batch", str(b), "--reps", str(args.reps), "--only", impl]
                                 + threads):
                        if "max_rss_mb" in r:
                            print(f"{impl:24} {b:>2} {r['max_rss_mb']:8.0f} MB", flush=True)
        return
    print(f"{'model':20} {'size':>9} {'runtime':12} {'ms/call':>9} {'vs torch':>8} {'peak MB':>8} {'load MB':>8} "
          f"{'auto':>12}", flush=True)
    proposal = {}
    for name in args.models:
        rows = run(["--worker", name, "--sizes", *args.sizes, "--reps", str(args.reps)] + threads)
        speed = {}
        for r in rows:
            if "skipped" in r:
                print(f"{r['model']:20} {'':>9} {r['runtime']:12} skipped: {r['skipped'][:90]}")
                continue
            t = next(x["ms"] for x in rows if x.get("size") == r["size"] and x.get("runtime") == "torch")
            speed.setdefault(r["runtime"], []).append(t / r["ms"])
            print(f"{r['model']:20} {r['size']:>9} {r['runtime']:12} {r['ms']:9.1f} {t / r['ms']:7.2f}x "
                  f"{r['peak_mb']:8.0f} {r['load_mb']:8.0f} {r['auto']:>12}", flush=True)
        fast = sorted((rt for rt, s in speed.items() if rt != "torch" and min(s) > 1.1),
                      key=lambda rt: -min(speed[rt]))
        proposal[name] = tuple(fast) if fast else ("torch",)
    print("\nproposed runtimes={'cpu': ...} (faster than torch by > 10 % at every size, fastest first):")
    for name, order in proposal.items():
        print(f"  {name:20} {order}")


if __name__ == "__main__":
    main()
