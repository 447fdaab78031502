#!/usr/bin/env python
"""Benchmark Deep Image Matting (dim, dim.foamliu) and Context-Aware Matting (cam, cam.lap-fea-da-color) on CPU.

Per model, size and precision: seconds per image through ``predict`` (the full official pipeline), peak resident
memory of a fresh subprocess per configuration (ru_maxrss), the 4K (2160x3840) peak extrapolated linearly in pixels
from the measured sizes, and for bf16 the max / mean |alpha difference| against fp32 on the same input.
``--tiling`` measures CAM's opt-in tiling (``tile`` option): how far the tiled alpha moves from the untiled one on
the alphamatting.com images of ../shared/data/alphamatting (synthetic weights: absolute accuracy is meaningless,
only the tiled-vs-untiled difference is reported).

    python benchmarks/trimap_models_dim_cam.py                    # dim, dim.foamliu at 512/1024 + cam at 512, fp32
    python benchmarks/trimap_models_dim_cam.py --models cam --sizes 512,1024 --precisions fp32,bf16
    python benchmarks/trimap_models_dim_cam.py --tiling --tile 257 --images 2 --scale 0.5

Synthetic weights: the oracle recipe of ../shared/oracles/synthetic_weights.py when present, else He-normal.
Timings on a loaded, shared machine are noisy: compare rows of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))
ORACLE = {"dim": "dim_huochaitiantang-vgg16-skip-stage1", "dim.foamliu": "dim_foamliu-segnet",
          "cam": "conmat_lap", "cam.lap-fea-da-color": "conmat_lap-fea-da-color"}


def synthetic_official(name: str) -> dict:
    import numpy as np

    recipe = SHARED / "oracles" / "synthetic_weights.py"
    layout = SHARED / "oracles" / ORACLE[name] / "layout.json"
    if recipe.is_file() and layout.is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location("_sw", recipe)
        sw = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sw)
        lay = json.loads(layout.read_text())
        if name.startswith("cam"):
            tel, tfl = lay["torch_equivalent_layout"], lay["state_dict"]
            sd = sw.synthetic_state_dict(tel)
            out = {}
            for (tk, _, _), (n, s, _) in zip(tel, tfl):
                v = sd[tk]
                if n.endswith("/depthwise_weights"):
                    v = v.reshape(s[2], s[3], s[0], s[1]).transpose(2, 3, 0, 1)
                elif n.endswith("/weights"):
                    v = v.transpose(2, 3, 1, 0)
                out[n] = np.asarray(v, order="C").reshape(s)
            return out
        return sw.from_layout_json(str(layout))
    # fallback without ../shared: He-normal weights in our layout, converted to the official one
    import torch

    if name.startswith("cam"):
        from mattecli.backends.cam.convert import CAMConverter
        from mattecli.backends.cam.net import CAMNet
        from mattecli.backends.install import spec_of
        from mattecli.registry import resolve

        net = CAMNet(color=name.endswith("color"))
        spec = spec_of(*resolve(name))

        def to_official(sd):
            return CAMConverter().to_official(sd, spec)
    else:
        from mattecli.backends.dim.net import DIMSegNet, DIMVGG16

        net = DIMSegNet() if name == "dim.foamliu" else DIMVGG16()
        to_official = dict
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in net.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v
        elif v.ndim >= 2:
            sd[k] = torch.randn(v.shape, generator=g) * (2.0 / max(1, v[0].numel())) ** 0.5
        elif k.endswith("running_var"):
            sd[k] = torch.ones_like(v)
        elif k.endswith("weight"):
            sd[k] = torch.ones_like(v)
        else:
            sd[k] = torch.zeros_like(v)
    return to_official(sd)


def sample(h: int, w: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    r = ((yy - h / 2) / (h / 3)) ** 2 + ((xx - w / 2) / (w / 3)) ** 2
    tri = np.full((h, w), 128, np.uint8)
    tri[r < 0.6] = 255
    tri[r > 1.2] = 0
    return img, tri


def child(cfg: dict) -> dict:
    import numpy as np
    import torch

    import mattecli

    torch.set_num_threads(cfg["threads"])
    w = synthetic_official(cfg["model"])
    m = mattecli.load_model(cfg["model"], weights=w, precision=cfg["precision"])
    del w
    h, wd = cfg["size"]
    img, tri = sample(h, wd)
    times = []
    r = None
    for _ in range(cfg["repeat"]):
        t = time.perf_counter()
        r = m.predict(img, tri)
        times.append(time.perf_counter() - t)
    out = {"s_per_image": min(times), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if cfg["precision"] != "fp32":
        ref = mattecli.load_model(cfg["model"], weights=synthetic_official(cfg["model"])).predict(img, tri)
        d = np.abs(ref.alpha - r.alpha)
        out.update(bf16_max=float(d.max()), bf16_mean=float(d.mean()))
    return out


def run_child(cfg: dict) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def net_pixels(model: str, h: int, w: int) -> int:
    """Pixels the network sees: dim (huochaitiantang) resizes down to multiples of 32, at most max_size 1600."""
    if model in ("dim", "dim.huochaitiantang"):
        return min(1600, h - h % 32) * min(1600, w - w % 32)
    return h * w


def parse_size(s: str):
    if "x" in s:
        h, w = s.split("x")
        return int(h), int(w)
    return int(s), int(s)


def tiling_eval(args) -> None:
    import copy

    import numpy as np
    from PIL import Image

    import mattecli

    folder = SHARED / "data" / "alphamatting"
    if not folder.is_dir():
        print(f"{folder} not present: skipping the tiling evaluation")
        return
    import torch

    torch.set_num_threads(args.threads)
    tiled = mattecli.load_model("cam", weights=synthetic_official("cam"), tile=args.tile)  # checks 16k+1 >= 65
    m = copy.copy(tiled)   # the same network, untiled
    m.options = dict(tiled.options, tile=0)
    names = sorted(p.name for p in (folder / "image").glob("*.png"))[: args.images]
    print(f"\nCAM tiling (tile={args.tile}, overlap tile/4) vs untiled, alphamatting images scaled by {args.scale}:")
    print(f"{'image':8} {'size':>9} {'untiled s':>10} {'tiled s':>8} {'max|d|':>8} {'mean|d| unknown':>16} "
          f"{'SAD diff':>9}" + (f" {'fp32-vs-fp64 mean':>16}" if args.noise_floor else ""))
    for n in names:
        img = Image.open(folder / "image" / n).convert("RGB")
        tri = Image.open(folder / "trimap1" / n).convert("L")
        if args.scale != 1:
            size = (int(img.width * args.scale), int(img.height * args.scale))
            img, tri = img.resize(size, Image.BILINEAR), tri.resize(size, Image.NEAREST)
        img, tri = np.asarray(img), np.asarray(tri)
        t = time.perf_counter()
        a = m.predict(img, tri).alpha
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        b = tiled.predict(img, tri).alpha
        t_tile = time.perf_counter() - t
        unk = (tri != 0) & (tri != 255)
        d = np.abs(a - b)
        floor = ""
        if args.noise_floor:  # the same untiled pass in float64: how chaotic the synthetic-weight network is
            m.net.double()
            m.dtype = torch.float64
            f = np.abs(m.predict(img, tri).alpha - a)
            m.net.float()
            m.dtype = torch.float32
            floor = f" {f[unk].mean():16.4f}"
        print(f"{n[:-4]:8} {img.shape[1]:>4}x{img.shape[0]:<4} {t_full:10.1f} {t_tile:8.1f} {d.max():8.3f} "
              f"{d[unk].mean():16.4f} {d.sum() / 1000:9.2f}{floor}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="dim,dim.foamliu,cam", help="comma list: dim, dim.foamliu, cam, "
                                                                  "cam.lap-fea-da-color")
    ap.add_argument("--sizes", default="512,1024", help="comma list of N or HxW (default 512,1024; cam: 512 only "
                                                        "unless --cam-sizes)")
    ap.add_argument("--cam-sizes", default="512", help="sizes for the cam models (slow on CPU)")
    ap.add_argument("--precisions", default="fp32", help="comma list: fp32, bf16")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tiling", action="store_true", help="measure CAM tiling on ../shared/data/alphamatting")
    ap.add_argument("--tile", type=int, default=257, help="tile size for --tiling (16k+1)")
    ap.add_argument("--images", type=int, default=2, help="alphamatting images for --tiling")
    ap.add_argument("--scale", type=float, default=0.5, help="downscale alphamatting images for --tiling")
    ap.add_argument("--noise-floor", action="store_true", help="--tiling: also report untiled float32 vs float64")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        cfg = json.loads(args.child)
        cfg["size"] = tuple(cfg["size"])
        print(json.dumps(child(cfg)))
        return
    if args.tiling:
        tiling_eval(args)
        return
    rows = []
    print(f"{'model':22} {'size':>10} {'prec':>5} {'s/image':>9} {'peak MB':>9} {'4K est. GB':>10} {'bf16 max|d|':>12} {'mean|d|':>8}")
    for model in args.models.split(","):
        sizes = args.cam_sizes if model.startswith("cam") else args.sizes
        for prec in args.precisions.split(","):
            meas = []
            for s in sizes.split(","):
                hw = parse_size(s)
                cfg = {"model": model, "size": hw, "precision": prec, "repeat": args.repeat, "threads": args.threads}
                r = run_child(cfg)
                rows.append((cfg, r))
                if "error" in r:
                    print(f"{model:22} {hw[0]:>4}x{hw[1]:<5} {prec:>5} error: {r['error']}", flush=True)
                    continue
                meas.append((net_pixels(model, *hw), r["peak_mb"]))
                est = ""
                if len(meas) >= 2:
                    (p0, m0), (p1, m1) = meas[-2], meas[-1]
                    slope = (m1 - m0) / max(1, p1 - p0)
                    est = f"{(m1 + slope * (net_pixels(model, 2160, 3840) - p1)) / 1024:10.1f}"
                bf = f"{r['bf16_max']:12.4f} {r['bf16_mean']:8.4f}" if "bf16_max" in r else ""
                print(f"{model:22} {hw[0]:>4}x{hw[1]:<5} {prec:>5} {r['s_per_image']:9.2f} {r['peak_mb']:9.0f} "
                      f"{est:>10} {bf}", flush=True)


if __name__ == "__main__":
    main()
