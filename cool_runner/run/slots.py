"""run.py's side of the slots: their worker processes, started, sent experiments, stopped or killed."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .gpus import SlotSpec
from .wire import Inbox, encode

ROOT = str(Path(__file__).resolve().parents[2])
# The worker finds cool_runner where this run.py found it, whatever the current folder.
BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from cool_runner.run.child import main; main()"

SIGNAL_CAUSES = {
    signal.SIGSEGV: "segmentation fault: a crash in C code",
    signal.SIGKILL: "killed from outside: the out-of-memory killer, or kill -9",
    signal.SIGABRT: "aborted, e.g. by a failed assertion in C code",
    signal.SIGBUS: "bus error: a crash in C code",
    signal.SIGFPE: "arithmetic error in C code",
    signal.SIGILL: "illegal instruction",
    signal.SIGTERM: "terminated from outside",
}


def ending(returncode: int) -> str:
    """How a process ended without reporting, for ERROR: `killed by SIGSEGV (segmentation fault: ...)`."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"killed by signal {-returncode}"
        cause = SIGNAL_CAUSES.get(sig)
        return f"killed by {sig.name}" + (f" ({cause})" if cause else "")
    return f"its process exited with code {returncode} before reporting a result (os._exit, or a crash)"


def wait_status_code(status: int) -> int:
    """A wait status as Popen.returncode spells it: the exit code, or minus the signal number."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else status


class WorkerProcess:
    """One worker process in its own process group (its session), with the pipes that lead to it."""

    def __init__(self, spec: SlotSpec, hello: Mapping[str, Any]) -> None:
        self.spec = spec
        task_r, self.task_w = os.pipe()
        result_r, result_w = os.pipe()
        # run.py holds the only write end of this pipe: when run.py ends, however it ends, the guardian in the
        # worker's process group reads end-of-file and kills the group.
        watch_r, self.watch_w = os.pipe()
        env = dict(os.environ)
        if spec.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = spec.gpu
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOT, ROOT, str(task_r), str(result_w), str(watch_r), str(os.getpid())],
                pass_fds=(task_r, result_w, watch_r), stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        except BaseException:
            for fd in (self.task_w, result_r, self.watch_w):
                os.close(fd)
            raise
        finally:
            for fd in (task_r, result_w, watch_r):
                os.close(fd)
        os.set_blocking(result_r, False)
        self.inbox = Inbox(result_r)
        self.ready = False
        self.closed = False
        self.send(encode(hello))

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, data: bytes) -> None:
        """Send one encoded message (`wire.encode`); raises BrokenPipeError when the worker is gone."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.task_w, view):]

    def signal(self, signum: int) -> None:
        """Signal the whole process group: the worker, the experiment's subprocesses and the guardian."""
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> int:
        """Kill the process group at once; returns how the worker ended."""
        self.signal(signal.SIGKILL)
        code = self.process.wait()
        self.close()
        return code

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to finish (end of its task stream); kill its group if it does not within `timeout`.

        Once the worker is gone, closing the watch pipe makes the guardian kill what is left of the group.
        """
        if self.closed:
            return
        os.close(self.task_w)
        self.task_w = -1
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.task_w, self.watch_w, self.inbox.fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


@dataclass
class Slot:
    """A slot: its number and GPU, its worker process, and the experiment it runs (see engine.Job)."""

    spec: SlotSpec
    worker: WorkerProcess | None = None
    job: Any = None

    @property
    def free(self) -> bool:
        return self.job is None and self.worker is not None and self.worker.ready


class Pool:
    """Every slot's worker process, and one selector that waits for whatever any of them says."""

    def __init__(self, specs: Sequence[SlotSpec], hello: Callable[[], Mapping[str, Any]]) -> None:
        self.slots = [Slot(spec) for spec in specs]
        self.hello = hello
        self.selector: selectors.BaseSelector | None = None

    def start(self) -> None:
        if self.selector is None:
            self.selector = selectors.DefaultSelector()
            for slot in self.slots:
                self.spawn(slot)

    def spawn(self, slot: Slot) -> None:
        assert self.selector is not None
        slot.worker = WorkerProcess(slot.spec, self.hello())
        self.selector.register(slot.worker.inbox.fd, selectors.EVENT_READ, slot)

    def retire(self, slot: Slot) -> int:
        """Kill a slot's worker process group at once; returns how the worker ended."""
        worker, slot.worker = slot.worker, None
        if worker is None:
            return 0
        if self.selector is not None:
            self.selector.unregister(worker.inbox.fd)
        return worker.kill()

    def listen(self, fd: int) -> None:
        """Also wake up when `fd` is readable (the signal wake-up pipe)."""
        assert self.selector is not None
        self.selector.register(fd, selectors.EVENT_READ, None)

    def forget(self, fd: int) -> None:
        if self.selector is not None:
            self.selector.unregister(fd)

    def wait(self, timeout: float) -> list[Slot | int]:
        """The slots with news within `timeout` seconds (and the listened-to file descriptors)."""
        assert self.selector is not None
        return [key.data if key.data is not None else key.fd for key, _ in self.selector.select(max(0.0, timeout))]

    def close(self) -> None:
        """Stop every worker; what their experiments left running is killed with them."""
        if self.selector is None:
            return
        for slot in self.slots:
            if slot.worker is not None and slot.job is not None:
                self.retire(slot)  # only after an error: do not wait for the experiment
            elif slot.worker is not None:
                self.selector.unregister(slot.worker.inbox.fd)
                slot.worker.stop()
                slot.worker = None
        self.selector.close()
        self.selector = None
