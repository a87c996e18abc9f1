"""The worker process of a slot: imports the modules once and runs experiments as run.py sends them.

It runs each experiment itself (the default), or, with `isolate`, in a process forked for it alone. Output of
the experiment (Python, C code and subprocesses alike) goes to its `output.log` through file descriptors 1
and 2; the record goes back to run.py as plain data. A guardian process in the slot's process group kills the
whole group when run.py goes away, however it ends.
"""

from __future__ import annotations

import faulthandler
import functools
import gc
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable

from ..errors import LimitError, ModuleLoadError
from ..keys import Status, is_runner_key
from ..study.expand import Experiment
from ..study.expressions import Compiler
from ..study.mapping import TrackedExp
from .importing import load_module
from .metadata import Packages, now, worker_fields
from .records import build_record, changed_values, failure, settle
from .solve import recipes_of, solve_all
from .wire import decode, read_message, write_message

PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the guardian still cleans up
        return None


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux); exit now if it already has."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def start_guardian(watch_fd: int, close: tuple[int, ...]) -> None:
    """Fork a small process that kills this process group once run.py's end of `watch_fd` closes."""
    if os.fork():
        os.close(watch_fd)
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in close:
            os.close(fd)
        while True:
            try:
                if not os.read(watch_fd, 4096):
                    break
            except InterruptedError:
                continue
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


def exit_error(exc: SystemExit) -> str:
    code = exc.code if exc.code is not None else 0
    text = f"SystemExit: the module called sys.exit({code!r})"
    if code == 2:
        text += " (argparse does this on an argument it does not know: use parse_known_args())"
    return text


class Worker:
    """Runs experiments in this process (or in a fork of it) and answers with their records."""

    def __init__(self, hello: Mapping[str, Any], result_fd: int) -> None:
        self.result_fd = result_fd
        self.isolate = bool(hello.get("isolate"))
        self.debug = bool(hello.get("debug"))
        self.paths = list(hello.get("paths", ()))
        self.mains: dict[str, Callable[[Any], Any]] = {}
        self.compiler = Compiler()
        self.running = False
        # What the record needs from this process: the packages its modules loaded (run.py adds the rest).
        self.packages = Packages() if hello.get("metadata", True) else None
        sys.argv = ["run.py", *hello.get("argv", ())]
        for path in reversed(self.paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger = logging.getLogger("cool_runner")
        logger.handlers[:] = [handler]
        logger.propagate = False
        faulthandler.enable()
        # Ctrl-C reaches the slot as SIGINT from run.py; it interrupts an experiment, never the worker itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN if self.isolate else self._interrupt)
        self.home = (os.dup(1), os.dup(2))

    def _interrupt(self, signum: int, frame: object) -> None:
        if self.running:
            raise KeyboardInterrupt

    def main_of(self, module: str) -> Callable[[Any], Any]:
        if module not in self.mains:
            self.mains[module] = load_module(module)
        return self.mains[module]

    def preload(self, modules: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
        """Import the modules; what failed, as ModuleLoadError fields by module."""
        failed = {}
        for module in modules:
            try:
                self.main_of(module)
            except ModuleLoadError as exc:
                failed[module] = (exc.what, exc.details, exc.hint)
        if self.packages is not None:
            self.packages.current()  # once, before any experiment: forks (--isolate) inherit what it found
        return failed

    def serve(self, task_fd: int) -> None:
        while True:
            task = read_message(task_fd)
            if task is None:
                return
            reply = self.run_forked(task) if self.isolate else self.run(task)
            write_message(self.result_fd, reply)

    @contextmanager
    def output_to(self, path: str) -> Iterator[None]:
        """Send file descriptors 1 and 2 to `path` (appending), so C code and subprocesses write there too."""
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):  # the module closed or broke the stream
                    pass
            os.dup2(self.home[0], 1)
            os.dup2(self.home[1], 2)

    def run(self, task: Mapping[str, Any]) -> dict[str, Any]:
        with self.output_to(task["place"]["OUTPUT"]):
            return self.execute(task)

    def execute(self, task: Mapping[str, Any]) -> dict[str, Any]:
        values = task["values"]
        experiment = Experiment(values=values, index=task["index"], solves=list(task["solves"]))
        exp = TrackedExp.track(values)
        recipes = recipes_of(experiment)
        status, error, trace, shown, elapsed = Status.DONE, None, None, None, 0.0
        start = now()
        try:
            self.running = True
            try:
                main = self.main_of(values["Module"])
                solve_all(experiment, exp, recipes, self.compiler)
                started = time.perf_counter()
                try:
                    result = main(exp)
                finally:
                    elapsed = time.perf_counter() - started
                if isinstance(result, Mapping):
                    exp.update(result)
            finally:
                self.running = False
        except KeyboardInterrupt:
            status, error = Status.INTERRUPTED, "KeyboardInterrupt"
        except SystemExit as exc:
            status = Status.FAILED
            _, trace, shown = failure(exc, debug=self.debug)
            error = exit_error(exc)
        except Exception as exc:
            status = Status.FAILED
            error, trace, shown = failure(exc, debug=self.debug)
        unread = exp.unread(is_runner_key) if status == Status.DONE else []
        changes = changed_values(values, exp, recipes)
        facts = worker_fields(self.packages, start) if self.packages is not None else None
        problems: list[LimitError] = []
        record = build_record(exp, recipes, status=status, elapsed=elapsed, error=error, traceback_text=trace,
                              place=task["place"], changes=changes, metadata=facts, problems=problems)
        status, error = settle(record, status, error, problems, experiment.index, values.get("Name"))
        return {"kind": "result", "status": str(status), "record": record, "error": error, "elapsed": elapsed,
                "unread": unread, "changed": [change.describe() for change in changes], "trace": shown}

    def run_forked(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Run the experiment in a fresh fork of this process, which already imported the modules."""
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # the fork's garbage collections then leave the shared pages alone (fewer copies)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                signal.signal(signal.SIGINT, self._interrupt)
                die_with_parent(os.getppid())
                write_message(write_end, self.run(task))
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(0)
        os.close(write_end)
        chunks = []
        while True:
            try:
                chunk = os.read(read_end, 1 << 20)
            except InterruptedError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        reply = decode(b"".join(chunks))
        return reply if reply is not None else {"kind": "died", "wait_status": status}


def main() -> None:
    """Entry point: `python -c ... <task fd> <result fd> <watch fd> <parent pid>`."""
    task_fd, result_fd, watch_fd, parent = (int(arg) for arg in sys.argv[1:5])
    start_guardian(watch_fd, close=(task_fd, result_fd))
    die_with_parent(parent)
    hello = read_message(task_fd)
    if hello is None:
        return
    worker = Worker(hello, result_fd)
    write_message(result_fd, {"kind": "ready", "pid": os.getpid(), "failed": worker.preload(hello["modules"])})
    worker.serve(task_fd)
