"""A queue's journal (`<queue>.state`): every fill, take, finish and put-back, appended as one JSON line.

Appending one synced line is the cheapest durable write there is, and a line is either complete or (after a
crash mid-write) cut short and ignored, so the state is always the old or the new one. Each worker folds the
lines into a `QueueState` and on every transaction reads only what others appended since.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..files import append_bytes, atomic_write
from .text import new_id

log = logging.getLogger("cool_runner")

#: Queue counters besides the statuses of finished experiments.
REJECTED, TAKEN, DROPPED = "rejected", "taken", "dropped"
VERSION = 2

Signature = tuple[int, int, int]


def signature(path: str | os.PathLike[str]) -> Signature | None:
    """Size, modification time and inode: changes whenever anyone writes the file."""
    try:
        return signature_of(os.stat(path))
    except FileNotFoundError:
        return None


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class QueueState:
    """What the journal says: the queue's config, counts, running experiments and every id ever taken."""

    config: str = ""  # YAML text of {"settings": ..., "defaults": ...}, parsed once per worker
    source: str = ""
    paths: list[str] = field(default_factory=list)  # where the filling worker imported modules from
    counts: dict[str, int] = field(default_factory=dict)
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    history: list[tuple[str, Any]] = field(default_factory=list)  # (id, the experiment as E shows it), in take order
    history_ids: set[str] = field(default_factory=set)
    history_version: int = 0  # bumped whenever an entry leaves `history`
    next_index: int = 0  # INDEX for documents that have none: after every INDEX taken so far
    sig: Signature | None = None  # the queue file as the last of us left it
    text: str | None = None  # the queue a fill wrote, until it is confirmed on disk

    @classmethod
    def from_head(cls, head: dict[str, Any]) -> QueueState:
        carry = head.get("carry") or {}
        return cls(config=head.get("config", ""), source=head.get("source", ""), paths=list(head.get("paths") or []),
                   counts=dict(carry.get("counts") or {}), running=dict(carry.get("running") or {}),
                   finished=set(carry.get("finished") or ()), text=head.get("text"))

    @property
    def taken_ids(self) -> Container[str]:
        """Every id that must not run again: finished or running (a view, not a copy)."""
        return _Taken(self)

    def bump(self, key: str, by: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + by

    def apply(self, entry: dict[str, Any]) -> None:
        """Fold one journal line in (the order inside a line is the order things happened)."""
        for doc_id, status in entry.get("done", ()):
            if self.running.pop(doc_id, None) is not None or doc_id not in self.finished:
                self.bump(status)
            self.finished.add(doc_id)
        for doc_id, error in entry.get("unlogged", ()):
            if doc_id in self.running:
                self.running[doc_id]["unlogged"] = error
        back = set(entry.get("back", ()))
        for doc_id in back:
            self.running.pop(doc_id, None)
        take = entry.get("take")
        if take:
            back.add(take["id"])
        if back & self.history_ids:  # put back: it is not an earlier experiment (yet)
            self.history = [item for item in self.history if item[0] not in back]
            self.history_ids -= back
            self.history_version += 1
        if take:
            self.running[take["id"]] = {key: value for key, value in take.items() if key != "hist"}
            self.history.append((take["id"], take.get("hist", "")))
            self.history_ids.add(take["id"])
            if isinstance(take.get("index"), int):
                self.next_index = max(self.next_index, take["index"] + 1)
            self.finished.discard(take["id"])
            self.bump(TAKEN)
        for key, by in (entry.get("count") or {}).items():
            self.bump(key, by)
        if "sig" in entry:
            self.sig = tuple(entry["sig"]) if entry["sig"] else None  # type: ignore[assignment]
        if entry.get("filled"):
            self.text = None


def new_id_for(state: QueueState) -> Callable[[], str]:
    """A maker of fresh document ids that never repeats one the queue has taken."""
    return lambda: new_id(state.taken_ids)


class _Taken:
    def __init__(self, state: QueueState) -> None:
        self.state = state

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.state.finished or doc_id in self.state.running


class Journal:
    """Reads a queue's journal incrementally and appends to it; writers hold the queue's lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: QueueState | None = None
        self.offset = 0
        self.inode: int | None = None

    def refresh(self, *, repair: bool = False) -> QueueState | None:
        """The state with everything appended since the last look. With `repair` (the lock is held), a line
        left unfinished by a writer that died is cut off so that the next line starts cleanly.
        """
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            self.state, self.offset, self.inode = None, 0, None
            return None
        with handle:
            st = os.fstat(handle.fileno())
            if st.st_ino != self.inode or st.st_size < self.offset:  # new (a fill) or replaced: read it all
                self.state, self.offset, self.inode = None, 0, st.st_ino
            if st.st_size == self.offset or self.offset < 0:  # nothing new (or an old state, read whole)
                return self.state
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        if self.offset == 0 and data.startswith(b"{\n"):
            return self._read_version_1(data)
        for line in complete.splitlines():
            self._apply_line(line)
        self.offset += len(complete)
        if repair and len(complete) < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(self.offset)
            log.warning("%s: removed an entry cut short by a crash", self.path)
        return self.state

    def _apply_line(self, line: bytes) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            # A line cut short by a crash in the middle of the file cannot be told from a complete one that
            # was damaged; either way it is a step that did not happen, and every step is safe to miss.
            log.warning("%s: skipped a damaged entry", self.path)
            return
        if "head" in entry:
            self.state = QueueState.from_head(entry["head"])
        if self.state is not None:
            self.state.apply(entry)

    def _read_version_1(self, data: bytes) -> QueueState:
        """A state written by cool-runner before ids: one JSON object (it is converted on the next append)."""
        old = json.loads(data)
        state = QueueState(config=old.get("config", ""), source=old.get("source", ""),
                           counts=dict(old.get("counts") or {}), running=dict(old.get("running") or {}))
        state.sig = tuple(old["signature"]) if old.get("signature") else None  # type: ignore[assignment]
        self.state, self.offset = state, -1  # -1: the file must be rewritten before anything is appended
        return state

    def append(self, entry: dict[str, Any]) -> None:
        """Append one line (synced) and fold it in; the caller holds the lock and has just refreshed."""
        if self.offset < 0:
            self._convert()
        line = (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        start = append_bytes(self.path, line)
        if self.state is not None:
            self.state.apply(entry)
        self.offset = start + len(line)

    def rewrite(self, head: dict[str, Any]) -> None:
        """Start the journal again with one line (a fill): written beside it and renamed into place."""
        line = json.dumps({"head": head}, separators=(",", ":"), ensure_ascii=False) + "\n"
        atomic_write(self.path, line)
        self.state = QueueState.from_head(head)
        self.offset = len(line.encode("utf-8"))
        self.inode = os.stat(self.path).st_ino

    def _convert(self) -> None:
        old = self.state or QueueState()
        self.rewrite({"version": VERSION, "config": old.config, "source": old.source, "paths": old.paths,
                      "carry": {"counts": old.counts, "running": old.running}})
        self.append({"sig": list(old.sig) if old.sig else None})
