#!/usr/bin/env python
"""Speed and peak memory of the background-plate and trimap-free models: BGMv2 (each backbone and refine mode),
MODNet and Background Matting v1, with synthetic weights (the networks' own random initialisation: no download).

Every configuration runs in its own subprocess so that the peak resident memory (ru_maxrss) is that configuration's
alone. Timings: one warm-up call, then --repeat timed calls of the full ``predict`` pipeline (numpy in, numpy out),
and, with --video, ``predict_batch`` on a Batch of frames already in torch (as the video pipeline calls it; one plate
broadcast to the batch).

    python benchmarks/plate_models.py                      # short default run (a few minutes on 2 cores)
    python benchmarks/plate_models.py --all                # every backbone x mode x size, MODNet, BGM v1
    python benchmarks/plate_models.py --models bgmv2.mobilenetv2 --modes sampling --sizes 3840x2160 --device cuda
    python benchmarks/plate_models.py --video --batch 4     # adds frames/s through predict_batch

Notes: BGMv2's 'thresholding' and 'sampling' costs depend on how many 4x4 patches are refined; with random weights
the predicted error map is meaningless, so the table reports the refined fraction ('ref%') next to the time.
BGM v1 always crops around the person and runs at 512x512, so its cost barely depends on the input size
(segmentation is passed in, the segmenter is not timed).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEFAULT = [("bgmv2.mobilenetv2", m) for m in ("full", "sampling", "thresholding")] + [
    ("bgmv2.resnet50", "sampling"), ("modnet", None), ("bgm", None)]
ALL_BGMV2 = [(f"bgmv2.{b}", m) for b in ("resnet50", "resnet101", "mobilenetv2")
             for m in ("full", "sampling", "thresholding")]


def _synthetic_official(name: str):
    """Random-init network -> mapping in the official layout (what load_model(weights=...) expects)."""
    import torch

    torch.manual_seed(0)
    if name.startswith("bgmv2"):
        from mattecli.backends.bgmv2.net import MattingRefine

        tag = name.split(".", 1)[1] if "." in name else "resnet50"
        return MattingRefine(tag).state_dict()
    if name.startswith("modnet"):
        from mattecli.backends.modnet.convert import MODNetConverter
        from mattecli.backends.modnet.net import MODNet

        return MODNetConverter().to_official(MODNet(in_channels=3, hr_channels=32).state_dict(), None)
    if name.startswith("bgm"):
        from mattecli.backends.bgm.net import ResnetConditionHR

        return ResnetConditionHR().state_dict()
    raise SystemExit(f"unknown model {name}")


def _inputs(h: int, w: int):
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plate = np.stack([(xx / w), (yy / h), 0.5 + 0.2 * np.sin(xx / 37.0)], -1)
    plate = np.clip(plate + rng.normal(0, 0.02, plate.shape), 0, 1)
    img = plate.copy()
    person = ((xx - w / 2) / (0.2 * w)) ** 2 + ((yy - 0.65 * h) / (0.4 * h)) ** 2 < 1
    img[person] = rng.uniform(0.2, 0.8, (int(person.sum()), 3))
    u8 = lambda a: (a * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return u8(img), u8(plate), (person * 255).astype(np.uint8)


def worker(cfg: dict) -> dict:
    import numpy as np
    import torch

    import mattecli
    from mattecli.backends.base import Batch

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    name, mode = cfg["model"], cfg.get("mode")
    opts = {"refine_mode": mode} if mode else {}
    if mode == "thresholding":
        opts["refine_threshold"] = cfg.get("threshold", 0.1)
    model = mattecli.load_model(name, weights=_synthetic_official(name), device=cfg["device"],
                                precision=cfg["precision"], **opts)
    h, w = cfg["size"]
    img, plate, mask = _inputs(h, w)
    bgm_v1 = name.startswith("bgm") and not name.startswith("bgmv2")

    def predict():
        """numpy in, numpy out (BGM v1: with the person mask, through predict_batch's segmentation=)."""
        if bgm_v1:
            return model.predict_batch(Batch.from_numpy(img, None, plate), segmentation=mask).result(0)
        return model.predict(img, background=plate if name.startswith("bgm") else None)

    def sync():
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    r = predict()  # warm-up
    sync()
    times = []
    for _ in range(cfg["repeat"]):
        t = time.perf_counter()
        r = predict()
        sync()
        times.append(time.perf_counter() - t)
    out = {"s_per_image": float(np.median(times))}
    if "ref_sm" in r.extras:
        out["ref_frac"] = float(r.extras["ref_sm"].mean())
    if cfg.get("video") and not bgm_v1:
        b = cfg["batch"]
        frames = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(b, 1, 1, 1).to(model.device)
        bgs = torch.from_numpy(plate).permute(2, 0, 1)[None].to(model.device)
        batch = Batch(frames, background=bgs if name.startswith("bgmv2") else None)
        model.predict_batch(batch)
        sync()
        t = time.perf_counter()
        model.predict_batch(batch)
        sync()
        out["video_fps"] = b / (time.perf_counter() - t)
    if model.device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", help="comma-separated registry names (bgmv2.resnet50, modnet, bgm ...)")
    ap.add_argument("--modes", default="full,sampling,thresholding", help="BGMv2 refine modes")
    ap.add_argument("--sizes", default="512x512,1920x1080", help="WxH list")
    ap.add_argument("--all", action="store_true", help="every BGMv2 backbone, plus MODNet and BGM v1")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--video", action="store_true", help="also time predict_batch (frames/s)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    modes = [m for m in a.modes.split(",") if m]
    if a.models:
        configs = []
        for n in a.models.split(","):
            configs += [(n, m) for m in modes] if n.startswith("bgmv2") else [(n, None)]
    elif a.all:
        configs = [c for c in ALL_BGMV2 if c[1] in modes] + [("modnet", None), ("bgm", None)]
    else:
        configs = [c for c in DEFAULT if c[1] is None or c[1] in modes]
    sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1] for s in a.sizes.split(",")]
    rows = []
    hdr = (f"{'model':<20}{'mode':<14}{'size':>11}{'s/img':>9}{'img/s':>8}{'ref%':>7}{'video fps':>11}"
           f"{'peak RSS MB':>13}")
    if not a.json:
        print(f"# device={a.device} precision={a.precision} repeat={a.repeat}; synthetic (random-init) weights; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other processes skew CPU timings)")
        print(hdr)
    for name, mode in configs:
        for h, w in sizes:
            cfg = {"model": name, "mode": mode, "size": [h, w], "repeat": a.repeat, "device": a.device,
                   "precision": a.precision, "threads": a.threads, "video": a.video, "batch": a.batch}
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
                               capture_output=True, text=True)
            if p.returncode != 0:
                err = (p.stderr.strip().splitlines() or ["failed"])[-1]
                row = dict(cfg, error=err)
                if not a.json:
                    print(f"{name:<20}{mode or '-':<14}{w:>5}x{h:<5} error: {err}")
            else:
                row = dict(cfg, **json.loads(p.stdout.strip().splitlines()[-1]))
                if not a.json:
                    ref = f"{100 * row['ref_frac']:.0f}" if "ref_frac" in row else "-"
                    vid = f"{row['video_fps']:.2f}" if "video_fps" in row else "-"
                    print(f"{name:<20}{mode or '-':<14}{w:>5}x{h:<5}{row['s_per_image']:>9.3f}"
                          f"{1 / row['s_per_image']:>8.2f}{ref:>7}{vid:>11}{row['maxrss_mb']:>13.0f}", flush=True)
            rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
