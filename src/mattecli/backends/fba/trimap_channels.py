"""The trimap encodings of FBA Matting's ``demo.py`` (also used by SIM's ``trimap_to_clks``), on the host.

* :func:`two_channel_trimap`: HxW uint8 trimap -> HxWx2 float64, ch0 = (trimap == 0), ch1 = (trimap == 255).
* :func:`trimap_transform`: the six distance-transform channels (``cv2.distanceTransform``, which torch has no exact
  equivalent of), with numpy's x86-64 float -> uint8 wrap-around made explicit.
"""
from __future__ import annotations

import numpy as np

SIGMAS = (0.02, 0.08, 0.16)


def float_to_uint8_wrap(x: np.ndarray) -> np.ndarray:
    """numpy's ``x.astype(np.uint8)`` for out-of-range floats as on x86-64: truncate toward zero, keep the low
    8 bits (the authors' results were produced this way; made explicit so it is the same on every CPU)."""
    return (np.trunc(x).astype(np.int64) & 0xFF).astype(np.uint8)


def two_channel_trimap(trimap_u8: np.ndarray) -> np.ndarray:
    t = trimap_u8 / 255.0
    out = np.zeros(t.shape + (2,))
    out[t == 1, 1] = 1
    out[t == 0, 0] = 1
    return out


def trimap_transform(trimap2: np.ndarray, L: int = 320, skip_empty: bool = False) -> np.ndarray:
    """Official ``trimap_transform``: (H,W,2) trimap -> (6,H,W) float32 Gaussians of the Euclidean distance to the
    definite background (channels 0-2) and foreground (3-5) for sigma = 0.02L, 0.08L, 0.16L.

    skip_empty: SIM's variant (``trimap_to_clks``) leaves a class's three channels at 0 when that class is absent.
    """
    import cv2

    out = np.zeros((6,) + trimap2.shape[:2], np.float32)
    for k in range(2):
        t = trimap2[:, :, k]
        if skip_empty and np.count_nonzero(t) == 0:
            continue
        u = float_to_uint8_wrap((1 - t) * 255)
        d = cv2.distanceTransform(u, cv2.DIST_L2, 0)
        dt_mask = -(d ** 2)
        for j, s in enumerate(SIGMAS):
            out[3 * k + j] = np.exp(dt_mask / (2 * ((s * L) ** 2)))
    return out
