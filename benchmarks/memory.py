#!/usr/bin/env python3
"""Measure the memory guard's constants: peak RSS of one prediction above the loaded model, against the pixels.

Each point runs in a fresh process (no allocator cache from an earlier size): load the model (synthetic weights in
the official layout from ../shared/oracles, or no weights for the classical solvers), free the loading garbage
(``gc`` + ``malloc_trim``), read VmRSS, reset the peak (``/proc/self/clear_refs`` 5), predict once, read VmHWM. The
difference is what :mod:`mattecli.memory` estimates (the decoded input is already resident when it checks).

Then per model a non-negative least-squares fit of ``peak = base + per_pixel * P + per_net * N**e (+ per_box * B)``
(P input pixels; N the pixels the network works on by the entry's rule, or closed-form's unknown pixels; B their
bounding box), raised so that no measured point exceeds it. How the registry's ``MemoryModel``s were made from it
(``backends/<family>/__init__.py``, rounded up):

* an entry with several weight sets (rvm, gfm, bgmv2) or variants (cam) takes the largest of each constant;
* ``per_pixel`` is at least the outputs' float32 copies: 12 B (alpha) or 36 B (alpha and colours) per pixel, even
  where the network's peak hid them at the measured sizes; closed-form's is 56 B (float64 image and trimap, alpha);
* pymatting's Laplacian solvers keep 60 B per pixel in ``per_pixel`` and the rest in ``per_net_pixel``, scaled by
  their window (``window_option="radius"``);
* bgmv2's ``refine_mode`` full / thresholding is its own case (``bgmv2.full``), a ``variants`` entry.

    python benchmarks/memory.py                         # every case below (about 30 min on 2 cores)
    python benchmarks/memory.py --models fba,gca        # some of them
    python benchmarks/memory.py --models closed-form --sizes 256,512,768,1024
    python benchmarks/memory.py --out points.json       # keep the raw points; --fit points.json refits them

Keep every point far below the machine's memory: sizes are per case and small; the fit extrapolates. Threads:
OMP_NUM_THREADS (default 2).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATTECLI_SHARED", ROOT.parent / "shared"))

# name -> (model to load, oracle folder or None, load options, sizes (square side), extra cases (options, sizes))
CASES = {
    "closed-form": ("closed-form", None, {}, (256, 512, 768, 1024, 1280, 1600), ()),
    "closed-form.blob": ("closed-form", None, {"_trimap": "blob"}, (256, 384, 512, 640, 768, 896, 1152), ()),
    "closed-form/pymatting": ("closed-form", None, {"solver": "pymatting"}, (256, 512, 768), ()),
    "knn": ("knn", None, {}, (256, 512, 768), ()),
    "lkm": ("lkm", None, {}, (256, 512, 768), ()),
    "rw": ("rw", None, {}, (256, 512, 768), ()),
    "sm": ("sm", None, {}, (256, 512, 768), ()),
    "lbdm": ("lbdm", None, {}, (256, 512, 768), ()),
    "rvm": ("rvm.mobilenetv3-pth", "rvm_mobilenetv3", {}, (256, 512, 1024, 2048, 4096),
            (({"downsample_ratio": 1.0}, (512, 1024)),)),
    "rvm.resnet50": ("rvm.resnet50", "rvm_resnet50", {}, (256, 512, 1024, 2048, 4096),
                     (({"downsample_ratio": 1.0}, (512, 1024)),)),
    "fba": ("fba", "fba_resnet50-gn-ws", {}, (256, 512, 768), (({"tile": 256}, (512, 1024)),)),
    "gca": ("gca", "gca_dist-all-data", {}, (256, 512, 768), (({"tile": 256}, (512, 1024)),)),
    "dim": ("dim", "dim_huochaitiantang-vgg16-skip-stage1", {"max_size": 512}, (256, 512, 1024, 2048, 4096), ()),
    "dim.foamliu": ("dim.foamliu", "dim_foamliu-segnet", {}, (256, 512, 768), ()),
    "sim": ("sim", "sim_matting", {}, (256, 512, 768), ()),
    "cam.lap": ("cam.lap", "conmat_lap", {}, (256, 512, 768), (({"tile": 257}, (512, 1024)),)),
    "cam.lap-fea-da-color": ("cam.lap-fea-da-color", "conmat_lap-fea-da-color", {}, (256, 512, 768),
                             (({"tile": 257}, (512, 1024)),)),
    "modnet": ("modnet", "modnet_mobilenetv2", {}, (256, 512, 1024, 2048, 4096), ()),
    "ppmatting": ("ppmatting", "ppmatting_hrnet-w18-human", {"max_short": 512}, (256, 512, 1024, 2048, 4096), ()),
    "gfm": ("gfm.r34-tt", "gfm_r34_tt", {"max_size": 512, "shorter_path_limitation": 512},
            (256, 512, 1024, 2048, 4096), ()),
    "gfm.d121-tt": ("gfm.d121-tt", "gfm_d121_tt", {"max_size": 512, "shorter_path_limitation": 512},
                    (256, 512, 1024), ()),
    "gfm.r101-tt": ("gfm.r101-tt", "gfm_r101_tt", {"max_size": 512, "shorter_path_limitation": 512},
                    (256, 512, 1024), ()),
    "bgmv2": ("bgmv2.resnet50", "bgmv2_resnet50", {}, (512, 1024, 2048, 4096),
              (({"backbone_scale": 0.5}, (1024, 2048)),)),
    "bgmv2.full": ("bgmv2.resnet50", "bgmv2_resnet50", {"refine_mode": "full"}, (256, 512, 1024), ()),
    "bgmv2.resnet101": ("bgmv2.resnet101", "bgmv2_resnet101", {}, (512, 1024, 2048, 4096), ()),
    "bgm": ("bgm", "bgmv1_netg", {"segmenter": None}, (256, 512, 1024), ()),
    "bisenetv2.cityscapes": ("bisenetv2.cityscapes", "bisenetv2_city", {}, (256, 512, 1024), ()),
    "bisenetv2.cocostuff": ("bisenetv2.cocostuff", "bisenetv2_coco", {}, (256, 512, 1024, 2048, 4096), ()),
}


# ------------------------------------------------------------------------------------------------ weights
def _synthetic():
    spec = importlib.util.spec_from_file_location("_synthetic_weights", SHARED / "oracles" / "synthetic_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def oracle_weights(folder: str) -> dict:
    """{official key: array} for an oracle folder (plain, BN-renamed recipe, or TF layout)."""
    sw = _synthetic()
    path = SHARED / "oracles" / folder / "layout.json"
    layout = json.loads(path.read_text())
    if "recipe_layout" in layout:         # values made under other names, stored under the native ones
        vals = sw.synthetic_state_dict(layout["recipe_layout"])
        return {n[0]: vals[r[0]] for n, r in zip(layout["state_dict"], layout["recipe_layout"])}
    if "torch_equivalent_layout" in layout:   # TF checkpoint: values from the torch layout, transposed
        vals = sw.synthetic_state_dict(layout["torch_equivalent_layout"])
        out = {}
        for (tk, _, _), (n, s, _) in zip(layout["torch_equivalent_layout"], layout["state_dict"]):
            v = vals[tk]
            if n.endswith("/depthwise_weights"):
                v = v.reshape(s[2], s[3], s[0], s[1]).transpose(2, 3, 0, 1)
            elif n.endswith("/weights"):
                v = v.transpose(2, 3, 1, 0)
            out[n] = np.ascontiguousarray(v)
        return out
    return sw.from_layout_json(str(path))


def load(name: str, folder: str | None, options: dict):
    import torch

    import mattecli

    if folder is None:
        return mattecli.load_model(name, **options)
    w = {k: torch.from_numpy(np.array(v)) for k, v in oracle_weights(folder).items()}
    if name == "sim":
        clf = {k: torch.from_numpy(np.array(v)) for k, v in oracle_weights("sim_classifier").items()}
        options = {**options, "classifier_weights": clf}
    return mattecli.load_model(name, weights=w, **options)


# ------------------------------------------------------------------------------------------------ one point
def inputs(entry, h: int, w: int, kind: str = "ring"):
    """Image (smooth + noise), trimap (an unknown ring, 6 % of the side wide, plus unknown specks in every 128 px
    block so that tiles never skip; ``kind="blob"``: a thick ring, 47 % of the pixels), plate."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.clip(np.stack([xx / w, yy / h, (xx + yy) / (h + w)], 2) * 200 + rng.normal(0, 20, (h, w, 3)), 0, 255)
    img = img.astype(np.uint8)
    tri = plate = None
    if "trimap" in entry.requires:
        r = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
        tri = np.where(r < 0.25, 255, 0).astype(np.uint8)
        tri[np.abs(r - 0.25) < (0.15 if kind == "blob" else 0.03)] = 128
        if entry.family != "classical":
            tri[::128, ::128] = 128
    if "background" in entry.requires:
        plate = np.clip(img.astype(np.int16) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return img, tri, plate


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def one(name: str, folder: str | None, options: dict, h: int, w: int) -> dict:
    """Runs in the child: -> {"peak": bytes above the loaded model, "pixels", "seconds", "unknown", "box"}."""
    os.environ["MATTECLI_MEMORY"] = "off"
    import torch

    from mattecli.backends.base import Batch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    options = dict(options)
    kind = options.pop("_trimap", "ring")
    m = load(name, folder, options)
    img, tri, plate = inputs(m.entry, h, w, kind)
    batch = Batch.from_numpy(img, tri, plate)
    kw = {"segmentation": np.full((h, w), 255, np.uint8)} if m.entry.family == "bgm" else {}
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    rss = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    m.predict_batch(batch, **kw)
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM") - rss
    from mattecli.memory import unknown_stats

    unknown = box = 0.0
    if tri is not None and m.entry.memory is not None and m.entry.memory.for_options(m.options).net == "unknown":
        unknown, box = unknown_stats(m.entry, m.options, tri, h, w)
    elif tri is not None:
        from mattecli.memory import _unknown_stats

        unknown, box = _unknown_stats(tri, h, w, 2)
    return {"peak": peak, "pixels": h * w, "seconds": round(seconds, 2), "unknown": unknown, "box": box}


def measure(case: str, options: dict, side: int, timeout: int) -> dict | None:
    name, folder, base_opts, _, _ = CASES[case]
    opts = {**base_opts, **options}
    cmd = [sys.executable, __file__, "--one", json.dumps([name, folder, opts, side, side])]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {case} {side}: timed out", file=sys.stderr)
        return None
    if out.returncode:
        print(f"  {case} {side}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    p = json.loads(out.stdout.strip().splitlines()[-1])
    p.update(case=case, model=name, options=opts, side=side)
    print(f"  {case:24s} {json.dumps(options):28s} {side:5d}  peak {p['peak'] / 2**20:8.1f} MB  "
          f"{p['seconds']:6.1f} s", file=sys.stderr, flush=True)
    return p


# ------------------------------------------------------------------------------------------------ fit
def fit(points: list[dict], exponent: float | None = None) -> dict:
    """NNLS of peak on [1, P, N**e, B] over one model's points, raised to cover each point."""
    from scipy.optimize import nnls

    from mattecli.memory import model_of, network_pixels

    from mattecli.registry import get

    entry = get(points[0]["model"])
    mem = model_of(entry, {**entry.option_defaults(), **points[0]["options"]}) if entry.memory is not None else None
    rows, y = [], []
    unknown_rule = mem is not None and mem.net == "unknown"
    for p in points:
        h = w = p["side"]
        if unknown_rule:
            net, box = p["unknown"], p["box"]
        else:
            opts = {k: v for k, v in p["options"].items() if not k.startswith("_")}
            net = network_pixels(mem, {**entry.option_defaults(), **opts}, h, w) if mem else p["pixels"]
            box = 0.0
        rows.append((net, box, p["pixels"]))
        y.append(p["peak"])
    y = np.asarray(y, float)
    best = None
    for e in ([exponent] if exponent else ([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6] if unknown_rule else [1.0])):
        a = np.array([[1.0, px, net ** e, box] for net, box, px in rows])
        coef, res = nnls(a / y[:, None], np.ones_like(y))        # relative error: small sizes count as much
        pred = a @ coef
        scale = max(1.0, float(np.max(y / np.maximum(pred, 1))))
        err = float(np.max(np.abs(pred - y) / y))
        if best is None or err < best["err"]:
            best = {"exponent": e, "coef": coef * scale, "err": err}
    c = [float(x) for x in best["coef"]]
    return {"base_mb": round(c[0] / 2**20, 1), "per_pixel": round(c[1], 1), "per_net_pixel": round(c[2], 3),
            "per_box_pixel": round(c[3], 1), "exponent": best["exponent"], "max_rel_err": round(best["err"], 3)}


#: cases fitted together (closed-form: a thin ring and a thick one, one model for both geometries)
FIT_GROUP = {"closed-form.blob": "closed-form"}


def report(points: list[dict]) -> None:
    by: dict = {}
    for p in points:
        by.setdefault(FIT_GROUP.get(p["case"], p["case"]), []).append(p)
    print(f"{'case':24s} {'points':>6s}  fit (bytes; base in MB)")
    for case, pts in by.items():
        if len(pts) < 2:
            print(f"{case:24s} {len(pts):6d}  too few points")
            continue
        print(f"{case:24s} {len(pts):6d}  {fit(pts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--models", default="", help="comma-separated cases (default: all): " + ", ".join(CASES))
    ap.add_argument("--sizes", default="", help="square sides overriding each case's own")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per point")
    ap.add_argument("--limit", type=float, default=6.0,
                    help="GB: a size whose peak could pass this (the last peak scaled by the area) is skipped")
    ap.add_argument("--out", help="write the raw points (JSON)")
    ap.add_argument("--fit", help="refit raw points from a JSON file instead of measuring")
    args = ap.parse_args()
    if args.one:
        name, folder, opts, h, w = json.loads(args.one)
        print(json.dumps(one(name, folder, opts, h, w)))
        return
    if args.fit:
        report(json.loads(Path(args.fit).read_text()))
        return
    cases = [c.strip() for c in args.models.split(",") if c.strip()] or list(CASES)
    points = []
    for case in cases:
        _, _, _, sizes, extra = CASES[case]
        if args.sizes:
            sizes = tuple(int(s) for s in args.sizes.split(","))
        for opts, sz in (({}, sizes),) + tuple(extra):
            last = None
            for side in sz:
                growth = 3.2 if case in ("closed-form", "closed-form.blob") else 2.0   # LDLT fill: superlinear
                if last and last["peak"] * (side / last["side"]) ** growth > args.limit * 2**30:
                    print(f"  {case} {side}: skipped (could pass {args.limit} GB)", file=sys.stderr)
                    break
                p = measure(case, opts, side, args.timeout)
                last = p or last
                if p:
                    points.append(p)
                    if args.out:
                        Path(args.out).write_text(json.dumps(points, indent=1))
    report(points)


if __name__ == "__main__":
    main()
