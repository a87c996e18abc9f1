"""The files behind a queue: splitting documents out of its text, its durable state, and worker liveness."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .yamlio import Loader, atomic_write

# A document starts at `---` in column 0 followed by a space, a tab or the end of the line. In valid YAML such
# a line can only be a document marker: it is not allowed inside quoted scalars and it ends block scalars.
# Queue texts stay bytes: decoding or copying megabytes on every take is what made the old tool slow.
_AFTER_MARKER = frozenset(b" \t\r\n")


def _find_marker(data: bytes, start: int = 0) -> int:
    """Index of the next document marker at or after `start`, or -1."""
    if start == 0 and data.startswith(b"---") and (len(data) == 3 or data[3] in _AFTER_MARKER):
        return 0
    position = max(start - 1, 0)
    while True:
        position = data.find(b"\n---", position)
        if position < 0:
            return -1
        after = position + 4
        if after == len(data) or data[after] in _AFTER_MARKER:
            return position + 1
        position = after


def _is_blank(data: bytes) -> bool:
    text = data.decode("utf-8", "replace")
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


@dataclass
class Cut:
    """The first document of a queue, and what is left around it (never copied: see `rest_parts`).

    `raw` always starts with a `---` line; `line` is the file line that line stands for (0 when the file's
    first document had no marker of its own). `extra` is text to insert in its place (more Repeat copies).
    """

    raw: str
    head: bytes
    tail: memoryview
    line: int
    extra: bytes = b""

    def pending(self) -> int:
        """About how many documents are left after this one (counting costs a pass over the bytes)."""
        return count_documents(self.tail.obj, len(self.tail.obj) - len(self.tail)) + count_documents(self.extra)

    def rest_parts(self) -> list[bytes | memoryview]:
        return [self.head, self.extra, self.tail]

    def rest(self) -> bytes:
        return b"".join(self.rest_parts())


def cut_first(data: bytes) -> Cut | None:
    """Cut the first document out of a queue without parsing the rest; comments before it stay in place."""
    first = _find_marker(data)
    if first < 0:
        if _is_blank(data):
            return None
        return Cut(raw="---\n" + data.decode("utf-8"), head=b"", tail=memoryview(b""), line=0)
    head = data[:first]
    if not _is_blank(head):
        # An implicit first document without a leading `---`.
        return Cut(raw="---\n" + head.decode("utf-8"), head=b"", tail=memoryview(data)[first:], line=0)
    second = _find_marker(data, first + 3)
    end = second if second >= 0 else len(data)
    raw = data[first:end].decode("utf-8")
    if not raw.endswith("\n"):
        raw += "\n"
    return Cut(raw=raw, head=head, tail=memoryview(data)[end:], line=head.count(b"\n") + 1)


def count_documents(data: bytes, start: int = 0) -> int:
    """About how many documents a queue holds from `start` on (a marker inside a comment counts too)."""
    if start >= len(data):
        return 0
    markers = data.count(b"\n---", max(start - 1, 0)) + (start == 0 and data.startswith(b"---"))
    return markers or (0 if _is_blank(data[start:start + 65536]) else 1)


Signature = tuple[int, int, int]


def signature(path: str | os.PathLike[str]) -> Signature | None:
    """Size, modification time and inode: changes whenever anyone writes the file."""
    try:
        return signature_of(os.stat(path))
    except FileNotFoundError:
        return None


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def load_document(raw: str) -> Any:
    """Parse one document's text with the safe loader; YAML errors propagate."""
    return yaml.load(raw, Loader=Loader)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


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

    @property
    def name(self) -> str:
        return f"{self.host}-{self.pid}"

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "pid_start": process_start(self.pid), "since": now_iso()}


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
        if self.thread:
            self.thread.join(self.every + 1)
        try:
            self.path.unlink()
        except FileNotFoundError:
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


@dataclass
class State:
    """What the queue knows besides the pending documents; rewritten atomically under the queue's lock.

    It is JSON, read and written on every take: json is several times faster than YAML for this, and nobody
    edits it by hand. The default config is kept as YAML text (`config`), parsed once per worker.
    """

    config: str = ""
    source: str = ""
    signature: list[int] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> State | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        data = json.loads(text)
        return cls(config=data.get("config", ""), source=data.get("source", ""), signature=data.get("signature"),
                   counts=data.get("counts") or {}, running=data.get("running") or {})

    def write(self, path: Path) -> None:
        atomic_write(path, json.dumps({
            "source": self.source, "signature": self.signature, "counts": self.counts, "running": self.running,
            "config": self.config,
        }, indent=1))

    def bump(self, key: str, by: int = 1) -> int:
        self.counts[key] = self.counts.get(key, 0) + by
        return self.counts[key]
