"""Scoring workers and the process pool behind ``--jobs N`` (results come back in input order)."""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import MatteError
from .metrics import METRICS, compute_all


def _size(a) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def score_arrays(name: str, pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None,
                 where: str = "", keys=METRICS) -> dict:
    """One row: the metrics in reporting units + ``seconds`` spent computing them; or ``error``."""
    where = where or name
    if pred.shape != gt.shape:
        return {"name": name, "error": f"{where}: prediction is {_size(pred)} but ground truth is {_size(gt)}; "
                                       f"resize the prediction to the ground truth's size"}
    if trimap is not None and trimap.shape != gt.shape:
        return {"name": name, "error": f"{where}: trimap is {_size(trimap)} but ground truth is {_size(gt)}; "
                                       f"use the trimap that belongs to this image"}
    t0 = time.perf_counter()
    vals = compute_all(pred, gt, trimap, keys)
    row = {"name": name, **vals, "seconds": time.perf_counter() - t0}
    return row


def score_files(task: tuple) -> dict:
    """Worker for ``--pred/--gt``: task = (name, pred_path, gt_path, trimap_path or None)."""
    from .datasets import read_alpha, read_trimap

    name, pp, gp, tp = task
    try:
        P = read_alpha(pp)
        G = read_alpha(gp)
        T = read_trimap(tp) if tp else None
    except MatteError as e:
        return {"name": name, "error": str(e)}
    return score_arrays(name, P, G, T, where=pp)


def score_array_task(task: tuple) -> dict:
    name, P, G, T, where = task
    return score_arrays(name, P, G, T, where=where)


def score_sequence(task: tuple) -> dict:
    """Worker for ``--video``: task = (name, pred_path, gt_path, with_messddt)."""
    from .datasets import read_sequence
    from .metrics import video_metrics

    name, pp, gp, with_m = task
    try:
        preds = read_sequence(pp)
        gts = read_sequence(gp)
    except MatteError as e:
        return {"name": name, "error": str(e)}
    if len(preds) != len(gts):
        return {"name": name, "error": f"{pp}: {len(preds)} predicted frames but {len(gts)} ground-truth frames "
                                       f"in {gp}; export every frame"}
    for i, (P, G) in enumerate(zip(preds, gts)):
        if P.shape != G.shape:
            return {"name": name, "error": f"{pp}: frame {i} is {_size(P)} but the ground truth is {_size(G)}; "
                                           f"resize the prediction"}
    t0 = time.perf_counter()
    vals = video_metrics(preds, gts, with_messddt=with_m)
    frames = vals.pop("frames")
    return {"name": name, **vals, "frames": frames, "seconds": time.perf_counter() - t0}


def _context():
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def run(fn: Callable[[tuple], dict], tasks: Iterable[tuple], jobs: int = 1) -> Iterator[dict]:
    """Apply ``fn`` to every task, yielding rows in input order; ``jobs > 1`` uses that many worker processes.

    ``tasks`` may be a generator (e.g. model predictions): at most ``2*jobs`` tasks are in flight at once.
    """
    if jobs <= 1:
        for t in tasks:
            yield fn(t)
        return
    from collections import deque

    window: deque = deque()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_context()) as ex:
        for t in tasks:
            window.append(ex.submit(fn, t))
            if len(window) >= 2 * jobs:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
