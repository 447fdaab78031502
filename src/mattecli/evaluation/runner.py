"""Scoring under the batch runner: the workers, and the executor behind ``--jobs N``.

Every ``eval`` mode is one :class:`mattecli.batch.BatchRunner` run over its items (per-item errors, progress,
Ctrl-C/SIGTERM). The verb's function prepares an item here (``--model``: reads and runs the model) and returns a
picklable scoring task in its result (``{"score": task, ...}``); :func:`scoring_executor` scores the tasks with a
worker (:func:`score_files`, :func:`score_sequence`, :func:`score_array_task`) inline, or in ``N`` worker processes
while the next items are prepared, and hands the outcomes back in input order. :func:`rows_and_errors` turns them
into the report's rows.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections import deque
from typing import Callable, Iterator

import numpy as np

from ..batch import Item, Outcome, local_executor
from ..errors import MatteError
from .metrics import METRICS, compute_all, unknown_mask
from .unknown import LEFT_OUT, scored_trimap


def _size(a) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def score_arrays(name: str, pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None,
                 where: str = "", keys=METRICS, unknown_values=None, trimap_where: str = "") -> dict:
    """One row: the metrics in reporting units + ``seconds`` spent computing them; or ``error``.

    ``unknown_values``: the trimap values scored as unknown (None: the official 128; :mod:`.unknown`). A trimap
    with no unknown pixel but other greys is an error; one with no unknown pixel at all gives a row with no values
    and ``left_out`` (left out of every mean)."""
    where = where or name
    if pred.shape != gt.shape:
        return {"name": name, "error": f"{where}: prediction is {_size(pred)} but ground truth is {_size(gt)}; "
                                       f"resize the prediction to the ground truth's size"}
    if trimap is not None and trimap.shape[:2] != gt.shape[:2]:
        return {"name": name, "error": f"{where}: trimap is {_size(trimap)} but ground truth is {_size(gt)}; "
                                       f"use the trimap that belongs to this image"}
    t0 = time.perf_counter()
    if trimap is not None:
        try:
            trimap = scored_trimap(trimap, unknown_values, trimap_where or where)
        except MatteError as e:
            return {"name": name, "error": str(e)}
        if not unknown_mask(trimap, gt.shape[:2]).any():
            return {"name": name, **{k: None for k in keys}, "left_out": LEFT_OUT,
                    "seconds": time.perf_counter() - t0}
    vals = compute_all(pred, gt, trimap, keys)
    return {"name": name, **vals, "seconds": time.perf_counter() - t0}


def score_files(task: tuple) -> dict:
    """Worker for ``--pred/--gt``: task = (name, pred_path, gt_path, trimap_path or None[, unknown_values])."""
    from .datasets import read_alpha

    name, pp, gp, tp = task[:4]
    try:
        P = read_alpha(pp)
        G = read_alpha(gp)
        T = read_alpha(tp) if tp else None   # as stored: unknown is exactly 128 (or --unknown-values)
    except MatteError as e:
        return {"name": name, "error": str(e)}
    return score_arrays(name, P, G, T, where=pp, unknown_values=task[4] if len(task) > 4 else None,
                        trimap_where=tp or "")


def score_array_task(task: tuple) -> dict:
    """Worker for ``--model``: task = (name, prediction, ground truth, trimap or None, file named in errors
    [, unknown_values, trimap file named in its errors])."""
    name, P, G, T, where = task[:5]
    unknown = task[5] if len(task) > 5 else None
    return score_arrays(name, P, G, T, where=where, unknown_values=unknown,
                        trimap_where=task[6] if len(task) > 6 and task[6] else "")


def score_sequence(task: tuple) -> dict:
    """Worker for ``--video``: task = (name, pred_path, gt_path, with_messddt)."""
    from .metrics import video_metrics
    from .sequences import read_sequence

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


def _settle(out: Outcome, row: dict) -> Outcome:
    """Put a worker's row into the item's outcome: the metrics first, then the preparation's own fields."""
    if "error" in row:
        out.status, out.error = "failed", row["error"]
    else:
        out.fields = {**{k: v for k, v in row.items() if k != "name"}, **out.fields}
    return out


def scored(pairs, worker: Callable[[tuple], dict], jobs: int = 1) -> Iterator[tuple[Item, Outcome]]:
    """(item, outcome) pairs whose fields may carry a ``score`` task -> the same pairs, scored, in input order.

    ``jobs > 1`` scores in that many worker processes, with at most ``2*jobs`` tasks in flight."""
    if jobs <= 1:
        for it, out in pairs:
            task = out.fields.pop("score", None)
            yield it, (out if task is None else _settle(out, worker(task)))
        return
    from concurrent.futures import ProcessPoolExecutor

    window: deque = deque()

    def pop():
        it, out, fut = window.popleft()
        return it, (out if fut is None else _settle(out, fut.result()))

    with ProcessPoolExecutor(max_workers=jobs, mp_context=_context()) as ex:
        for it, out in pairs:
            task = out.fields.pop("score", None)
            window.append((it, out, None if task is None else ex.submit(worker, task)))
            if len(window) >= 2 * jobs:
                yield pop()
        while window:
            yield pop()


def scoring_executor(worker: Callable[[tuple], dict], jobs: int, sink: dict, inner=None):
    """A :class:`~mattecli.batch.BatchRunner` executor: items prepared by ``inner`` (here one after another by
    default; another executor such as Ray's runs the model's predictions on its workers), scored by :func:`scored`;
    ``sink`` receives each finished item's outcome (``id(item) -> Outcome``)."""
    def executor(items, run_one):
        for it, out in scored((inner or local_executor)(items, run_one), worker, jobs):
            sink[id(it)] = out
            yield it, out

    return executor


def with_file(msg: str, path) -> str:
    """``FILE: reason``, as the batch runner prints per-item errors."""
    p = str(path) if path else ""
    return msg if not p or p in msg else f"{p}: {msg}"


def rows_and_errors(items, sink: dict) -> tuple[list[dict], list[dict]]:
    """The report's rows (``{"name", metrics..., "seconds", ...}``) and errors (``{"name", "error"}``), in item
    order; items never reached (an interrupted run) are in neither."""
    rows, errors = [], []
    for it in items:
        out = sink.get(id(it))
        if out is None:
            continue
        if out.status == "ok":
            rows.append({"name": it.relstem, **out.fields})
        elif out.status == "failed":
            errors.append({"name": it.relstem, "error": with_file(out.error or "failed", it.path)})
    return rows, errors
