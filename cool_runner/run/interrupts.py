"""Ctrl-C, SIGTERM and SIGHUP while the engine runs: interrupt the slots, stop everything, leave no process behind.

One Ctrl-C interrupts the experiments running now (SIGINT to every busy slot's process group) and holds new
starts back for the grace period; another Ctrl-C within it, or a Ctrl-C with nothing running, stops the run.
SIGTERM (and SIGHUP: a closed terminal or ssh session) stops it at once and puts what a queue can take back at its
front.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import Terminated
from ..keys import Status
from .records import build_record

if TYPE_CHECKING:
    from .runner import Source, Summary
    from .slots import Pool


class Interrupts:
    """The engine's signal handling (a mixin: it uses the engine's pool, plan, console, `_receive` and
    `_finish`)."""

    pool: Pool
    grace: float
    single: bool
    console: Any
    signals: list[int]
    in_source_call: bool
    hold_until: float
    stop_window: float
    aborting: bool
    plan: Any

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """While running, Ctrl-C and SIGTERM are handled between events, woken up by a pipe."""
        self.signals = []
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self.pool.listen(read_end)
        previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        handled = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # nohup: ignored
            handled.append(signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            self.pool.forget(read_end)
            os.close(read_end)
            os.close(write_end)

    @staticmethod
    def _drain(fd: int) -> None:
        try:
            os.read(fd, 512)
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.in_source_call:  # waiting on a queue file: stop right there
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum != signal.SIGINT:
                raise Terminated(signum)
            now = time.monotonic()
            running = [slot for slot in self.pool.slots if slot.job is not None]
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

        The experiments still running are logged as interrupted, except after SIGTERM with a queue, which
        takes them (and those taken but not started) back at its front, to run again.
        """
        self.aborting = True
        for slot in self.pool.slots:
            if slot.job is not None:
                self._receive(slot, summary, source)
        running = [slot for slot in self.pool.slots if slot.job is not None]
        for slot in self.pool.slots:
            self.pool.retire(slot)
        for slot in running:
            job = slot.job
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
