"""Matting evaluation: SAD, MSE, Grad, Conn exactly as the official DIM MATLAB code; dtSSD and MESSDdt for video.

``metrics`` is dependency-light (numpy + OpenCV); ``datasets`` reads alphas the official way and builds
Composition-1k style inputs; ``unknown`` checks which trimap pixels are scored (128, or ``--unknown-values``);
``pairing`` and ``sequences`` turn folders into batch items; ``modes`` runs each mode
through the batch runner with the scoring workers of ``runner``; ``report`` prints and writes the results.
"""
from __future__ import annotations

from .metrics import (  # noqa: F401
    compute_all,
    connectivity_error,
    gradient_error,
    mse_error,
    sad_error,
    video_metrics,
)
