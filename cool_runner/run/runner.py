"""The runner loop: take an experiment, solve its recipes, call the module, log the record, go on."""

from __future__ import annotations

import logging
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..console import STATUS_COLOURS, Console
from ..errors import LimitError, OutputError, Terminated
from ..keys import STATUSES, Status, is_runner_key
from ..signals import held_signals, released_signals
from ..study.expand import Experiment
from ..study.expressions import Compiler
from ..study.mapping import TrackedExp
from .importing import importable, load_module
from .metadata import Metadata, now
from .records import RecordLog, build_record, changed_values, describe_paths, describe_results, failure, settle
from .solve import recipes_of, solve_all

log = logging.getLogger("cool_runner")
_REAL_FRAME = re.compile(r'^\s*File "[^<]', re.M)

class Source(Protocol):
    """Where experiments come from: a list in memory or a queue file.

    `take` may be told which slot will run the experiment (SLOT, GPU), for a queue's status. A source whose
    `eager` attribute is true is read ahead in full, so that experiments can start out of order when some
    wait for others; any other is read one experiment per free slot.
    """

    def take(self, slot: Mapping[str, Any] | None = None) -> Experiment | None: ...

    def finish(self, experiment: Experiment, status: str) -> None: ...

    def release(self, experiment: Experiment) -> bool: ...

    def abandon(self, experiment: Experiment, error: str) -> None: ...

    def total(self, taken: int) -> int | None: ...


class MemorySource:
    """The experiments of a file, in order, held in memory."""

    eager = True

    def __init__(self, experiments: Sequence[Experiment]) -> None:
        self.items = list(experiments)
        self.position = 0

    def take(self, slot: Mapping[str, Any] | None = None) -> Experiment | None:
        if self.position >= len(self.items):
            return None
        self.position += 1
        return self.items[self.position - 1]

    def finish(self, experiment: Experiment, status: str) -> None:
        pass

    def release(self, experiment: Experiment) -> bool:
        return False  # nothing to put back in memory: the run is ending

    def abandon(self, experiment: Experiment, error: str) -> None:
        pass  # its failure is the outcome; rerun it with --pick

    def total(self, taken: int) -> int | None:
        return len(self.items)


class Listener:
    """Hooks for notifications; every method is optional."""

    def started(self) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...

    def ended(self, summary: Summary) -> None: ...


@dataclass
class Outcome:
    """What happened to one experiment."""

    index: int
    name: Any
    status: str
    elapsed: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Summary:
    """What happened to the whole run."""

    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0
    stopped: bool = False
    terminated: bool = False
    signum: int = 15  # what terminated it: SIGTERM, or SIGHUP

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def exit_code(self) -> int:
        if self.terminated:
            return 128 + self.signum
        if self.stopped:
            return 130
        return 1 if self.count(Status.FAILED) else 0

    def counts(self) -> str:
        """`4 done, 0 failed, 1 skipped, 0 interrupted`."""
        return ", ".join(f"{self.count(status)} {status}" for status in STATUSES)

    def line(self) -> str:
        return f"{self.counts()} in {self.elapsed:.1f} s"


