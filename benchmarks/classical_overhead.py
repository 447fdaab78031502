#!/usr/bin/env python3
"""CLI overhead of `mattecli matte --model closed-form` versus calling pymatting directly.

Both sides run as a fresh Python process over the same images (alphamatting.com GT01-GT10 with trimap1 by
default, read from ../shared/data/alphamatting):

  direct : one Python loop: pymatting.load_image -> estimate_alpha_cf -> float32 (the API's alpha dtype) -> 8-bit
           alpha PNG (cv2.imwrite); the float64 alpha rounded directly is reported on the last line
  cli    : mattecli matte IMAGES --trimap TRIMAPS --model closed-form -o OUT   (one process for the whole batch)

Wall time includes interpreter start, imports, reading and writing. Overhead = (cli - direct) / cli.
SAD (sum |a - gt| / 1000) and MSE are computed from the written 8-bit PNGs of each side against the ground truth;
they must be identical (the alphas are compared pixel by pixel too).

    python benchmarks/classical_overhead.py                 # all 10 images, 1 round
    python benchmarks/classical_overhead.py --limit 3 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared")) / "data" / "alphamatting"

DIRECT = r"""
import sys, cv2, numpy as np, pymatting
from pathlib import Path
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
pairs = sys.argv[2:]
for img_p, tri_p in zip(pairs[0::2], pairs[1::2]):
    img = pymatting.load_image(img_p, "RGB")
    tri = pymatting.load_image(tri_p, "GRAY")
    a = np.clip(pymatting.estimate_alpha_cf(img, tri), 0, 1)
    a32 = a.astype(np.float32)  # mattecli's API delivers alpha as float32, then rounds to 8 bits
    cv2.imwrite(str(out / (Path(img_p).stem + "_alpha.png")), (a32 * np.float32(255) + np.float32(0.5)).astype(np.uint8))
    cv2.imwrite(str(out / (Path(img_p).stem + "_alpha64.png")), (a * 255 + 0.5).astype(np.uint8))
"""


def grey(p: Path) -> np.ndarray:
    import cv2

    a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise SystemExit(f"cannot read {p}")
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.float64) / 255.0


def metrics(out: Path, stems: list[str], gt_dir: Path, suffix: str = "_alpha") -> tuple[float, float, list[np.ndarray]]:
    sad = mse = 0.0
    alphas = []
    for s in stems:
        a = grey(out / f"{s}{suffix}.png")
        g = grey(gt_dir / f"{s}.png")
        sad += np.abs(a - g).sum() / 1000.0
        mse += ((a - g) ** 2).mean()
        alphas.append(a)
    return sad / len(stems), mse / len(stems), alphas


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys of the child process)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd[:4])} ...\n{p.stderr[-2000:]}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description="mattecli matte --model closed-form vs pymatting directly")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="alphamatting folder with image/, trimap1/, gt/")
    ap.add_argument("--trimap", default="trimap1", help="trimap subfolder (trimap1 or trimap2)")
    ap.add_argument("--limit", type=int, default=10, help="number of images (default 10 = all)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best time of each side is kept")
    args = ap.parse_args()
    data = Path(args.data)
    images = sorted((data / "image").glob("*.png"))[: args.limit]
    if not images:
        raise SystemExit(f"no images in {data / 'image'}")
    stems = [p.stem for p in images]
    tris = [data / args.trimap / p.name for p in images]
    env = dict(os.environ, NO_COLOR="1")
    work = Path(tempfile.mkdtemp(prefix="mattecli_bench_"))
    direct_cmd = [sys.executable, "-c", DIRECT, str(work / "direct")]
    for i, t in zip(images, tris):
        direct_cmd += [str(i), str(t)]
    cli_cmd = [sys.executable, "-m", "mattecli", "matte", *map(str, images), "--trimap", str(data / args.trimap),
               "--model", "closed-form", "-o", str(work / "cli"), "-q"]
    # warm-up (numba caches, page cache) on one image, not timed
    timed(direct_cmd[:4] + [str(images[0]), str(tris[0])], env)
    timed(cli_cmd[:4] + [str(images[0])] + cli_cmd[4 + len(images):], env)
    t_direct, t_cli = [], []
    for _ in range(args.rounds):
        t_direct.append(timed(direct_cmd, env))
        t_cli.append(timed(cli_cmd, env))
    d, c = min(t[0] for t in t_direct), min(t[0] for t in t_cli)
    dc, cc = min(t[1] for t in t_direct), min(t[1] for t in t_cli)
    sad_d, mse_d, a_d = metrics(work / "direct", stems, data / "gt")
    sad_c, mse_c, a_c = metrics(work / "cli", stems, data / "gt")
    sad_64, mse_64, a_64 = metrics(work / "direct", stems, data / "gt", "_alpha64")
    maxdiff = max(float(np.abs(x - y).max()) for x, y in zip(a_d, a_c))
    n64 = sum(int((np.abs(x - y) > 0).sum()) for x, y in zip(a_64, a_c))
    n = len(images)
    print(f"closed-form matting, {n} images from {data} ({args.trimap}), best of {args.rounds} round(s)")
    print(f"{'side':<8} {'wall s':>8} {'cpu s':>8} {'s/image':>8} {'SAD':>10} {'MSE':>12}")
    print(f"{'direct':<8} {d:8.2f} {dc:8.2f} {d / n:8.3f} {sad_d:10.4f} {mse_d:12.8f}")
    print(f"{'cli':<8} {c:8.2f} {cc:8.2f} {c / n:8.3f} {sad_c:10.4f} {mse_c:12.8f}")
    print(f"CLI overhead: {100 * (c - d) / c:+.2f} % of the CLI wall time, {100 * (cc - dc) / cc:+.2f} % of its CPU time "
          "(target < 5 %; CPU time is the steadier figure on a shared machine); "
          f"max |alpha difference| = {maxdiff:.6f}; SAD/MSE identical: {sad_d == sad_c and mse_d == mse_c}")
    print(f"(rounding pymatting's float64 alpha directly instead of the API's float32: SAD {sad_64:.4f}, "
          f"MSE {mse_64:.8f}; {n64} pixels differ by 1/255)")


if __name__ == "__main__":
    main()
