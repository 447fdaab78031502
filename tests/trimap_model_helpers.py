"""Shared helpers for the FBA / GCA / SIM tests: seeded images and blob trimaps of any size."""
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