class Runner:
    """Runs experiments one after another; one failure never stops the rest unless fail_fast is set."""

    def __init__(self, console: Console, *, paths: Sequence[str] = (), fail_fast: bool = False,
                 grace: float = 2.0, listeners: Sequence[Listener] = (),
                 stamp: Mapping[str, Any] | None = None, metadata: bool = True, debug: bool = False) -> None:
        self.console = console
        self.debug = debug  # show a failure's whole traceback, cool-runner's own frames included
        self.paths = list(paths)
        self.metadata = Metadata(self.paths) if metadata else None
        self.fail_fast = fail_fast
        self.grace = grace
        self.listeners = list(listeners)
        #: Keys added to every experiment before it runs (e.g. SLURM_JOB_ID in a cluster job).
        self.stamp = dict(stamp or {})
        self.compiler = Compiler()
        self.mains: dict[str, Callable[[Any], Any]] = {}
        self.logs = RecordLog()

    def main_of(self, module: str) -> Callable[[Any], Any]:
        if module not in self.mains:
            with importable(self.paths):
                self.mains[module] = load_module(module)
        return self.mains[module]

    def preload(self, experiments: Sequence[Experiment]) -> None:
        """Import every Module before anything runs, so a typo fails at once."""
        for experiment in experiments:
            if not experiment.skipped:
                self.main_of(experiment.values["Module"])
        if self.metadata is not None:
            self.metadata.prefetch(self.mains)

    def run(self, source: Source) -> Summary:
        """Run what `source` hands out. Signals are held except while a module runs or the runner waits, so
        taking, logging and finishing are never cut in half; one that arrived meanwhile acts at the next module:
        Ctrl-C skips it (interrupted), SIGTERM and SIGHUP put it back and stop.
        """
        summary = Summary()
        start = time.monotonic()
        self._notify("started")
        taken = 0
        try:
            with held_signals():
                while True:
                    with released_signals():
                        pass  # a signal that came during the last record acts here, before anything is taken
                    experiment = source.take()
                    if experiment is None:
                        break
                    taken += 1
                    outcome = self.run_one(experiment, taken, source.total(taken), source)
                    summary.outcomes.append(outcome)
                    self._notify("finished", outcome)
                    if outcome.status == Status.INTERRUPTED:
                        with released_signals():
                            self.pause()
                    if outcome.status == Status.FAILED and self.fail_fast:
                        self.console.print("stopping at the first failure (--fail-fast)")
                        break
        except KeyboardInterrupt:
            summary.stopped = True
            self.console.print(self.console.paint("stopped by Ctrl-C", "yellow"))
        except Terminated as stop:
            summary.stopped = summary.terminated = True
            summary.signum = stop.signum
            self.console.print(self.console.paint(f"stopped by {signal.Signals(stop.signum).name}", "yellow"))
        summary.elapsed = time.monotonic() - start
        self.console.print(self.console.paint(summary.line(), "bold"))
        self._notify("ended", summary)
        return summary

    def pause(self) -> None:
        self.console.print(f"press Ctrl-C again within {self.grace:g} s to stop, or wait for the next experiment")
        time.sleep(self.grace)  # a KeyboardInterrupt here ends the run

    def _notify(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, event)(*args)
            except Exception:  # a notifier must never stop the experiments
                log.warning("notification %s failed", event, exc_info=True)

    def run_one(self, experiment: Experiment, position: int, total: int | None, source: Source) -> Outcome:
        label = f"[{position}/{total}]" if total else f"[{position}]"
        name = experiment.name if experiment.name is not None else "(unnamed)"
        values = experiment.values
        if experiment.skipped:
            self.console.print(f"{label} {self.console.paint('skip', 'dim')}")
            source.finish(experiment, Status.SKIPPED)
            return Outcome(experiment.index, experiment.name, Status.SKIPPED)
        self.console.print(f"{label} {self.console.paint(str(name), 'bold')}  RND_IDX={values.get('RND_IDX')}")
        values.update(self.stamp)
        exp = TrackedExp.track(values)
        recipes = recipes_of(experiment)
        status, error, trace, shown, elapsed = Status.DONE, None, None, None, 0.0
        start = now() if self.metadata else ""
        try:
            with released_signals():  # a signal held since the take acts here, before the module starts
                main = self.main_of(values["Module"])
                solve_all(experiment, exp, recipes, self.compiler)
                started = time.perf_counter()
                try:
                    result = main(exp)
                finally:
                    elapsed = time.perf_counter() - started
                if isinstance(result, Mapping):
                    exp.update(result)
        except KeyboardInterrupt:
            status, error = Status.INTERRUPTED, "KeyboardInterrupt"
        except Terminated:
            if source.release(experiment):
                self.console.print(f"{label} {name} put back at the front of the queue")
            raise
        except Exception as exc:
            status = Status.FAILED
            error, trace, shown = failure(exc, debug=self.debug)
        unread = exp.unread(is_runner_key) if status == Status.DONE else []
        changes = changed_values(values, exp, recipes)
        facts = (self.metadata.fields(values, file=experiment.file, line=experiment.line, start=start, end=now())
                 if self.metadata else None)
        problems: list[LimitError] = []
        record = build_record(exp, recipes, status=status, elapsed=elapsed, error=error, traceback_text=trace,
                              changes=changes, metadata=facts, problems=problems)
        status, error = settle(record, status, error, problems, experiment.index, experiment.name)
        unwritten = self.commit(experiment, record, status, source)
        if unwritten:
            status, error, unread = Status.FAILED, unwritten, []
        self.report(label, name, status, elapsed, record, values, error, unread, [c.describe() for c in changes],
                    shown)
        return Outcome(experiment.index, experiment.name, status, elapsed, record, error)

    def commit(self, experiment: Experiment, record: dict[str, Any], status: str, source: Source) -> str | None:
        """Append an experiment's record and tell the source it finished, with signals held.

        Returns the error when the record could not be written: that experiment's failure, not the run's (a queue
        keeps it as running, so that --resume puts it back).
        """
        then = "the experiment stays in the queue: run.py --resume puts it back" if experiment.ticket else ""
        with held_signals():
            try:
                self.logs.append(experiment.values["YamlLog"], record, queue_id=experiment.ticket, then=then)
            except OutputError as exc:
                error = f"its record was not written: {exc}"
                source.abandon(experiment, error)
                return error
            source.finish(experiment, status)
        return None

    def report(self, label: str, name: Any, status: str, elapsed: float, record: Mapping[str, Any],
               values: Mapping[str, Any], error: str | None, unread: list[tuple[Any, ...]],
               changed: Sequence[str] = (), trace: str | None = None) -> None:
        word = self.console.paint(status, STATUS_COLOURS.get(status, ""))
        line = f"{label} {name} {word} in {elapsed:.1f} s"
        results = describe_results(record, values)
        if results:
            line += f"  {results}"
        self.console.print(line)
        if error and status == Status.FAILED:
            self.console.print(f"    {self.console.paint(error.splitlines()[0], 'red')}")
            if trace and _REAL_FRAME.search(trace):  # frames of the user's files to show, not just `<expression>`
                self.console.print("".join(f"    {line}\n" for line in trace.splitlines()).rstrip("\n"))
        if unread:
            self.console.print(f"    never read by the module: {describe_paths(unread)}")
        if changed:
            self.console.print(self.console.paint(f"    warning: the module changed configured values: "
                                                  f"{', '.join(changed)} (the log keeps what was configured under "
                                                  "CONFIGURED)", "yellow"))

