"""The execution engine: every experiment in a worker process, several slots at once, in dependency order.

run.py (this process) takes experiments from the source, starts each on a free slot once everything it read
through `E` has its record, follows its output, enforces `Timeout`, and appends every record itself, in the
order experiments end. A worker that dies is replaced (see slots.py and child.py); Ctrl-C and SIGTERM are in
interrupts.py.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..console import Console
from ..errors import ModuleLoadError, Terminated
from ..keys import Status
from ..study.expand import Experiment
from .deps import READY, WAIT, Plan
from .gpus import SlotSpec
from .interrupts import Interrupts
from .output import OutputFollower, Terminal, output_path
from .records import build_record
from .runner import Listener, Outcome, Runner, Source, Summary
from .slots import Pool, Slot, ending, wait_status_code
from .wire import encode

TAIL_LINES = 20


@dataclass
class Job:
    """An experiment running on a slot."""

    experiment: Experiment
    label: str
    place: dict[str, Any]
    follower: OutputFollower
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    timeout: float | None = None


class Engine(Runner, Interrupts):
    """Runs experiments in worker processes, one per slot; the in-process Runner's interface and output."""

    def __init__(self, console: Console, *, paths: Sequence[str] = (), fail_fast: bool = False, grace: float = 2.0,
                 listeners: Sequence[Listener] = (), slots: Sequence[SlotSpec] = (SlotSpec(0),),
                 isolate: bool = False, runs_dir: str = "runs", argv: Sequence[str] = (),
                 stamp: Mapping[str, Any] | None = None, metadata: bool = True, debug: bool = False) -> None:
        super().__init__(console, paths=paths, fail_fast=fail_fast, grace=grace, listeners=listeners, stamp=stamp,
                         metadata=metadata, debug=debug)
        self.pool = Pool(slots, self._hello)
        self.isolate = isolate
        self.runs_dir = runs_dir
        self.argv = list(argv)
        if self.metadata is not None:
            self.metadata.argv = self.argv  # what the workers' modules see in sys.argv
        self.modules: list[str] = []
        self.signals: list[int] = []
        self.in_source_call = False

    @property
    def single(self) -> bool:
        return len(self.pool.slots) == 1

    def _hello(self) -> dict[str, Any]:
        """What a new worker needs: where modules are, the module's arguments, which modules to import."""
        return {"paths": self.paths, "argv": self.argv, "modules": list(self.modules), "isolate": self.isolate,
                "metadata": self.metadata is not None, "debug": self.debug}

    def preload(self, experiments: Sequence[Experiment]) -> None:
        """Start the workers, which import every Module before anything runs, so a typo fails at once."""
        for experiment in experiments:
            module = experiment.values.get("Module")
            if not experiment.skipped and module not in self.modules:
                self.modules.append(module)
        if self.metadata is not None:
            self.metadata.prefetch(self.modules, packages=False)  # the workers report their own packages
        self.pool.start()
        try:
            while not all(slot.worker is not None and slot.worker.ready for slot in self.pool.slots):
                for slot in self.pool.wait(0.5):
                    self._receive(slot, None)
                for slot in self.pool.slots:
                    worker = slot.worker
                    if worker is not None and not worker.ready and (worker.inbox.closed or not worker.alive()):
                        raise ModuleLoadError(", ".join(self.modules) or "(none)",
                                              f"the worker process of {slot.spec.label} "
                                              f"{ending(self.pool.retire(slot))} while importing the modules")
        except BaseException:
            for slot in self.pool.slots:  # still importing, nothing has started: Ctrl-C needs no grace period
                if slot.worker is not None and not slot.worker.ready:
                    self.pool.retire(slot)
            self.close()
            raise

    def close(self) -> None:
        """Stop every worker; what their experiments left running is killed with them."""
        self.pool.close()

    # --- the run -----------------------------------------------------------------------------------------

    def run(self, source: Source) -> Summary:
        summary = Summary()
        start = time.monotonic()
        self.plan = Plan()
        self.taken = self.position = 0
        self.exhausted = self.halting = self.aborting = False
        self.changed = True
        self.hold_until = self.stop_window = 0.0
        base = self.console
        self.terminal = Terminal(base, [slot.spec.label for slot in self.pool.slots])
        self.console = self.terminal.console
        try:
            self.pool.start()
            self._notify("started")
            with self._signals():
                try:
                    self._loop(source, summary)
                except KeyboardInterrupt:
                    summary.stopped = True
                    self._abort(source, summary, release=False)
                    self.console.print(self.console.paint("stopped by Ctrl-C", "yellow"))
                except Terminated as stop:
                    summary.stopped = summary.terminated = True
                    summary.signum = stop.signum
                    self._abort(source, summary, release=True)
                    self.console.print(self.console.paint(f"stopped by {signal.Signals(stop.signum).name}",
                                                          "yellow"))
        finally:
            self.terminal.close()
            self.console = base
            self.close()
        summary.elapsed = time.monotonic() - start
        self.console.print(self.console.paint(summary.line(), "bold"))
        self._notify("ended", summary)
        return summary

    def _loop(self, source: Source, summary: Summary) -> None:
        while True:
            self._handle_signals()
            self._take(source)
            self._dispatch(source, summary)
            busy = any(slot.job for slot in self.pool.slots)
            if not busy and (self.halting or (self.exhausted and not self.plan)):
                return
            self._wait(source, summary)

    def _take(self, source: Source) -> None:
        if self.exhausted or self.halting or time.monotonic() < self.hold_until:
            return
        eager = getattr(source, "eager", False)
        while True:
            place = None
            if not eager:
                # A file queue stays editable: take only what a slot can start now.
                idle = [slot for slot in self.pool.slots if slot.job is None]
                if len(idle) <= len(self.plan):
                    return
                place = idle[len(self.plan)].spec.place()
            self.in_source_call = True
            try:
                experiment = source.take(slot=place)
            finally:
                self.in_source_call = False
            if experiment is None:
                self.exhausted = True
                return
            self.taken += 1
            self.plan.add(experiment)
            self.changed = True

    def _dispatch(self, source: Source, summary: Summary) -> None:
        if self.halting or not self.changed or time.monotonic() < self.hold_until:
            return
        self.changed = False
        free = [slot for slot in self.pool.slots if slot.free]
        decisions = []
        for experiment in self.plan.waiting():
            if not free:
                break
            verdict = self.plan.verdict(experiment)
            if verdict.kind == WAIT:
                continue
            slot = free.pop(0) if verdict.kind == READY and not experiment.skipped else None
            decisions.append((experiment, verdict.reason, slot))
        if not decisions and free and self.plan and not any(slot.job for slot in self.pool.slots):
            # Cannot happen (dependencies point to earlier experiments); never hang if it does.
            first = next(self.plan.waiting())
            decisions.append((first, None, None if first.skipped else free[0]))
        for experiment, reason, slot in decisions:
            self.changed = True
            if slot is not None:
                self._start(experiment, slot, source, summary)
            else:
                self._skip(experiment, reason, source, summary)

    def _label(self, source: Source) -> str:
        self.position += 1
        total = source.total(self.taken)
        return f"[{self.position}/{total}]" if total else f"[{self.position}]"

    def _skip(self, experiment: Experiment, reason: str | None, source: Source, summary: Summary) -> None:
        """`Name: skip` (not logged), or a dependency that did not finish (logged as skipped, with the reason)."""
        label = self._label(source)
        record: dict[str, Any] = {}
        status = Status.SKIPPED
        if reason is None:
            self.console.print(f"{label} {self.console.paint('skip', 'dim')}")
            source.finish(experiment, Status.SKIPPED)
        else:
            self.console.print(f"{label} {_name(experiment)} {self.console.paint('skipped', 'dim')}: {reason}")
            record = build_record(experiment.values, {}, status=Status.SKIPPED, elapsed=0.0, error=reason)
            if self.metadata is not None:
                record = self.metadata.complete(record, experiment.values, file=experiment.file,
                                                line=experiment.line)
            unwritten = self.commit(experiment, record, status, source)
            if unwritten:
                status, reason = Status.FAILED, unwritten
                self.console.print(f"    {self.console.paint(unwritten, 'red')}")
        self.plan.end(experiment, status)
        self._outcome(summary, Outcome(experiment.index, experiment.name, status, 0.0, record, reason))

    def _start(self, experiment: Experiment, slot: Slot, source: Source, summary: Summary,
               later: list[str] | None = None) -> None:
        """Send an experiment to a slot's worker; its line is printed now, or added to `later`."""
        assert slot.worker is not None
        self.plan.start(experiment)
        values = experiment.values
        label = self._label(source)
        output = output_path(self.runs_dir, experiment.index, experiment.name, values.get("RND_IDX"))
        place = {**self.stamp, **slot.spec.place(), "OUTPUT": output}
        job = Job(experiment, label, place, OutputFollower(output), timeout=values.get("Timeout"))
        if values.get("Module") not in self.modules:
            self.modules.append(values.get("Module"))
        line = f"{label} {self.console.paint(str(_name(experiment)), 'bold')}  RND_IDX={values.get('RND_IDX')}"
        line = line if self.single else f"{line}  on {slot.spec.label}"
        if later is None:
            self.console.print(line)
        else:
            later.append(line)
        slot.job = job
        try:
            message = encode({"values": values, "solves": experiment.solves, "index": experiment.index,
                              "place": place})
        except Exception as exc:  # a parse value that is no data (a lambda, an open file)
            self._fail(slot, f"cannot send the experiment to its worker process: {type(exc).__name__}: {exc} "
                             "(parse values must be data; build objects in the worker with solve)", summary, source)
            return
        job.started = time.monotonic()
        job.deadline = job.started + job.timeout if job.timeout else None
        self.terminal.started(slot.spec.number, slot.spec.label, _name(experiment), job.started)
        try:
            slot.worker.send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._worker_ended(slot, summary, source)

    # --- what comes back ---------------------------------------------------------------------------------

    def _wait(self, source: Source, summary: Summary) -> None:
        now = time.monotonic()
        timeout = 0.1 if any(slot.job for slot in self.pool.slots) else 0.5
        if now < self.hold_until:
            timeout = min(timeout, self.hold_until - now)
        for news in self.pool.wait(timeout):
            if isinstance(news, int):
                self._drain(news)
            else:
                self._receive(news, summary, source)
        now = time.monotonic()
        for slot in self.pool.slots:
            worker = slot.worker
            if worker is None:
                self.pool.spawn(slot)
            elif slot.job is not None and slot.job.deadline is not None and now >= slot.job.deadline:
                self._timed_out(slot, summary, source)
            elif slot.job is not None and not worker.alive():
                self._receive(slot, summary, source)
                if slot.worker is worker:
                    self._worker_ended(slot, summary, source)
        for slot in self.pool.slots:
            job = slot.job
            if job is not None:
                self.terminal.follow(slot.spec.number, slot.spec.label, _name(job.experiment), job.started,
                                     job.follower)
        self.terminal.refresh()
        if self.hold_until and now >= self.hold_until:
            self.hold_until = 0.0
            self.changed = True

    def _receive(self, slot: Slot, summary: Summary | None, source: Source | None = None) -> None:
        """Handle what a slot's worker said; a closed pipe means it died."""
        worker = slot.worker
        if worker is None:
            return
        for message in worker.inbox.read():
            kind = message.get("kind")
            if kind == "ready":
                worker.ready = True
                self.changed = True
                failed = message.get("failed") or {}
                if summary is None and failed:  # still starting up: a module that does not import stops the run
                    module = next(iter(failed))
                    what, details, hint = failed[module]
                    raise ModuleLoadError(module, what, details=details, hint=hint)
            elif summary is None or source is None or slot.job is None:
                continue
            elif kind == "result":
                self._finish(slot, message["status"], message["record"], message["error"], message["elapsed"],
                             message["unread"], summary, source, message.get("changed", ()), message.get("trace"))
            elif kind == "died":  # --isolate: the experiment's own process died; the worker lives on
                code = wait_status_code(message["wait_status"])
                self._fail(slot, self._with_tail(ending(code), slot.job), summary, source)
        if worker.inbox.closed and slot.worker is worker and summary is not None and source is not None:
            self._worker_ended(slot, summary, source)

    def _with_tail(self, error: str, job: Job) -> str:
        tail = job.follower.tail(TAIL_LINES)
        if not tail:
            return error
        return f"{error}\nlast lines of {job.place['OUTPUT']}:\n" + "\n".join(f"  {line}" for line in tail)

    def _worker_ended(self, slot: Slot, summary: Summary, source: Source) -> None:
        """The worker died (its experiment's crash, os._exit, a kill): fail its experiment; a new one starts."""
        code = self.pool.retire(slot)
        if slot.job is not None:
            self._fail(slot, self._with_tail(ending(code), slot.job), summary, source)

    def _timed_out(self, slot: Slot, summary: Summary, source: Source) -> None:
        self.pool.retire(slot)
        error = f"timed out after {slot.job.timeout:g} s (Timeout); the process was killed"
        self._fail(slot, self._with_tail(error, slot.job), summary, source)

    def _fail(self, slot: Slot, error: str, summary: Summary, source: Source) -> None:
        job = slot.job
        elapsed = time.monotonic() - job.started
        record = build_record(job.experiment.values, {}, status=Status.FAILED, elapsed=elapsed, error=error,
                              place=job.place)
        self._finish(slot, str(Status.FAILED), record, error, elapsed, [], summary, source)

    def _finish(self, slot: Slot, status: str, record: dict[str, Any], error: str | None, elapsed: float,
                unread: list[tuple[Any, ...]], summary: Summary, source: Source, changed: Sequence[str] = (),
                trace: str | None = None) -> None:
        """Log an experiment's record, tell the source and the listeners, and show the result line."""
        job: Job = slot.job
        slot.job = None
        self.changed = True
        experiment = job.experiment
        if self.metadata is not None:
            record = self.metadata.complete(record, experiment.values, file=experiment.file, line=experiment.line)
        self.terminal.follow(slot.spec.number, slot.spec.label, _name(experiment), job.started, job.follower,
                             final=True)
        later: list[str] = []
        if not (self.single or self.aborting or (status == Status.FAILED and self.fail_fast)):
            self._start_next(slot, source, summary, later)  # its run overlaps the record's write to disk
        unwritten = self.commit(experiment, record, status, source)
        if unwritten:  # the record could not be written: this experiment failed (a queue keeps it for --resume)
            status, error, unread, changed = str(Status.FAILED), unwritten, [], ()
        self.plan.end(experiment, status)
        if slot.job is None:
            self.terminal.idle(slot.spec.number, slot.spec.label)
        self.report(job.label, _name(experiment), status, elapsed, record, experiment.values, error, unread, changed,
                    trace)
        self._outcome(summary, Outcome(experiment.index, experiment.name, status, elapsed, record, error))
        for line in later:
            self.console.print(line)
        if status == Status.INTERRUPTED and self.single and not self.aborting:
            self.console.print(f"press Ctrl-C again within {self.grace:g} s to stop, or wait for the next experiment")
            self.hold_until = self.stop_window = time.monotonic() + self.grace
        if status == Status.FAILED and self.fail_fast and not self.halting:
            self.halting = True
            self.console.print("stopping at the first failure (--fail-fast)")

    def _start_next(self, slot: Slot, source: Source, summary: Summary, later: list[str]) -> None:
        """With several slots, start the next experiment on a freed slot before the last record is written.

        Only one that could start anyway: an experiment that read the one that just ended waits for its record.
        """
        if self.halting or time.monotonic() < self.hold_until or not slot.free:
            return
        for experiment in self.plan.waiting():
            verdict = self.plan.verdict(experiment)
            if experiment.skipped or verdict.kind == Status.SKIPPED:
                return  # keep the order: the main loop deals with these
            if verdict.kind == READY:
                self._start(experiment, slot, source, summary, later)
                return

    def _outcome(self, summary: Summary, outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        self._notify("finished", outcome)


def _name(experiment: Experiment) -> Any:
    return experiment.name if experiment.name is not None else "(unnamed)"
