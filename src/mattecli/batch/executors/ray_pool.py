"""``--executor ray``: the batch's items on a pool of Ray actors (see :mod:`mattecli.batch.executors`).

* one actor per GPU (``num_gpus=1``) with ``--device cuda`` (or ``auto`` on a cluster with GPUs), otherwise one per
  CPU (``num_cpus=1``; Ray sets ``OMP_NUM_THREADS`` to match); ``$MATTECLI_RAY_WORKERS`` caps the count. Each actor
  loads the model once (``task.load()``) and works in the driver's folder (the same relative paths, on a shared file
  system mounted at the same place);
* each actor holds one item at a time (:data:`DEPTH`; the rest wait on the driver: backpressure; the cost is one
  round trip per item, ~1.5 ms here), and every finished item comes back on its own, in completion order;
* faults: Ray restarts an actor whose process dies (``max_restarts=-1``; on another node if the node is gone) and
  the calls it held go back to the queue; the one it was running is charged with the death, and after
  ``retries + 1`` deaths (it kills every worker it runs on) it is that item's error. Items are prechecked here
  (skip/resume), so a retried item whose outputs are already complete was written by the attempt that died: it is
  reported, not written again;
* Ctrl-C / SIGTERM / ``--fail-fast``: queued calls are cancelled, running ones interrupted inside the worker (a
  ``KeyboardInterrupt`` in the task's thread, so its atomic writes clean up exactly as locally), then the actors are
  stopped (and the local Ray this run started, if it did).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import ray

from ...errors import MatteError, UsageError
from .. import signals
from ..runner import ItemRunner, Outcome, captured
from .ray_worker import Worker

DEPTH = 1            # calls per actor at a time: with more, a worker that dies may take the reply of a call it
                     # had finished along, and which call killed it is a guess
RETRIES = 2          # a call retried this many times when its worker dies
GRACE = 15.0         # seconds interrupted items get to clean up before the actors are stopped
REVIVE = 300.0       # seconds a dead worker has to come back before it leaves the pool


@dataclass
class _Split:
    """An item whose parts are spread over the workers."""

    item: object
    parts: list
    results: list = field(default_factory=list)
    left: int = 0                 # parts not finished
    flying: int = 0               # parts dispatched and not back
    failed: Outcome | None = None
    t0: float = field(default_factory=time.perf_counter)


def _died(e: Exception) -> bool:
    """The error of a call whose worker process died (killed, crashed, out of memory, node lost)."""
    kinds = tuple(getattr(ray.exceptions, n) for n in ("RayActorError", "WorkerCrashedError", "NodeDiedError",
                                                       "OutOfMemoryError") if hasattr(ray.exceptions, n))
    return isinstance(e, kinds)


def _lost(e: Exception, retries: int) -> str:
    name = type(e).__name__
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if _died(e):
        return (f"its Ray worker died {retries + 1} times while working on it ({name}); the input may crash the "
                "model or need more memory")
    return f"Ray: {name}: {first}" if first else f"Ray: {name}"


class RayExecutor:
    """The Ray executor (see the module doc). Single use: :meth:`prepare` (optional), one run, :meth:`close`
    (called by the run itself when it ends)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, device: str = "auto", workers: int | None = None,
                 depth: int = DEPTH, retries: int = RETRIES, grace: float = GRACE, quiet: bool = False):
        self.address = address
        self.device = device
        self.workers = workers
        self.depth = max(1, depth)
        self.retries = retries
        self.grace = grace
        self.quiet = quiet
        self.actors: list = []
        self.info: dict = {}
        self._owned = False
        self._fn = None

    # -- the cluster and the actors --------------------------------------------------------------------------------
    def _connect(self) -> None:
        if ray.is_initialized():
            return
        kw: dict = {"logging_level": logging.ERROR, "log_to_driver": not self.quiet}
        if not (self.address or "").startswith("ray://"):
            kw["include_dashboard"] = False
        try:
            ray.init(address=self.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = self.address or "a local Ray"
            raise MatteError(f"--executor ray: cannot start or reach {where} ({first}); check --ray-address or "
                             "run `ray start --head`") from None
        self._owned = True

    def _sizing(self, count: int | None, splits: bool = False) -> tuple[int, dict]:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
        if self.device.startswith("cuda") and not gpus:
            raise UsageError("--device cuda with --executor ray: the Ray cluster has no GPUs; use --device cpu")
        gpu = self.device.startswith("cuda") or (self.device == "auto" and gpus > 0)
        n = gpus if gpu else cpus
        n = min(n, self.workers or n, n if splits else (count or n))   # an item in parts uses every worker
        opts = {"num_cpus": 1, "num_gpus": 1 if gpu else 0}
        return max(1, n), opts

    def prepare(self, fn, count: int | None = None) -> dict:
        """Start the actors (each loads the model once) and wait until they are ready; the first load error is
        raised here. Returns the report's ``weights_sha256`` / ``device`` and ``workers``."""
        if self.actors:
            return self.info
        self._connect()
        n, opts = self._sizing(count, splits=callable(getattr(fn, "split", None)))
        cls = ray.remote(concurrency_groups={"control": 1})(Worker)
        # Ray restarts a worker whose process died; its calls are put back here (Ray's own max_task_retries would
        # spend its budget on "actor unavailable" while the worker restarts, and cannot tell which call killed it)
        cls = cls.options(max_restarts=-1, max_task_retries=0, **opts)
        self._fn = fn
        self.actors = [cls.remote(fn, os.getcwd()) for _ in range(n)]
        try:
            infos = ray.get([a.ready.remote() for a in self.actors])
        except ray.exceptions.RayError as e:
            self.close()
            raise MatteError(f"--executor ray: the workers did not start ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
        for i in infos:
            if "error" in i:
                self.close()
                raise i["error"]
        first = infos[0] if infos else {}
        self.info = {"weights_sha256": first.get("weights_sha256"), "device": first.get("device"),
                     "runtime": first.get("runtime"),
                     "workers": len(self.actors), "nodes": len({i.get("node") for i in infos}),
                     "pids": [(i.get("node"), i.get("pid")) for i in infos]}
        return self.info

    def close(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []
        if self._owned and ray.is_initialized():
            ray.shutdown()
            self._owned = False

    # -- the run -----------------------------------------------------------------------------------------------------
    def __call__(self, items, run_one: ItemRunner):
        return self._run(list(items), run_one)

    def _run(self, items, run_one: ItemRunner):
        if not self.actors:
            self.prepare(run_one.fn, count=len(items))
        fn = run_one.fn
        splitter = getattr(fn, "split", None) if callable(getattr(fn, "run_part", None)) else None
        self._policy = ray.put(run_one.without_fn())
        self._rerun = not run_one.overwrite
        todo = deque(items)             # items not looked at yet
        self._units = deque()           # (kind, item, payload) ready to go
        self._flight = {}               # ObjectRef -> (actor, kind, item, payload)
        self._queues = {id(a): deque() for a in self.actors}    # each actor's calls, oldest (running) first
        self._free = deque(a for _ in range(self.depth) for a in self.actors)   # one entry per free slot
        self._deaths: dict = {}         # unit -> workers it was running on when they died
        self._down: dict = {}           # id(actor) -> [actor, died at, next probe at]: restarting, no calls sent
        self._probes: dict = {}         # ObjectRef of actor.ready() -> actor
        splits: dict = {}               # id(item) -> _Split
        self._splits = splits
        self._on_start = run_one.on_start or (lambda it: None)     # told when an item starts running on a worker
        restore = self._note_sigterm()
        try:
            while todo or self._units or self._flight:
                if self._sigint:                        # a Ctrl-C that a library call swallowed: still a Ctrl-C
                    raise KeyboardInterrupt
                if not self.actors:                     # every worker is gone for good: the rest cannot run
                    yield from self._orphans(todo)
                    break
                while self._free and (self._units or todo):
                    if self._units:
                        self._submit(*self._units.popleft())
                        continue
                    it = todo.popleft()
                    out = run_one.precheck(it)
                    if out is None and splitter is not None:
                        out = self._split(it, splitter)
                    if out is not None:
                        yield it, out
                    elif id(it) not in splits:
                        self._units.append(("run", it, None))
                self._probe_down()
                waiting = list(self._flight) + list(self._probes)
                if not waiting:
                    if self._down:                      # only restarting workers: wait for them
                        time.sleep(0.1)
                    continue
                ready, _ = ray.wait(waiting, num_returns=1, timeout=0.5)
                for ref in ready:
                    if ref in self._probes:
                        self._probed(ref)
                        continue
                    if ref not in self._flight:          # settled with its worker's death
                        continue
                    for r, out in self._settle(ref):
                        actor, kind, it, payload = self._pop(r)
                        yield from self._finish(kind, it, payload, out)
        except KeyboardInterrupt as e:
            # Ray turns an exception raised by a signal handler while it waits into a plain KeyboardInterrupt
            if self._sigterm and not isinstance(e, signals.Terminated):
                raise signals.Terminated() from None
            raise
        finally:
            try:
                self._stop(self._flight)
                for sp in splits.values():
                    self._discard(fn, sp)
                self.close()
            finally:
                restore()

    def _note_sigterm(self):
        """Remember a SIGTERM or a SIGINT (then let the handler in place raise as usual): Ray's waits can swallow the
        KeyboardInterrupt raised inside them, and the loop checks the note; returns the undo."""
        self._sigterm = self._sigint = False
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        prev = signal.getsignal(signal.SIGTERM)
        prev_int = signal.getsignal(signal.SIGINT)

        def on_term(signum, frame):
            self._sigterm = True
            if callable(prev):
                prev(signum, frame)
            raise signals.Terminated()

        def on_int(signum, frame):
            self._sigint = True
            if callable(prev_int):
                prev_int(signum, frame)       # Python's default handler raises KeyboardInterrupt
            else:
                raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGTERM, on_term)
            if prev_int != signal.SIG_IGN:    # an ignored Ctrl-C stays ignored
                signal.signal(signal.SIGINT, on_int)
        except (ValueError, OSError):
            return lambda: None

        def restore():
            for sig, handler in ((signal.SIGTERM, prev), (signal.SIGINT, prev_int)):
                try:
                    signal.signal(sig, handler)
                except (ValueError, OSError, TypeError):
                    pass
        return restore

    def _submit(self, kind: str, it, payload) -> None:
        actor = self._free.popleft()
        if kind == "run":
            ref = actor.run.remote(self._policy, it, self._rerun)
        elif kind == "part":
            ref = actor.part.remote(it, payload[1])
            self._splits[id(it)].flying += 1
        else:
            sp = self._splits[id(it)]
            ref = actor.join.remote(it, sp.parts, sp.results)
        self._flight[ref] = (actor, kind, it, payload)
        q = self._queues[id(actor)]
        q.append(ref)
        if len(q) == 1:             # the actor's only call: it runs now
            self._on_start(it)

    def _pop(self, ref):
        unit = self._flight.pop(ref)
        q = self._queues[id(unit[0])]
        head = q[0] if q else None
        q.remove(ref)
        if id(unit[0]) not in self._down:       # a slot of a worker that died comes back with the worker
            self._free.append(unit[0])
        if ref == head and q and q[0] in self._flight:      # the next call of that actor runs now
            self._on_start(self._flight[q[0]][2])
        return unit

    def _settle(self, ref) -> list:
        """[(ref, Outcome)] to book for a finished call. When its worker died: all the calls that worker held,
        oldest first; the one it was running when it died is charged with the death (its error once it has
        killed ``retries + 1`` workers), the others go back to the queue as they were (Ray restarts the worker)."""
        try:
            return [(ref, ray.get(ref))]
        except ray.exceptions.RayError as e:
            if not _died(e):
                return [(ref, Outcome("failed", error=_lost(e, self.retries)))]
        actor = self._flight[ref][0]
        held = [r for r in self._queues[id(actor)] if r in self._flight]
        ray.wait(held, num_returns=len(held), timeout=10)
        booked, back, charged = [], [], False
        for r in held:
            try:
                booked.append((r, ray.get(r, timeout=0)))         # finished before the worker died
                continue
            except ray.exceptions.GetTimeoutError:
                pass
            except ray.exceptions.RayError as e:
                if not _died(e):
                    booked.append((r, Outcome("failed", error=_lost(e, self.retries))))
                    continue
                if not charged:
                    charged = True
                    _, kind, it, payload = self._flight[r]
                    key = (kind, id(it), payload[0] if kind == "part" else None)
                    self._deaths[key] = self._deaths.get(key, 0) + 1
                    if self._deaths[key] > self.retries:
                        booked.append((r, Outcome("failed", error=_lost(e, self.retries))))
                        continue
            _, kind, it, payload = self._pop(r)
            if kind == "part":
                self._splits[id(it)].flying -= 1
            back.append((kind, it, payload))
        self._units.extendleft(reversed(back))
        now = time.monotonic()                  # no calls to it until it answers again (Ray restarts it)
        self._down[id(actor)] = [actor, now, now]
        self._free = deque(a for a in self._free if a is not actor)
        return booked

    # -- workers that died: back in the pool once they answer -----------------------------------------------------
    def _probe_down(self) -> None:
        now = time.monotonic()
        probing = {id(a) for a in self._probes.values()}
        for key, (actor, since, at) in list(self._down.items()):
            if key in probing or at > now:
                continue
            if now - since > REVIVE:            # never came back (no node can host it): drop it from the pool
                del self._down[key]
                self.actors = [a for a in self.actors if a is not actor]
                continue
            self._probes[actor.ready.remote()] = actor

    def _probed(self, ref) -> None:
        actor = self._probes.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError:
            if id(actor) in self._down:
                self._down[id(actor)][2] = time.monotonic() + 0.5
            return
        if self._down.pop(id(actor), None) is not None:
            self._free.extend(actor for _ in range(self.depth))

    def _orphans(self, todo):
        """Outcomes of everything left when no worker is: failed."""
        why = f"no Ray worker left (they died and did not come back within {REVIVE:.0f} s)"
        seen = set()
        for _, it, _ in list(self._units):
            if id(it) not in seen:
                seen.add(id(it))
                yield it, Outcome("failed", error=why)
        self._units.clear()
        for it in todo:
            yield it, Outcome("failed", error=why)
        todo.clear()

    def _finish(self, kind: str, it, payload, out: Outcome):
        """Book one finished call: yields the item's outcome when the item is done."""
        if kind == "run":
            yield it, out
        elif kind == "part":
            done = self._part_done(self._splits[id(it)], payload[0], out)
            if done is not None:
                yield it, done
        else:
            sp = self._splits.pop(id(it))
            out.seconds = time.perf_counter() - sp.t0
            if out.status != "ok":
                self._discard(self._fn, sp)
            yield it, out

    # -- split items -------------------------------------------------------------------------------------------------
    def _split(self, it, splitter) -> Outcome | None:
        """Split ``it`` into parts (queued first), or None to run it whole; an Outcome if splitting failed."""
        got: list = []
        out = captured(lambda: got.append(splitter(it, len(self.actors))))
        if out.status != "ok":
            return out
        parts = got[0]
        if not parts or len(parts) < 2:
            return None
        self._splits[id(it)] = _Split(it, list(parts), results=[None] * len(parts), left=len(parts))
        self._units.extendleft(("part", it, (k, p)) for k, p in reversed(list(enumerate(parts))))
        return None

    def _part_done(self, sp: _Split, k: int, out: Outcome) -> Outcome | None:
        """Book a finished part; the item's outcome when a part failed (the first failure only)."""
        sp.flying -= 1
        if sp.failed is not None:
            if sp.flying == 0:
                self._discard(self._fn, sp)
            return None
        if out.status != "ok":
            sp.failed = out
            out.seconds = time.perf_counter() - sp.t0
            kept = [u for u in self._units if u[1] is not sp.item]
            self._units.clear()
            self._units.extend(kept)
            if sp.flying == 0:
                self._discard(self._fn, sp)
            return out
        sp.results[k] = out.fields.get("result")
        sp.left -= 1
        if sp.left == 0:
            self._units.appendleft(("join", sp.item, None))
        return None

    @staticmethod
    def _discard(fn, sp: _Split) -> None:
        discard = getattr(fn, "discard", None)
        if callable(discard) and not getattr(sp, "_discarded", False):
            sp._discarded = True
            try:
                discard(sp.item, sp.parts)
            except Exception:  # noqa: BLE001 - cleaning up must not mask the outcome
                pass

    # -- stopping ----------------------------------------------------------------------------------------------------
    def _stop(self, flight: dict) -> None:
        """Cancel what is queued, interrupt what runs, give it ``grace`` seconds to clean up."""
        if not flight:
            return
        refs = list(flight)
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - already finished or not cancellable
                pass
        for a in {id(v[0]): v[0] for v in flight.values()}.values():
            try:
                a.interrupt.remote()
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + self.grace
        while refs and time.monotonic() < deadline:
            try:
                _, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)
            except KeyboardInterrupt:       # a second Ctrl-C: stop now
                break
