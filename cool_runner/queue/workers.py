"""Workers of a queue: who they are, their heartbeats, and whether they are still alive."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .state import now_iso


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot), to tell a live worker from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    current = process_start(pid)
    return started is None or current is None or current == started


@dataclass
class Worker:
    """This process, as other workers see it."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started: int | None = field(default=None, init=False)  # read once: reading /proc on every take is costly
    token: str = field(default_factory=lambda: secrets.token_hex(4), init=False)  # this worker, not just this pid

    def __post_init__(self) -> None:
        self.started = process_start(self.pid)

    @property
    def name(self) -> str:
        return f"{self.host}-{self.pid}"

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "pid_start": self.started, "worker": self.token,
                "since": now_iso()}

    def owns(self, entry: dict[str, Any]) -> bool:
        """Whether a running experiment was taken by this very worker."""
        return entry.get("worker") == self.token


class Heartbeat:
    """Touches a file every few seconds so that workers on other machines can tell this one is alive."""

    def __init__(self, folder: Path, worker: Worker, every: float) -> None:
        self.path = folder / worker.name
        self.every = every
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.thread = threading.Thread(target=self._beat, name="cool-runner-heartbeat", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.path.touch()
            except OSError:  # the queue was removed under us; the worker notices on its next take
                pass

    def close(self) -> None:
        self.stop.set()
        if self.thread and self.thread.ident is not None:  # it may have been stopped by Ctrl-C while starting
            self.thread.join(self.every + 1)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def remove_stale_beats(folder: Path, me: Worker) -> None:
    """Delete the heartbeat files of workers on this machine whose process is gone."""
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return
    for name in names:
        host, _, pid = name.rpartition("-")
        if host == me.host and pid.isdigit() and int(pid) != me.pid and not pid_alive(int(pid), None):
            try:
                (folder / name).unlink()
            except OSError:
                pass


def worker_alive(entry: dict[str, Any], me: Worker, beats: Path, stale_after: float) -> bool:
    """Whether the worker that took a running experiment is still alive."""
    if entry.get("host") == me.host:
        return pid_alive(int(entry.get("pid", -1)), entry.get("pid_start"))
    beat = beats / f"{entry.get('host')}-{entry.get('pid')}"
    try:
        return time.time() - beat.stat().st_mtime < stale_after
    except FileNotFoundError:
        return False
