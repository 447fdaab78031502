"""Shared helpers for the FBA / GCA / SIM / DIM tests: seeded images and blob trimaps of any size, batches, float64
copies of a model and the float-noise criterion for networks that synthetic weights make chaotic."""
from __future__ import annotations

import numpy as np


def sample(h: int, w: int, seed: int = 3):
    """uint8 RGB image and a 0/128/255 ellipse trimap (all three classes present)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    r = ((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2
    tri = np.zeros((h, w), np.uint8)
    tri[r < 1.6] = 128
    tri[r < 0.6] = 255
    return img, tri


def check_known(alpha, tri):
    assert np.all(alpha[tri == 0] == 0)
    assert np.all(alpha[tri == 255] == 1)
    assert alpha.dtype == np.float32 and np.isfinite(alpha).all()
    assert alpha.min() >= 0 and alpha.max() <= 1


def batch_of(pairs):
    """[(uint8 HxWx3 image, HxW trimap), ...] of one size -> a Batch on the CPU."""
    import torch

    from mattecli.backends.base import Batch

    img = torch.stack([torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))) for i, _ in pairs])
    tri = torch.stack([torch.from_numpy(np.ascontiguousarray(t))[None] for _, t in pairs])
    return Batch(img, tri)


def float64_copy(model):
    from conftest import float64_copy as copy64

    return copy64(model)


def batch_vs_singles(model, batch) -> float:
    """max |predict_batch(batch) - predict_batch(item)| over items and over alpha / foreground / background."""
    whole = model.predict_batch(batch)
    worst = 0.0
    for i in range(batch.n):
        one = model.predict_batch(batch.slice(i, i + 1))
        for k in ("alpha", "foreground", "background"):
            a, b = getattr(whole, k), getattr(one, k)
            assert (a is None) == (b is None), k
            if a is not None:
                assert tuple(a.shape[1:]) == tuple(b.shape[1:]), k
                worst = max(worst, float((a[i:i + 1].double() - b.double()).abs().max()))
    return worst


def assert_within_float_noise(ours32, ours64, ref, factor: float = 2.0, floor: float = 1e-7, what: str = ""):
    """conftest's float-noise yardstick, with the floor relative to max|ref|."""
    from conftest import assert_within_float_noise as check

    check(ours32, ours64, ref, factor=factor, rel_floor=floor, what=what)


def memoise_distance_channels(monkeypatch, module) -> None:
    """Same trimap in, same six distance channels out, for the rest of the test.

    OpenCV's precise ``distanceTransform`` (DIST_L2, mask 0) returns results that differ by one float32 ulp from call
    to call on the same input (seen with opencv 5.1: a handful of pixels), so two runs of the official FBA/SIM
    pre-processing are not bit-identical. A batch-versus-items check memoises it to compare batching alone."""
    from mattecli.backends.fba import trimap_channels

    original = trimap_channels.trimap_transform
    seen: dict = {}

    def memo(t, *args, **kwargs):
        key = (t.shape, t.tobytes(), args, tuple(sorted(kwargs.items())))
        if key not in seen:
            seen[key] = original(t, *args, **kwargs)
        return seen[key].copy()

    monkeypatch.setattr(module, "trimap_transform", memo)
