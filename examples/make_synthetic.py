#!/usr/bin/env python3
"""Generate a small synthetic matting example with exact ground truth (deterministic, numpy + OpenCV only).

A soft, hair-like foreground (a head-like blob with a few hundred thin anti-aliased strands, some of them
semi-transparent) with known alpha and colours is composited over a textured background:

    image = alpha * F + (1 - alpha) * B

Files written (PNG, 8-bit) to the output folder (default: examples/data next to this script):

    hair.png          the composite (the input to matte)
    hair_trimap.png   its trimap: 0 background, 128 unknown (every pixel with 0 < alpha < 1, widened by --band px), 255 foreground
    hair_alpha.png    ground-truth alpha
    hair_fg.png       ground-truth foreground colours F (valid everywhere, also where alpha is 0)
    hair_bg.png       the background B (also usable as a clean plate: hair.png <-> hair_bg.png pair by stem)
    backdrop.png      another background, for `mattecli composite --composite-bg backdrop.png`

Usage:  python examples/make_synthetic.py [--out DIR] [--size 320] [--seed 7] [--band 4]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

SS = 4  # supersampling factor for anti-aliased strands


def texture(h: int, w: int, rng: np.random.Generator, palette) -> np.ndarray:
    """Smooth coloured texture: mixture of oriented sinusoids and blurred noise (float32 HxWx3 in [0,1])."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        acc = np.zeros((h, w), np.float32)
        for _ in range(4):
            fx, fy = rng.uniform(-0.08, 0.08, 2)
            ph = rng.uniform(0, 2 * np.pi)
            acc += np.sin(fx * x + fy * y + ph).astype(np.float32)
        noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 3.0)
        acc = acc / 4.0 * 0.5 + noise * 0.6
        out[..., c] = palette[0][c] + (palette[1][c] - palette[0][c]) * (0.5 + 0.5 * np.tanh(acc))
    return np.clip(out, 0, 1)


def hair_alpha_and_colour(h: int, w: int, rng: np.random.Generator):
    """Alpha (HxW) and foreground colours (HxWx3), float32 in [0,1]."""
    H, W = h * SS, w * SS
    alpha = np.zeros((H, W), np.float32)
    cy, cx = int(0.62 * H), int(0.5 * W)
    ry, rx = int(0.30 * H), int(0.24 * W)
    # solid core: head + shoulders
    cv2.ellipse(alpha, (cx, cy), (rx, ry), 0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    cv2.ellipse(alpha, (cx, H + int(0.05 * H)), (int(0.45 * W), int(0.22 * H)), 0, 0, 360, 1.0, -1, lineType=cv2.LINE_AA)
    # strands: curved polylines leaving the upper half of the head, drawn 1 px wide at SS x resolution
    for i in range(600):
        theta = rng.uniform(np.pi * 1.05, np.pi * 1.95)  # upper half (image y points down)
        r0 = rng.uniform(0.85, 1.0)
        px, py = cx + r0 * rx * np.cos(theta), cy + r0 * ry * np.sin(theta)
        direction = theta + rng.normal(0, 0.25)
        length = rng.uniform(0.12, 0.4) * H
        curl = rng.normal(0, 0.012)
        steps = 40
        pts = []
        for s in range(steps):
            pts.append((px, py))
            direction += curl * SS + rng.normal(0, 0.02)
            px += np.cos(direction) * length / steps
            py += np.sin(direction) * length / steps
        pts = np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits
        opacity = 1.0 if i % 3 else rng.uniform(0.35, 0.8)   # some strands semi-transparent
        thickness = int(rng.integers(1, 3))
        # draw into a small canvas around the strand (fast), then take the max with the matte
        x0 = max(int(pts[:, 0].min()) // 16 - 4, 0)
        y0 = max(int(pts[:, 1].min()) // 16 - 4, 0)
        x1 = min(int(pts[:, 0].max()) // 16 + 5, W)
        y1 = min(int(pts[:, 1].max()) // 16 + 5, H)
        if x1 <= x0 or y1 <= y0:
            continue
        strand = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.polylines(strand, [pts - np.array([x0 * 16, y0 * 16], np.int32)], False, 1.0, thickness=thickness,
                      lineType=cv2.LINE_AA, shift=4)
        np.maximum(alpha[y0:y1, x0:x1], strand * opacity, out=alpha[y0:y1, x0:x1])
    alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    alpha = np.clip(alpha, 0, 1)
    alpha[alpha < 1.0 / 512] = 0.0
    alpha[alpha > 1 - 1.0 / 512] = 1.0
    # foreground colours: warm brown hair with low-frequency variation and highlights, a paler face area
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.array([0.45, 0.28, 0.14], np.float32)
    var = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 6.0) * 2.0
    fg = base[None, None, :] * (1.0 + 0.35 * var[..., None])
    shine = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 2.0) * 3.0
    highlight = np.clip(shine, 0, 1) ** 2
    fg = fg + 0.25 * highlight[..., None] * np.array([1.0, 0.85, 0.6], np.float32)
    face = ((x - w * 0.5) / (0.17 * w)) ** 2 + ((y - h * 0.68) / (0.2 * h)) ** 2 < 1
    fg[face] = np.array([0.86, 0.66, 0.55], np.float32) + 0.03 * var[face][:, None]
    return alpha.astype(np.float32), np.clip(fg, 0, 1).astype(np.float32)


def make_trimap(alpha: np.ndarray, band: int) -> np.ndarray:
    unknown = (alpha > 0) & (alpha < 1)
    if band > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        unknown = cv2.dilate(unknown.astype(np.uint8), k).astype(bool)
    t = np.where(alpha >= 1, 255, 0).astype(np.uint8)
    t[unknown] = 128
    return t


def generate(size: int = 320, seed: int = 7, band: int = 4) -> dict:
    """All arrays (float32 / uint8) of the example, deterministic for (size, seed, band)."""
    rng = np.random.default_rng(seed)
    h = w = int(size)
    alpha, fg = hair_alpha_and_colour(h, w, rng)
    bg = texture(h, w, rng, ((0.15, 0.35, 0.55), (0.75, 0.85, 0.6)))
    backdrop = texture(int(h * 0.75), w, rng, ((0.9, 0.55, 0.2), (0.2, 0.4, 0.8)))
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    q = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return {"hair": q(image), "hair_alpha": q(alpha), "hair_fg": q(fg), "hair_bg": q(bg),
            "hair_trimap": make_trimap(alpha, band), "backdrop": q(backdrop)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data"), help="output folder")
    ap.add_argument("--size", type=int, default=320, help="image side in pixels (default 320)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--band", type=int, default=4, help="trimap: unknown band widened by this many px")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in generate(args.size, args.seed, args.band).items():
        a = arr[..., ::-1] if arr.ndim == 3 else arr  # RGB -> BGR for OpenCV
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok
        tmp = out / f".{name}.png.part"
        tmp.write_bytes(buf.tobytes())
        tmp.replace(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
