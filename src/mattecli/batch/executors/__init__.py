"""Where a batch's items run: the executors behind :meth:`mattecli.batch.BatchRunner.run`'s seam.

Every verb plans its items the same way whatever the executor (expansion, pairing, output names, skip/resume), then
hands them to one of:

* ``local`` (:func:`mattecli.batch.runner.local_executor`): one after another in this process;
* ``ray`` (:class:`~mattecli.batch.executors.ray_pool.RayExecutor`): Ray actors that each load the model once
  (``--device cuda``: one actor per GPU of the cluster; otherwise one per CPU), fed one item at a time each (the
  rest wait here: backpressure), their outcomes streamed back as they finish so the progress bar and the report
  fill as on a local run. Files are written by the workers with the same atomic writes, to a shared file system or
  to URLs (:mod:`mattecli.batch.remote`); a worker process that dies is restarted by Ray and its item runs again
  (written once: an item whose outputs were complete before it died is reported, not written again); an item
  that kills every worker it runs on is that item's error. Ctrl-C cancels what is queued, interrupts what runs
  (the same clean-up as a local Ctrl-C: only complete files) and stops the workers.

``executor(items, run_one)`` yields ``(item, Outcome)``; ``run_one`` is a picklable
:class:`~mattecli.batch.runner.ItemRunner` (its ``fn`` the verb's task object, which loads its model in ``load()``).

A task may also be *split*: a task with ``split(item, workers) -> parts | None`` (on the driver),
``run_part(item, part)`` (on a worker; picklable results), ``join(item, parts, results) -> result`` (on a worker;
the item's result as ``fn(item)`` gives it) and ``discard(item, parts)`` (on the driver, after a failure or an
interrupt) has the parts of one item spread over the workers (a long video's segments:
:mod:`mattecli.video.clip_task`); locally it just runs ``fn(item)``.

::

    ex = executors.make(executor, ray_address, device=device)      # usage errors now; None: local
    sha = executors.prepare(ex, task)                              # loads the model (here, or once per worker)
    code = runner.run(items, task, planned=..., executor=ex)
"""
from __future__ import annotations

import importlib.util
import os
import re

from ...errors import UsageError
from ..runner import local_executor

EXECUTORS = ("local", "ray")
ENV_EXECUTOR = "MATTECLI_EXECUTOR"
ENV_WORKERS = "MATTECLI_RAY_WORKERS"          # how many actors (default: one per GPU, or per CPU)
_ADDRESS = re.compile(r"auto|local|ray://[^\s/:]+(:\d+)?|[^\s/:]+:\d+")

__all__ = ["EXECUTORS", "choose", "make", "prepare", "local_executor"]


def choose(executor: str | None = None, address: str | None = None) -> str:
    """The executor's name: the flag, else ``$MATTECLI_EXECUTOR``, else ``ray`` when ``--ray-address`` is given,
    else ``local``. A usage error for anything else."""
    given = executor if executor is not None else os.environ.get(ENV_EXECUTOR) or None
    if given is None:
        return "ray" if address else "local"
    name = given.strip().lower()
    if name not in EXECUTORS:
        src = "--executor" if executor is not None else f"${ENV_EXECUTOR}"
        raise UsageError(f"{src} {given!r}: use {' or '.join(EXECUTORS)}")
    return name


def make(executor: str | None = None, address: str | None = None, *, device: str = "auto",
         workers: int | None = None, quiet: bool = False):
    """The executor for ``--executor`` / ``--ray-address`` (None for local), checked before any work: usage errors
    (exit 2) for an unknown executor or address form, ``--device cuda:N`` with Ray (Ray gives each worker its GPU),
    or Ray not installed."""
    name = choose(executor, address)
    if name == "local":
        if address:
            raise UsageError("--ray-address needs --executor ray (it names the Ray cluster to run on)")
        return None
    if address is not None and not _ADDRESS.fullmatch(address.strip()):
        raise UsageError(f"--ray-address {address!r}: use auto, ray://HOST:PORT or HOST:PORT (or leave it out for "
                         "a local Ray)")
    dev = (device or "auto").strip().lower()
    if re.fullmatch(r"cuda:\d+", dev):
        raise UsageError(f"--device {device} with --executor ray: Ray gives each worker a GPU of its own; use "
                         "--device cuda (one worker per GPU)")
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray: pip install 'mattecli[ray]'")
    if workers is None and os.environ.get(ENV_WORKERS):
        try:
            workers = int(os.environ[ENV_WORKERS])
        except ValueError:
            raise UsageError(f"${ENV_WORKERS} {os.environ[ENV_WORKERS]!r}: a number of workers") from None
    if workers is not None and workers < 1:
        raise UsageError(f"{workers} Ray workers: at least 1")
    from .ray_pool import RayExecutor

    addr = None if address is None or address.strip().lower() == "local" else address.strip()
    return RayExecutor(addr, device=dev, workers=workers, quiet=quiet)


def prepare(executor, task, count: int | None = None) -> dict:
    """Load the model where it will run, before any item: in this process (local; ``task.load()``), or once in every
    worker (Ray). Returns ``{"weights_sha256": ..., "device": ...}`` for the report; loading errors are raised
    here, as a local run raises them."""
    if executor is not None and hasattr(executor, "prepare"):
        return executor.prepare(task, count=count)
    load = getattr(task, "load", None)
    backend = load() if callable(load) else None
    line = getattr(backend, "runtime_line", None)
    return {"weights_sha256": getattr(backend, "weights_sha256", None),
            "device": str(getattr(backend, "device", "cpu")) if backend is not None else None,
            "runtime": line() if callable(line) else None}
