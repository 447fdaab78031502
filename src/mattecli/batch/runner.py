"""Running a batch: per-item errors, skip/resume, signals, progress, report, exit code.

``BatchRunner.run(items, fn, planned)`` calls ``fn(item)`` for every item through an *executor* (the local loop
here; another executor may run items elsewhere and yield their outcomes as they finish) and keeps the records:

* a :class:`~mattecli.errors.MatteError` from ``fn`` fails that item with its one-line message, any other exception
  with ``TypeName: message`` (the traceback with ``--verbose``); an item whose planning found a problem
  (``Item.problem``: no trimap for it...) fails the same way; the batch goes on, the exit code is 1 at the end
  (``--fail-fast`` stops at the first failure);
* existing outputs are never replaced silently: an item whose planned outputs all exist *and are complete* (decode)
  is skipped (a resumed run carries on where it stopped), one whose outputs partly exist fails with a line naming
  them, unless ``--overwrite``;
* Ctrl-C (exit 130) and SIGTERM (exit 143) stop the run; the report is still written with ``interrupted: true`` and
  the inputs never reached listed as ``not-run``;
* stdout carries only data: the written paths one per line, or with ``--json`` one JSON document (the report).

The executor seam: ``executor(items, run_one)`` yields ``(item, Outcome)`` as items finish, in any order (the report
lists them in input order). ``run_one`` is an :class:`ItemRunner`: picklable (the task, the overwrite policy and the
planned-outputs function; nothing of this process), so an executor may ship it to worker processes
(:mod:`mattecli.batch.executors`). Inputs and outputs that are URLs (``s3://``, ``gs://``, ``memory://``...) are
staged through :mod:`mattecli.batch.remote` around the task, so the task itself only sees local files.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..errors import MatteError
from ..imaging.io import atomic_write_text, image_size, verify_decodes
from . import remote, signals
from .checks import check_report
from .inputs import Item
from .report import Record, iso, to_csv, version


@dataclass
class Outcome:
    """What running one item gave: status ok | failed | skipped, its outputs and report fields, or its error."""

    status: str
    outputs: list = field(default_factory=list)
    fields: dict = field(default_factory=dict)
    error: str | None = None
    trace: str | None = None
    seconds: float = 0.0


def existing_outputs(outs: Sequence[Path], is_complete: Callable[[Path], bool] = verify_decodes) -> Outcome | None:
    """The outcome for an item whose planned outputs exist (skipped, or failed when only some exist or one is
    incomplete), or None when none exists."""
    real = [p for p in outs if str(p) != "-"]
    there = [p for p in real if remote.lexists(p)]
    if not there:
        return None
    if len(there) == len(real) and all(remote.complete(p, is_complete) for p in real):
        return Outcome("skipped", outputs=[remote.named(p) for p in real])
    bad = [p for p in there if not remote.complete(p, is_complete)]
    if bad:
        return Outcome("failed", error=f"output {remote.named(bad[0])} exists but is incomplete or does not decode; "
                                       "--overwrite replaces it (or remove it)")
    return Outcome("failed", error=f"output {remote.named(there[0])} exists (and {len(real) - len(there)} other "
                                   "output(s) of this input do not); --overwrite replaces it (or remove it)")


def as_outcome(res) -> Outcome:
    """A task's result (a list of written paths, or a dict with ``outputs`` and report fields) as an Outcome."""
    if isinstance(res, Outcome):
        return res
    if isinstance(res, dict):
        fields = {k: v for k, v in res.items() if k != "outputs"}
        return Outcome("ok", outputs=list(res.get("outputs", [])), fields=fields)
    return Outcome("ok", outputs=list(res or []))


def captured(call: Callable[[], object]) -> Outcome:
    """``call()`` as an Outcome: its result, or its error as one line (never raises but for interrupts)."""
    try:
        return as_outcome(call())
    except KeyboardInterrupt:
        raise
    except MatteError as e:
        return Outcome("failed", error=str(e))
    except Exception as e:  # a bug or a library error: report it, keep going
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Outcome("failed", error=f"{type(e).__name__}: {first}" if first else type(e).__name__,
                       trace=traceback.format_exc())


