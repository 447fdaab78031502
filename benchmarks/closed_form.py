#!/usr/bin/env python3
"""Closed-form matting: our JIT-free solver (backends/classical/closed_form.py) against pymatting's
``estimate_alpha_cf`` called directly, on alphamatting.com GT01-GT10 with trimap1 and trimap2 (../shared).

One process; pymatting's kernels are compiled first (untimed: numba caches them). Each case runs ``--reps`` rounds,
the two solvers alternating (which one goes first alternates too), and reports the median wall time, the median CPU
time of the process (user + sys: steadier than wall time on a shared machine), the peak resident-memory increase
during a call (sampled every 2 ms), and the largest |alpha difference| between the two (pymatting stops its
conjugate gradient at rtol 1e-7, we solve exactly). Both solvers are single-threaded.

    python benchmarks/closed_form.py                  # 20 cases, 3 rounds
    python benchmarks/closed_form.py --images GT01 GT02 --trimaps trimap1 --reps 5
    python benchmarks/closed_form.py --baseline HEAD  # also the solver as committed at HEAD (git show)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared")) / "data" / "alphamatting"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "src"))

from runtimes import PeakRSS  # noqa: E402  (benchmarks/runtimes.py)


def committed_solver(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/mattecli/backends/classical/closed_form.py"],
                         capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType(f"closed_form_{rev}")
    exec(compile(src, f"closed_form@{rev}", "exec"), mod.__dict__)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=[f"GT{i:02d}" for i in range(1, 11)])
    ap.add_argument("--trimaps", nargs="+", default=["trimap1", "trimap2"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--baseline", help="a git revision whose closed_form.py is timed too")
    args = ap.parse_args()

    import pymatting

    from mattecli.backends.classical import closed_form

    solvers = {"pymatting": lambda img, tri: np.clip(pymatting.estimate_alpha_cf(img, tri), 0, 1),
               "ours": closed_form.estimate_alpha}
    if args.baseline:
        solvers[f"ours@{args.baseline}"] = committed_solver(args.baseline).estimate_alpha
    cases = [(i, t) for t in args.trimaps for i in args.images]
    img0 = pymatting.load_image(str(DATA / "image" / f"{cases[0][0]}.png"), "RGB")
    tri0 = pymatting.load_image(str(DATA / cases[0][1] / f"{cases[0][0]}.png"), "GRAY")
    pymatting.estimate_alpha_cf(img0, tri0)   # compile / load numba's cache: not timed
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    names = list(solvers)
    print(f"{'case':16} " + " ".join(f"{n + ' s':>12} {'cpu s':>7} {'peak MB':>8}" for n in names) + "  max|diff|")
    total = {n: [0.0, 0.0] for n in names}
    peak = {n: 0.0 for n in names}
    for k, (name, tdir) in enumerate(cases):
        img = pymatting.load_image(str(DATA / "image" / f"{name}.png"), "RGB")
        tri = pymatting.load_image(str(DATA / tdir / f"{name}.png"), "GRAY")
        wall = {n: [] for n in names}
        cpu = {n: [] for n in names}
        case_peak = {n: 0.0 for n in names}
        out = {}
        for rep in range(args.reps):
            order = names if (rep + k) % 2 == 0 else names[::-1]
            for n in order:
                with PeakRSS() as p:
                    t0, c0 = time.perf_counter(), time.process_time()
                    out[n] = solvers[n](img, tri)
                    wall[n].append(time.perf_counter() - t0)
                    cpu[n].append(time.process_time() - c0)
                case_peak[n] = max(case_peak[n], p.delta)
                peak[n] = max(peak[n], p.delta)
        diff = float(np.abs(out["ours"] - out["pymatting"]).max())
        cells = []
        for n in names:
            w, c = float(np.median(wall[n])), float(np.median(cpu[n]))
            total[n][0] += w
            total[n][1] += c
            cells.append(f"{w:12.2f} {c:7.2f} {case_peak[n]:8.0f}")
        print(f"{name + ' ' + tdir:16} " + " ".join(cells) + f"  {diff:.1e}", flush=True)
    print(f"{'total':16} " + " ".join(f"{total[n][0]:12.2f} {total[n][1]:7.2f} {peak[n]:8.0f}" for n in names))
    base = total["pymatting"]
    for n in names[1:]:
        print(f"{n} vs pymatting: wall {base[0] / total[n][0]:.2f}x, cpu {base[1] / total[n][1]:.2f}x "
              "(>1 = faster than pymatting)")


if __name__ == "__main__":
    main()
