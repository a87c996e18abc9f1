"""The execution engine: every experiment in a worker process, several slots at once, in dependency order.

run.py (this process) takes experiments from the source, starts each on a free slot once everything it read
through `E` has its record, follows its output, enforces `Timeout`, and appends every record itself, in the
order experiments end. A worker that dies is replaced; Ctrl-C and SIGTERM reach every slot's process group.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..console import Console
from ..errors import ModuleLoadError, Terminated
from ..files import interrupts_deferred
from ..keys import Status
from ..study.expand import Experiment
from .deps import READY, WAIT, Plan
from .gpus import SlotSpec
from .output import BoardConsole, OutputFollower, StatusBoard, output_path, slot_line
from .records import append_record, build_record
from .runner import Listener, Outcome, Runner, Source, Summary
from .slots import WorkerProcess, ending, wait_status_code
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


@dataclass
class Slot:
    spec: SlotSpec
    worker: WorkerProcess | None = None
    job: Job | None = None

    @property
    def free(self) -> bool:
        return self.job is None and self.worker is not None and self.worker.ready


class Engine(Runner):
    """Runs experiments in worker processes, one per slot; the in-process Runner's interface and output."""

    def __init__(self, console: Console, *, paths: Sequence[str] = (), fail_fast: bool = False, grace: float = 2.0,
                 listeners: Sequence[Listener] = (), slots: Sequence[SlotSpec] = (SlotSpec(0),),
                 isolate: bool = False, runs_dir: str = "runs", argv: Sequence[str] = ()) -> None:
        super().__init__(console, paths=paths, fail_fast=fail_fast, grace=grace, listeners=listeners)
        self.slots = [Slot(spec) for spec in slots]
        self.isolate = isolate
        self.runs_dir = runs_dir
        self.argv = list(argv)
        self.modules: list[str] = []
        self.selector: selectors.BaseSelector | None = None
        self.signals: list[int] = []
        self.in_source_call = False

    @property
    def single(self) -> bool:
        return len(self.slots) == 1

    # --- worker processes --------------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        assert self.selector is not None
        hello = {"paths": self.paths, "argv": self.argv, "modules": list(self.modules), "isolate": self.isolate}
        slot.worker = WorkerProcess(slot.spec, hello)
        self.selector.register(slot.worker.inbox.fd, selectors.EVENT_READ, slot)

    def _retire(self, slot: Slot) -> int:
        """Kill a slot's worker process group at once; returns how the worker ended."""
        worker, slot.worker = slot.worker, None
        if worker is None:
            return 0
        assert self.selector is not None
        self.selector.unregister(worker.inbox.fd)
        return worker.kill()

    def start_workers(self) -> None:
        if self.selector is None:
            self.selector = selectors.DefaultSelector()
            for slot in self.slots:
                self._spawn(slot)

    def preload(self, experiments: Sequence[Experiment]) -> None:
        """Start the workers, which import every Module before anything runs, so a typo fails at once."""
        for experiment in experiments:
            module = experiment.values.get("Module")
            if not experiment.skipped and module not in self.modules:
                self.modules.append(module)
        self.start_workers()
        assert self.selector is not None
        try:
            while not all(slot.worker is not None and slot.worker.ready for slot in self.slots):
                for key, _ in self.selector.select(timeout=0.5):
                    self._receive(key.data, None)
                for slot in self.slots:
                    worker = slot.worker
                    if worker is not None and (worker.inbox.closed or not worker.alive()) and not worker.ready:
                        code = self._retire(slot)
                        raise ModuleLoadError(", ".join(self.modules) or "(none)",
                                              f"the worker process of {slot.spec.label} {ending(code)} while "
                                              "importing the modules")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every worker; what their experiments left running is killed with them."""
        if self.selector is None:
            return
        for slot in self.slots:
            if slot.worker is not None and slot.job is not None:
                self._retire(slot)  # only after an error: do not wait for the experiment
            elif slot.worker is not None:
                self.selector.unregister(slot.worker.inbox.fd)
                slot.worker.stop()
                slot.worker = None
        self.selector.close()
        self.selector = None

    # --- the run -----------------------------------------------------------------------------------------

    def run(self, source: Source) -> Summary:
        summary = Summary()
        start = time.monotonic()
        self.plan = Plan()
        self.taken = self.position = 0
        self.exhausted = self.halting = False
        self.changed = True
        self.hold_until = self.stop_window = 0.0
        self.open_line = self.aborting = False
        base = self.console
        self.board = StatusBoard(base.out, [slot.spec.label for slot in self.slots],
                                 live=base.colour and not self.single)
        if self.board.live:
            self.console = BoardConsole(base, self.board)
        try:
            self.start_workers()
            self._notify("started")
            with self._signals():
                try:
                    self._loop(source, summary)
                except KeyboardInterrupt:
                    summary.stopped = True
                    self._abort(source, summary, release=False)
                    self.console.print(self.console.paint("stopped by Ctrl-C", "yellow"))
                except Terminated:
                    summary.stopped = summary.terminated = True
                    self._abort(source, summary, release=True)
                    self.console.print(self.console.paint("stopped by SIGTERM", "yellow"))
        finally:
            self.board.clear()
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
            busy = any(slot.job for slot in self.slots)
            if not busy and (self.halting or (self.exhausted and not self.plan)):
                return
            self._wait(source, summary)

    def _take(self, source: Source) -> None:
        if self.exhausted or self.halting or time.monotonic() < self.hold_until:
            return
        eager = getattr(source, "eager", False)
        while True:
            slot = None
            if not eager:
                # A file queue stays editable: take only what a slot can start now.
                idle = [s for s in self.slots if s.job is None]
                waiting = len(self.plan)
                if len(idle) <= waiting:
                    return
                slot = idle[waiting].spec.place()
            self.in_source_call = True
            try:
                experiment = source.take(slot=slot)
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
        free = [slot for slot in self.slots if slot.free]
        decisions = []
        for experiment in self.plan.waiting():
            if not free:
                break
            verdict = self.plan.verdict(experiment)
            if verdict.kind == WAIT:
                continue
            slot = free.pop(0) if verdict.kind == READY and not experiment.skipped else None
            decisions.append((experiment, verdict.reason, slot))
        if not decisions and free and self.plan and not any(s.job for s in self.slots):
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
        if reason is None:
            self.console.print(f"{label} {self.console.paint('skip', 'dim')}")
            source.finish(experiment, Status.SKIPPED)
        else:
            name = experiment.name if experiment.name is not None else "(unnamed)"
            self.console.print(f"{label} {name} {self.console.paint('skipped', 'dim')}: {reason}")
            record = build_record(experiment.values, {}, status=Status.SKIPPED, elapsed=0.0, error=reason)
            with interrupts_deferred():
                append_record(experiment.values["YamlLog"], record)
                source.finish(experiment, Status.SKIPPED)
        self.plan.end(experiment, Status.SKIPPED)
        self._outcome(summary, Outcome(experiment.index, experiment.name, Status.SKIPPED, 0.0, record, reason))

    def _start(self, experiment: Experiment, slot: Slot, source: Source, summary: Summary,
               later: list[str] | None = None) -> None:
        """Send an experiment to a slot's worker; its line is printed now, or added to `later`."""
        assert slot.worker is not None
        self.plan.start(experiment)
        values = experiment.values
        label = self._label(source)
        output = output_path(self.runs_dir, experiment.index, experiment.name, values.get("RND_IDX"))
        place = {**slot.spec.place(), "OUTPUT": output}
        timeout = values.get("Timeout")
        job = Job(experiment, label, place, OutputFollower(output), timeout=timeout)
        if values.get("Module") not in self.modules:
            self.modules.append(values.get("Module"))
        name = experiment.name if experiment.name is not None else "(unnamed)"
        line = f"{label} {self.console.paint(str(name), 'bold')}  RND_IDX={values.get('RND_IDX')}"
        line = line if self.single else f"{line}  on {slot.spec.label}"
        if later is None:
            self.console.print(line)
        else:
            later.append(line)
        try:
            message = encode({"values": values, "solves": experiment.solves, "index": experiment.index,
                              "place": place})
        except Exception as exc:  # a parse value that is no data (a lambda, an open file)
            slot.job = job
            self._fail(slot, f"cannot send the experiment to its worker process: {type(exc).__name__}: {exc} "
                             "(parse values must be data; build objects in the worker with solve)", summary, source)
            return
        slot.job = job
        job.started = time.monotonic()
        job.deadline = job.started + timeout if timeout else None
        self.board.set(slot.spec.number, slot_line(slot.spec.label, name, job.started, None))
        try:
            slot.worker.send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._worker_ended(slot, summary, source)

    # --- what comes back ---------------------------------------------------------------------------------

    def _wait(self, source: Source, summary: Summary) -> None:
        assert self.selector is not None
        now = time.monotonic()
        timeout = 0.1 if any(slot.job for slot in self.slots) else 0.5
        if now < self.hold_until:
            timeout = min(timeout, self.hold_until - now)
        for key, _ in self.selector.select(timeout=max(0.0, timeout)):
            if key.data == "wakeup":
                try:
                    os.read(key.fd, 512)
                except BlockingIOError:
                    pass
            else:
                self._receive(key.data, summary, source)
        now = time.monotonic()
        for slot in self.slots:
            worker = slot.worker
            if worker is None:
                self._spawn(slot)
            elif slot.job is not None and slot.job.deadline is not None and now >= slot.job.deadline:
                self._timed_out(slot, summary, source)
            elif slot.job is not None and not worker.alive():
                self._receive(slot, summary, source)
                if slot.worker is worker:
                    self._worker_ended(slot, summary, source)
        self._follow()
        if self.hold_until and now >= self.hold_until:
            self.hold_until = 0.0
            self.changed = True

    def _receive(self, slot: Slot, summary: Summary | None, source: Source | None = None) -> None:
        worker = slot.worker
        if worker is None:
            return
        for message in worker.inbox.read():
            kind = message.get("kind")
            if kind == "ready":
                worker.ready = True
                self.changed = True
                failed = message.get("failed") or {}
                if summary is None and failed:
                    module = next(iter(failed))
                    what, details, hint = failed[module]
                    raise ModuleLoadError(module, what, details=details, hint=hint)
            elif kind == "result" and slot.job is not None and summary is not None and source is not None:
                self._finish(slot, message["status"], message["record"], message["error"], message["elapsed"],
                             message["unread"], summary, source)
            elif kind == "died" and slot.job is not None and summary is not None and source is not None:
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
        """The worker died (its experiment's crash, os._exit, a kill): fail its experiment, start a new worker."""
        code = self._retire(slot)
        if slot.job is not None:
            self._fail(slot, self._with_tail(ending(code), slot.job), summary, source)

    def _timed_out(self, slot: Slot, summary: Summary, source: Source) -> None:
        assert slot.job is not None
        self._retire(slot)
        error = self._with_tail(f"timed out after {slot.job.timeout:g} s (Timeout); the process was killed", slot.job)
        self._fail(slot, error, summary, source)

    def _fail(self, slot: Slot, error: str, summary: Summary, source: Source) -> None:
        job = slot.job
        assert job is not None
        elapsed = time.monotonic() - job.started
        record = build_record(job.experiment.values, {}, status=Status.FAILED, elapsed=elapsed, error=error,
                              place=job.place)
        self._finish(slot, str(Status.FAILED), record, error, elapsed, [], summary, source)

    def _finish(self, slot: Slot, status: str, record: dict[str, Any], error: str | None, elapsed: float,
                unread: list[tuple[Any, ...]], summary: Summary, source: Source) -> None:
        job = slot.job
        assert job is not None
        slot.job = None
        self.changed = True
        self._follow_job(job, final=True)
        experiment = job.experiment
        later: list[str] = []
        if not (self.single or self.aborting or (status == Status.FAILED and self.fail_fast)):
            self._start_next(slot, source, summary, later)  # its run overlaps the record's write to disk
        with interrupts_deferred():
            append_record(experiment.values["YamlLog"], record)
            source.finish(experiment, status)
        self.plan.end(experiment, status)
        self.board.set(slot.spec.number, slot_line(slot.spec.label, None, None, None))
        name = experiment.name if experiment.name is not None else "(unnamed)"
        self.report(job.label, name, status, elapsed, record, experiment.values, error, unread)
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

        Only an experiment that could start anyway: one that read the experiment that just ended still waits
        for its record.
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

    def _follow_job(self, job: Job, final: bool = False) -> None:
        """Copy what the experiment printed to the terminal (one slot) or note its last line (several)."""
        text = job.follower.read(everything=self.single)
        if self.single and text:
            self.console.out.write(text)
            self.console.out.flush()
            self.open_line = not text.endswith("\n")
        if final and self.open_line:
            self.console.out.write("\n")
            self.open_line = False

    def _follow(self) -> None:
        for slot in self.slots:
            job = slot.job
            if job is not None:
                self._follow_job(job)
                name = job.experiment.name if job.experiment.name is not None else "(unnamed)"
                self.board.set(slot.spec.number, slot_line(slot.spec.label, name, job.started, job.follower.last))
        self.board.refresh()

    # --- Ctrl-C and SIGTERM ------------------------------------------------------------------------------

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """While running, Ctrl-C and SIGTERM are handled between events (and reach the slots' process groups)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        assert self.selector is not None
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self.selector.register(read_end, selectors.EVENT_READ, "wakeup")
        previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        self.signals = []
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            if self.selector is not None:
                self.selector.unregister(read_end)
            os.close(read_end)
            os.close(write_end)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.in_source_call:  # waiting on a queue file: stop right there
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGTERM:
                raise Terminated()
            now = time.monotonic()
            running = [slot for slot in self.slots if slot.job is not None]
            if now <= self.stop_window or not running:
                raise KeyboardInterrupt
            for slot in running:
                if slot.worker is not None:
                    slot.worker.signal(signal.SIGINT)
            self.hold_until = self.stop_window = now + self.grace
            if not self.single:
                self.console.print(self.console.paint(
                    f"Ctrl-C: interrupting {len(running)} running experiment(s); press Ctrl-C again within "
                    f"{self.grace:g} s to stop everything", "yellow"))

    def _abort(self, source: Source, summary: Summary, *, release: bool) -> None:
        """Stop now: results that already arrived are kept, every process group is killed.

        After Ctrl-C the experiments still running are logged as interrupted; after SIGTERM they (and those
        taken but not started) go back to the front of a queue, to run again.
        """
        self.aborting = True
        for slot in self.slots:
            if slot.job is not None:
                self._receive(slot, summary, source)
        running = [slot for slot in self.slots if slot.job is not None]
        for slot in self.slots:
            self._retire(slot)
        for slot in running:
            job = slot.job
            assert job is not None
            name = job.experiment.name if job.experiment.name is not None else "(unnamed)"
            if release and source.release(job.experiment):
                slot.job = None
                self.console.print(f"{job.label} {name} put back at the front of the queue")
            else:  # in memory nothing can be put back: log it as interrupted, so that it is not lost
                elapsed = time.monotonic() - job.started
                error = "SIGTERM" if release else "KeyboardInterrupt"
                record = build_record(job.experiment.values, {}, status=Status.INTERRUPTED, elapsed=elapsed,
                                      error=error, place=job.place)
                self._finish(slot, str(Status.INTERRUPTED), record, error, elapsed, [], summary, source)
        for experiment in reversed(list(self.plan.waiting())):
            if source.release(experiment) and release:
                name = experiment.name if experiment.name is not None else "(unnamed)"
                self.console.print(f"{name} put back at the front of the queue")
