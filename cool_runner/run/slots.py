"""run.py's side of a slot's worker process: start it, send it experiments, stop or kill its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
