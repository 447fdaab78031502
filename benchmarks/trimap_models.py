#!/usr/bin/env python
"""Benchmark the trimap-based paper models FBA, GCA and SIM on CPU with synthetic weights.

Per model, size and precision: seconds per image through ``predict`` (the full official pipeline), peak resident
memory of a fresh subprocess (ru_maxrss, so each configuration is measured alone), and for bf16 the max / mean
|alpha difference| against fp32 on the same input. ``--tiling`` runs the opt-in tiled mode of FBA or GCA and
reports how far its alpha moves from the full pass on the alphamatting.com images in ../shared/data/alphamatting (if present).

    python benchmarks/trimap_models.py                       # fba,gca,sim at 512 and 1024, fp32 (a few minutes)
    python benchmarks/trimap_models.py --models fba --sizes 512 --precisions fp32,bf16
    python benchmarks/trimap_models.py --models gca --sizes 2160x3840 --tile 1024   # 4K with tiling
    python benchmarks/trimap_models.py --tiling --tiling-model fba   # accuracy cost of tiling on alphamatting

Synthetic weights: the oracle recipe of ../shared/oracles/synthetic_weights.py when present (realistic activation
scales), else a fallback (He-normal convs, spectral-norm vectors from one power iteration). Timings of a loaded,
shared machine are noisy: compare rows of one run.
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
ORACLE = {"fba": "fba_resnet50-gn-ws", "gca": "gca_dist-all-data", "sim": "sim_matting"}


def synthetic_official(name: str) -> dict:
    """Official-layout state dict for ``name`` (fba/gca/sim) or 'sim_classifier'."""
    import numpy as np
    import torch

    folder = ORACLE.get(name, name)
    recipe = SHARED / "oracles" / "synthetic_weights.py"
    layout = SHARED / "oracles" / folder / "layout.json"
    if recipe.is_file() and layout.is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location("_sw", recipe)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return {k: torch.from_numpy(np.array(v)) for k, v in mod.from_layout_json(str(layout)).items()}
    # fallback: our own modules use the official key names
    if name == "fba":
        from mattecli.backends.fba.net import FBANet as Net
    elif name == "gca":
        from mattecli.backends.gca.net import GCANet as Net
    elif name == "sim":
        from mattecli.backends.sim.net import SIMNet as Net
    else:
        from mattecli.backends.sim.net import SIMClassifier as Net
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in Net().state_dict().items():
        if not v.is_floating_point():
            sd[k] = torch.zeros_like(v)
        elif k.endswith("running_var"):
            sd[k] = torch.ones_like(v)
        elif v.ndim >= 2:
            fan = v[0].numel()
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / fan) ** 0.5
        elif k.endswith("weight") and "bn" in k or ".norm" in k:
            sd[k] = torch.ones_like(v)
        else:
            sd[k] = torch.zeros_like(v) if not k.endswith(("_u", "_v")) else torch.randn(v.shape, generator=g)
    for k in [k for k in sd if k.endswith("weight_u")]:  # one power iteration so that sigma is sensible
        base = k[: -len("_u")]
        w = sd[base + "_bar"].reshape(sd[base + "_bar"].shape[0], -1)
        v = w.t() @ sd[k]
        v = v / v.norm()
        u = w @ v
        sd[k], sd[base + "_v"] = u / u.norm(), v
    return sd


def sample(h: int, w: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((yy - h / 2) / (0.3 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2
    tri = np.zeros((h, w), np.uint8)
    tri[r < 1.6] = 128
    tri[r < 0.6] = 255
    return img, tri


def load(name: str, precision: str, **opts):
    import mattecli

    if os.environ.get("MATTECLI_BENCH_CACHED") == "1":   # --cached-weights: the user's imported real weights
        return mattecli.load_model(name, device="cpu", precision=precision, **opts)
    base = name.split(".")[0]
    kw = dict(opts)
    if base == "sim":
        kw["classifier_weights"] = synthetic_official("sim_classifier")
    return mattecli.load_model(name, weights=synthetic_official(base), device="cpu", precision=precision, **kw)


def worker(args) -> None:
    """One configuration in this (fresh) process; prints one JSON line."""
    import resource

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.hw
    opts = {"tile": args.tile} if args.tile and args.model.split(".")[0] in ("fba", "gca") else {}
    m = load(args.model, args.precision, **opts)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m.predict(*sample(64, 64, seed=1))  # warm-up (first-call allocator / oneDNN set-up), not timed
    img, tri = sample(h, w)
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        r = m.predict(img, tri)
        times.append(time.perf_counter() - t0)
    if args.save:
        np.save(args.save, r.alpha)
    print(json.dumps({"model": args.model, "size": f"{h}x{w}", "precision": args.precision, "tile": args.tile,
                      "sec": min(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_after_load_mb": rss_loaded / 1024}))


def run_config(model, hw, precision, tile, repeat, threads, save=None) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--models", model, "--sizes", f"{hw[0]}x{hw[1]}",
           "--precisions", precision, "--repeat", str(repeat)]
    if tile:
        cmd += ["--tile", str(tile)]
    if threads:
        cmd += ["--threads", str(threads)]
    if save:
        cmd += ["--save", save]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": model, "size": f"{hw[0]}x{hw[1]}", "precision": precision, "tile": tile,
                "error": last[:100]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def parse_size(s: str):
    if "x" in s:
        h, w = s.lower().split("x")
        return int(h), int(w)
    return int(s), int(s)


def tiling_accuracy(model: str, tile: int, overlap: int, limit: int) -> None:
    """|tiled - full| of the alpha on the alphamatting.com images (synthetic weights: a proxy, not a score)."""
    import numpy as np
    from PIL import Image

    d = SHARED / "data" / "alphamatting"
    if not d.is_dir():
        print(f"{d} not found: skipping the tiling accuracy check")
        return
    full = load(model, "fp32")
    tiled = load(model, "fp32", tile=tile, tile_overlap=overlap)
    print(f"\n{model} tile={tile} overlap={overlap} vs full pass, alphamatting.com trimap1 (synthetic weights)")
    print(f"{'image':8} {'size':>9} {'SAD/1000':>9} {'MSE':>10} {'max':>7}")
    for p in sorted((d / "image").glob("*.png"))[:limit]:
        img = np.array(Image.open(p).convert("RGB"))
        tri = np.array(Image.open(d / "trimap1" / p.name).convert("L"))
        a = full.predict(img, tri).alpha
        b = tiled.predict(img, tri).alpha
        diff = np.abs(a - b)
        print(f"{p.stem:8} {img.shape[0]:>4}x{img.shape[1]:<4} {diff.sum() / 1000:9.3f} {np.mean(diff ** 2):10.2e} "
              f"{diff.max():7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", default="fba,gca,sim", help="comma-separated: fba, gca, sim (default: all three)")
    ap.add_argument("--sizes", default="512,1024", help="comma-separated N (NxN) or HxW (default: 512,1024)")
    ap.add_argument("--precisions", default="fp32", help="comma-separated fp32,bf16 (default: fp32)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per configuration (the minimum is shown)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--tile", type=int, default=0, help="FBA/GCA: opt-in tile size in px (0 = off)")
    ap.add_argument("--tiling", action="store_true", help="measure tiling's deviation on alphamatting images")
    ap.add_argument("--tiling-model", default="gca", help="fba or gca for --tiling (default gca)")
    ap.add_argument("--tiling-size", type=int, default=256, help="tile size for --tiling (default 256)")
    ap.add_argument("--tiling-images", type=int, default=4, help="how many alphamatting images for --tiling")
    ap.add_argument("--cached-weights", action="store_true",
                    help="use the cached real weights (mattecli models import ...) instead of synthetic ones")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cached_weights:
        os.environ["MATTECLI_BENCH_CACHED"] = "1"  # inherited by the worker subprocesses
    if args.worker:
        args.model = args.models
        args.hw = parse_size(args.sizes)
        args.precision = args.precisions
        worker(args)
        return
    if args.tiling:
        tiling_accuracy(args.tiling_model, args.tiling_size, 64, args.tiling_images)
        return
    import tempfile

    import numpy as np

    print(f"{'model':6} {'size':>10} {'prec':5} {'tile':>5} {'s/img':>8} {'peak MB':>9} {'|bf16-fp32| max/mean':>22}")
    tmp = tempfile.mkdtemp(prefix="mattecli-bench-")
    for model in args.models.split(","):
        for s in args.sizes.split(","):
            hw = parse_size(s)
            ref = None
            for prec in args.precisions.split(","):
                tile = args.tile if model in ("fba", "gca") else 0
                save = os.path.join(tmp, f"{model}_{s}_{prec}.npy")
                r = run_config(model, hw, prec, tile, args.repeat, args.threads, save=save)
                if "error" in r:
                    print(f"{model:6} {r['size']:>10} {prec:5} {tile or '-':>5}  failed: {r['error']}")
                    continue
                acc = ""
                if prec == "fp32":
                    ref = np.load(save)
                elif ref is not None:
                    d = np.abs(np.load(save) - ref)
                    acc = f"{d.max():.3f} / {d.mean():.4f}"
                print(f"{model:6} {r['size']:>10} {prec:5} {tile or '-':>5} {r['sec']:8.2f} {r['peak_rss_mb']:9.0f} "
                      f"{acc:>22}", flush=True)


if __name__ == "__main__":
    main()
