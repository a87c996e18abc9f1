"""Holding SIGINT, SIGTERM and SIGHUP back while files are rewritten, whichever thread the system delivers them to."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import Terminated

#: Signals held back while files are rewritten: Ctrl-C, `kill` / a cluster's preemption, a closed terminal.
HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Held signals are acted on in this order: a request to stop (and put the experiment back) wins over Ctrl-C.
_PRIORITY = {signum: rank for rank, signum in enumerate(reversed(HELD_SIGNALS))}  # SIGHUP, SIGTERM, SIGINT


class SignalHold:
    """Holds SIGINT, SIGTERM and SIGHUP for the whole of a critical section, whichever thread they land on.

    The operating system may deliver a signal to any thread, but Python runs handlers in the main thread only.
    While held, a handler that only notes the signal is installed; the signal is acted on when the outermost
    section ends, or when a `released` section (the module's own code, a long wait) begins.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending: list[int] = []
        self.saved: dict[int, Any] = {}
        self.handler = self._note  # one bound method, so that `getsignal(...) is self.handler` holds

    @contextmanager
    def held(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # handlers run in the main thread only; there is nothing to hold here
            return
        if self.depth == 0:
            self._install()
        self.depth += 1
        stopping = False
        try:
            yield
        except (KeyboardInterrupt, SystemExit):
            stopping = True
            raise
        except BaseException as exc:
            stopping = isinstance(exc, Terminated)
            raise
        finally:
            self.depth -= 1
            if self.depth == 0:
                self._uninstall()
                if stopping:
                    self.pending.clear()  # already stopping: the held signal asked for the same
                else:
                    self._deliver()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let signals act inside a held section (signals held meanwhile act at once)."""
        if self.depth == 0 or threading.current_thread() is not threading.main_thread():
            yield
            return
        depth, self.depth = self.depth, 0
        try:
            self._deliver()
            yield
        finally:
            self.depth = depth
            for signum in self.saved:  # the module may have installed handlers of its own meanwhile
                if signal.getsignal(signum) is not self.handler:
                    signal.signal(signum, self.handler)

    def _install(self) -> None:
        for signum in HELD_SIGNALS:
            current = signal.getsignal(signum)
            if current is None or current is self.handler:  # None: set outside Python; leave it alone
                continue
            self.saved[signum] = current
            signal.signal(signum, self.handler)

    def _uninstall(self) -> None:
        for signum, previous in self.saved.items():
            signal.signal(signum, previous)
        self.saved.clear()

    def _note(self, signum: int, frame: Any) -> None:
        if self.depth:
            if signum not in self.pending:
                self.pending.append(signum)
            return
        self._act(signum, frame)

    def _deliver(self) -> None:
        while self.pending:
            self.pending.sort(key=_PRIORITY.get)
            try:
                self._act(self.pending.pop(0), None)
            except BaseException:
                self.pending.clear()  # the process is stopping: what else was held asked for no more than that
                raise

    def _act(self, signum: int, frame: Any) -> None:
        """Do what the handler in place before the hold would have done."""
        action = self.saved.get(signum, signal.getsignal(signum))
        if callable(action) and action is not self.handler:
            action(signum, frame)
        elif action == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


#: Signal dispositions are process-wide, so there is one hold per process.
SIGNALS = SignalHold()


def held_signals() -> Any:
    """Hold SIGINT, SIGTERM and SIGHUP until the section ends, so a record or a queue is never half-updated."""
    return SIGNALS.held()


def released_signals() -> Any:
    """Let signals act again inside a held section (around a module's code and long waits)."""
    return SIGNALS.released()

