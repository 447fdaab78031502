"""GFM throughput and peak memory on this machine (synthetic weights, full official pipeline).

Each configuration (variant x size x precision) runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own. The timed call is ``model.predict(uint8 image)``: the official ``core/test.py`` pipeline
(HYBRID = a 1/3-scale glance pass plus a 1/2-scale focus pass; RESIZE = one 1/2-scale pass; RIM = one 1/3 pass),
resizes included. TT, FT and BT variants of a backbone cost the same (they differ only in the last conv).

    python benchmarks/gfm.py                         # r34-tt, r34-2b-tt, d121-tt at 512x512 and 1920x1080
    python benchmarks/gfm.py --variants all --sizes 512x512 --precisions fp32,bf16
    python benchmarks/gfm.py --test-choice RESIZE --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ALL = ("r34-tt", "r34-ft", "r34-bt", "r34-2b-tt", "r101-tt", "d121-tt", "d121-rim")


def child(tag: str, size: str, precision: str, repeat: int, test_choice: str, device: str, warmup: int) -> None:
    import resource

    import numpy as np
    import torch

    import mattecli
    from mattecli.backends.gfm.convert import GFMConverter, variant_of_tag
    from mattecli.backends.gfm.net import GFM
    from mattecli.backends.install import spec_of
    from mattecli.registry import resolve

    torch.manual_seed(0)
    backbone, rosta = variant_of_tag(tag)
    t0 = time.perf_counter()
    official = GFMConverter().to_official(GFM(backbone, rosta).state_dict(), spec_of(*resolve(f"gfm.{tag}")))
    opts = {} if rosta == "RIM" else {"test_choice": test_choice}
    m = mattecli.load_model(f"gfm.{tag}", weights=official, device=device, precision=precision, **opts)
    del official
    load_s = time.perf_counter() - t0
    w, h = (int(v) for v in size.lower().split("x"))
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for _ in range(warmup):  # allocator, kernels (cudnn autotuning on GPU)
        m.predict(img)
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        m.predict(img)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"tag": tag, "size": size, "precision": precision, "load_s": load_s,
                      "s_per_img": float(np.median(times)), "cpu_s_per_img": float(np.median(cpu)),
                      "peak_rss_mb": rss_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="r34-tt,r34-2b-tt,d121-tt",
                    help="comma-separated tags, or 'all' (%s)" % ", ".join(ALL))
    ap.add_argument("--sizes", default="512x512,1920x1080", help="comma-separated WxH")
    ap.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (CPU), fp16 (CUDA)")
    ap.add_argument("--test-choice", default="HYBRID", choices=("HYBRID", "RESIZE"))
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per configuration (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each child (0 = torch default)")
    ap.add_argument("--child", nargs=3, metavar=("TAG", "SIZE", "PRECISION"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.child:
        child(*a.child, a.repeat, a.test_choice, a.device, a.warmup)
        return
    variants = ALL if a.variants == "all" else tuple(v.strip() for v in a.variants.split(",") if v.strip())
    print(f"GFM pipeline ({a.test_choice}; RIM: its own 1/3 pass), device {a.device}, median of {a.repeat} "
          f"after {a.warmup} warm-up")
    print("s/img = wall clock; cpu s = process CPU time (all threads; on a busy machine the honest cost)")
    print(f"{'variant':<10} {'size':>10} {'prec':>5} {'s/img':>8} {'img/s':>7} {'cpu s':>7} {'peak MB':>8} "
          f"{'load s':>7}")
    for tag in variants:
        for size in a.sizes.split(","):
            for prec in a.precisions.split(","):
                cmd = [sys.executable, os.path.abspath(__file__), "--child", tag, size, prec, "--repeat",
                       str(a.repeat), "--warmup", str(a.warmup), "--test-choice", a.test_choice, "--device", a.device]
                if a.threads:
                    cmd += ["--threads", str(a.threads)]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    err = (p.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{tag:<10} {size:>10} {prec:>5}  failed: {err}")
                    continue
                r = json.loads(p.stdout.strip().splitlines()[-1])
                print(f"{tag:<10} {size:>10} {prec:>5} {r['s_per_img']:8.3f} {1 / r['s_per_img']:7.2f} "
                      f"{r['cpu_s_per_img']:7.2f} {r['peak_rss_mb']:8.0f} {r['load_s']:7.1f}", flush=True)


if __name__ == "__main__":
    main()