def attempt(item: Item, fn: Callable[[Item], object], planned: Callable[[Item], Sequence[Path]] | None = None,
            overwrite: bool = False, is_complete: Callable[[Path], bool] = verify_decodes) -> Outcome:
    """Run ``fn`` on one item and capture the result or the error (never raises but for interrupts)."""
    return ItemRunner(fn, planned, overwrite, is_complete)(item)


@dataclass
class ItemRunner:
    """One item, start to end: planning problem, skip/resume check, URL staging, the task, its error as a line.

    Picklable (``fn`` must be: the verbs pass a task object such as :class:`mattecli.tasks.matte.MatteTask`), so
    executors ship it to worker processes; ``on_start`` (told which item starts, for the interrupt report) stays
    in this process."""

    fn: Callable[[Item], object] | None
    planned: Callable[[Item], Sequence[Path]] | None = None
    overwrite: bool = False
    is_complete: Callable[[Path], bool] = verify_decodes
    on_start: Callable[[Item], None] | None = field(default=None, compare=False, repr=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["on_start"] = None
        return state

    def without_fn(self) -> "ItemRunner":
        """The policy alone (a worker puts its own loaded task back with :meth:`with_fn`)."""
        return replace(self, fn=None, on_start=None)

    def with_fn(self, fn) -> "ItemRunner":
        return replace(self, fn=fn)

    def precheck(self, item: Item) -> Outcome | None:
        """The outcome an item gets without running: failed (a planning problem, outputs partly there or
        incomplete) or skipped (its outputs are all there and complete); None when it must run."""
        if item.problem:
            return Outcome("failed", error=item.problem)
        if self.overwrite or self.planned is None:
            return None
        out = captured(lambda: existing_outputs(list(self.planned(item)), self.is_complete) or [])
        return None if (out.status == "ok" and not out.outputs) else out

    def run(self, item: Item, *, rerun: bool = False) -> Outcome:
        """The task on an item whose precheck said 'run' (a worker's side of the seam). ``rerun``: this run decided
        to write the item before (an earlier attempt died after writing): complete outputs are this run's own, so
        they are reported, not written twice."""
        t0 = time.perf_counter()
        if rerun and self.planned is not None:
            done = captured(lambda: existing_outputs(list(self.planned(item)), self.is_complete) or [])
            if done.status == "skipped":
                done.status, done.seconds = "ok", time.perf_counter() - t0
                return done
        out = captured(lambda: remote.run_staged(item, self.fn))
        out.seconds = out.seconds or (time.perf_counter() - t0)
        return out

    def __call__(self, item: Item) -> Outcome:
        """The whole item in this process (the local executor)."""
        t0 = time.perf_counter()
        if self.on_start is not None:
            self.on_start(item)
        out = self.precheck(item)
        if out is None:
            out = self.run(item)
        out.seconds = out.seconds or (time.perf_counter() - t0)
        return out


def planned_outputs(item: Item) -> list:
    """The planned outputs a verb put on the item (``item.info["outputs"]``): the ``planned`` of most verbs."""
    return list(item.info.get("outputs") or [])


def local_executor(items: Sequence[Item], run_one: Callable[[Item], Outcome]) -> Iterator[tuple[Item, Outcome]]:
    """Items one after another in this process, in order."""
    for it in items:
        t0 = time.perf_counter()
        out = run_one(it)
        out.seconds = out.seconds or (time.perf_counter() - t0)
        yield it, out


Executor = Callable[[Sequence[Item], Callable[[Item], Outcome]], Iterable[tuple[Item, Outcome]]]


class BatchRunner:
    """Runs ``fn(item) -> outputs`` over items with the shared batch semantics and returns the exit code.

    ``fn`` returns a list of written paths, or a dict with ``outputs`` and other report fields (``width``,
    ``height``, ...)."""

    def __init__(self, *, verb: str, model: str | None = None, weights_sha256: str | None = None,
                 fail_fast: bool = False, overwrite: bool = False, report: str | os.PathLike | None = None,
                 json_out: bool = False, quiet: bool = False, verbose: bool = False, argv: list | None = None,
                 progress_unit: str = "items", is_complete: Callable[[Path], bool] = verify_decodes,
                 progress: bool = True):
        self.verb = verb
        self.model = model
        self.weights_sha256 = weights_sha256
        self.fail_fast = fail_fast
        self.overwrite = overwrite
        self.is_complete = is_complete
        self.show_progress = progress
        self.report = Path(report) if report else None
        check_report(self.report)
        self.json_out = json_out
        self.quiet = quiet
        self.verbose = verbose
        self.argv = list(sys.argv if argv is None else argv)
        self.records: list[Record] = []
        self.started = time.time()
        self.interrupted = False
        self.signal_name: str | None = None     # "SIGINT" / "SIGTERM" when interrupted
        self.report_failed = False
        self.progress_unit = progress_unit
        self.notes: list[str] = []              # extra lines for the summary (e.g. counts a verb keeps)

    # -- messages (stderr) ------------------------------------------------------------------------------------
    def info(self, msg: str) -> None:
        if not self.quiet:
            print(f"mattecli: {msg}", file=sys.stderr, flush=True)

    def debug(self, msg: str) -> None:
        if self.verbose:
            print(f"mattecli: {msg}", file=sys.stderr, flush=True)

    def _fail_line(self, item: Item, msg: str) -> None:
        text = msg if str(item.path) in msg else f"{item.path}: {msg}"
        print(f"mattecli: error: {text}", file=sys.stderr, flush=True)

    # -- main loop --------------------------------------------------------------------------------------------
    def run(self, items: Sequence[Item], fn: Callable[[Item], object],
            planned: Callable[[Item], Sequence[Path]] | None = None, executor: Executor | None = None) -> int:
        """Exit code: 0 all done, 1 some input failed (or the report could not be written), 130 interrupted by
        SIGINT (Ctrl-C), 143 terminated by SIGTERM. Interrupted or --fail-fast runs still write the report; the
        inputs never reached are listed with status ``not-run``."""
        executor = executor or local_executor
        self._started: dict = {}                 # id(item) -> item, told by the executor (in flight when interrupted)
        run_one = ItemRunner(fn, planned, self.overwrite, self.is_complete,
                             on_start=lambda it: self._started.__setitem__(id(it), it))

        with signals.stop_on_signals():
            return self._run(items, run_one, executor)

    def _run(self, items, run_one, executor) -> int:
        from ..progress import Progress

        bar = Progress(self.verb, total=len(items), unit=self.progress_unit,
                       enabled=self.show_progress and not self.quiet and len(items) > 1, transient=True)
        results = None
        try:
            with bar:
                results = iter(executor(items, run_one))
                for it, out in results:
                    rec = self._record(it, out)
                    bar.advance(1, it.path.name)
                    if rec.status == "failed" and self.fail_fast:
                        self.info("stopping at the first failure (--fail-fast)")
                        break
        except KeyboardInterrupt as e:
            self.interrupted = True
            self.signal_name = signals.signal_name(e)
            print(f"mattecli: interrupted ({self.signal_name})", file=sys.stderr, flush=True)
        finally:
            self._stop(results)
            done = {r.input for r in self.records}
            if self.interrupted:        # the items being worked on when the signal came
                for it in self._started.values():
                    if str(it.path) not in done:
                        done.add(str(it.path))
                        self.records.append(Record(input=str(it.path), status="failed", error="interrupted",
                                                   model=self.model, weights_sha256=self.weights_sha256))
            for it in items:
                if str(it.path) not in done:
                    self.records.append(Record(input=str(it.path), status="not-run", model=self.model,
                                               weights_sha256=self.weights_sha256))
            order = {str(it.path): k for k, it in enumerate(items)}     # the report in input order, whatever ran first
            self.records.sort(key=lambda r: order.get(r.input, len(order)))
            self.finish()
        if self.interrupted:
            return signals.EXIT_SIGTERM if self.signal_name == "SIGTERM" else signals.EXIT_SIGINT
        return 1 if (self.failed or self.report_failed) else 0

    def _stop(self, results) -> None:
        """Close the executor's iterator now (remote executors cancel and clean up there), a second signal
        meanwhile included."""
        close = getattr(results, "close", None)
        if close is None:
            return
        try:
            close()
        except KeyboardInterrupt as e:
            if not self.interrupted:
                self.interrupted, self.signal_name = True, signals.signal_name(e)

    def _record(self, it: Item, out: Outcome) -> Record:
        rec = Record(input=str(it.path), model=self.model, weights_sha256=self.weights_sha256, status=out.status,
                     outputs=list(out.outputs), seconds=out.seconds, error=out.error)
        for k, v in out.fields.items():
            if k in ("width", "height"):
                setattr(rec, k, v)
            else:
                rec.extra[k] = v
        if rec.width is None and it.path.is_file():     # never re-open stdin or a pipe
            sz = image_size(it.path)
            if sz:
                rec.width, rec.height = sz
        self.records.append(rec)
        if out.status == "ok":
            if not self.json_out:
                for o in rec.outputs:
                    print(o, file=sys.stdout, flush=True)
            self.debug(f"{it.path} -> {', '.join(str(o) for o in rec.outputs)} ({out.seconds:.2f} s)")
        elif out.status == "skipped":
            self.debug(f"skip {it.path}: its outputs exist (--overwrite replaces them)")
        elif out.status == "failed":
            self._fail_line(it, out.error or "failed")
            if self.verbose and out.trace:
                print(out.trace, file=sys.stderr, end="", flush=True)
        return rec

    # -- results ----------------------------------------------------------------------------------------------
    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.records)

    def summary(self) -> dict:
        counts = {s: sum(r.status == s for r in self.records) for s in ("ok", "failed", "skipped")}
        counts["not_run"] = sum(r.status == "not-run" for r in self.records)
        return {"verb": self.verb, "model": self.model, "weights_sha256": self.weights_sha256,
                "total": len(self.records), **counts, "seconds": round(time.time() - self.started, 3),
                "interrupted": self.interrupted, "signal": self.signal_name}

    def report_dict(self) -> dict:
        return {"mattecli": version(), "command": self.argv, "started": iso(self.started),
                "summary": self.summary(), "items": [r.as_dict() for r in self.records]}

    def finish(self) -> None:
        s = self.summary()
        doc = self.report_dict()
        if self.report is not None:
            try:
                if self.report.suffix.lower() == ".csv":
                    atomic_write_text(self.report, to_csv(doc["items"]))
                else:
                    atomic_write_text(self.report, json.dumps(doc, indent=2) + "\n")
            except (MatteError, OSError) as e:
                self.report_failed = True
                print(f"mattecli: error: --report {self.report}: not written ({e})", file=sys.stderr)
        if self.json_out:
            print(json.dumps(doc, indent=2), file=sys.stdout, flush=True)
        parts = [f"{s['ok']} done"]
        if s["skipped"]:
            parts.append(f"{s['skipped']} skipped (outputs exist; --overwrite replaces them)")
        if s["failed"]:
            parts.append(f"{s['failed']} failed")
        if s["not_run"]:
            parts.append(f"{s['not_run']} not run")
        msg = f"{self.verb}: {', '.join(parts)} in {s['seconds']:.1f} s"
        if self.report is not None and not self.report_failed:
            msg += f"; report: {self.report}"
        for note in self.notes:
            msg += f"; {note}"
        if s["failed"] or self.report_failed:
            print(f"mattecli: {msg}", file=sys.stderr, flush=True)
        else:
            self.info(msg)
