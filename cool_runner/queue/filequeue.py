"""A queue file of pending experiments that people can edit while it runs and several workers can share."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from filelock import FileLock, Timeout

from ..errors import ConfigError, CoolRunnerError, QueueError
from ..files import append_text, interrupts_deferred, prepare_replacement
from ..study.expand import Experiment
from ..study.load import StudyFile
from ..yamlio import dump, dump_all, load_all, to_plain, yaml_error
from .documents import Completer, difference
from .state import REJECTED, TAKEN, Signature, State, now_iso, signature, signature_of
from .text import count_documents, cut_first, load_document
from .workers import Heartbeat, Worker, worker_alive

log = logging.getLogger("cool_runner")
T = TypeVar("T")
NO_QUEUE_HINT = "start one with run.py --exp FILE and Global.queue set"


class BrokenQueue(Exception):
    """The queue file is not valid YAML right now (probably half-way through an edit)."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


class _Changed(Exception):
    """The queue file was saved by someone who does not take the lock while we were rewriting it."""


class FileQueue:
    """Pending experiments in `path`, one YAML document each, in run order.

    Beside it: `<path>.state` (JSON: default config, counts, and the running experiments with host and pid),
    `<path>.taken` (every experiment taken so far, for `E`), `<path>.lock`, `<path>.workers/` (heartbeats)
    and `<queue>.rejected.yaml` (documents that are not valid experiments).
    """

    def __init__(self, path: str | os.PathLike[str], *, worker: Worker | None = None, lock_timeout: float = 60.0,
                 poll: float = 1.0, stale_after: float = 60.0, heartbeat: float = 10.0) -> None:
        self.path = Path(path)
        self.state_path = Path(f"{self.path}.state")
        self.taken_path = Path(f"{self.path}.taken")
        self.beats = Path(f"{self.path}.workers")
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        self.rejected_path = self.path.with_name(stem + ".rejected.yaml")
        self.lock = FileLock(f"{self.path}.lock", timeout=lock_timeout)
        self.worker = worker or Worker()
        self.poll = poll
        self.stale_after = stale_after
        self.heartbeat = Heartbeat(self.beats, self.worker, heartbeat)
        self.completer = Completer(self.path, self.taken_path, self.worker.host)
        self.warned: Signature | None = None
        self.pending_estimate = 0

    # --- files and locking -------------------------------------------------------------------------------

    def _locked(self, action: Callable[[], T]) -> T:
        """Run `action` under the queue's lock with Ctrl-C held back; again if an editor saved meanwhile."""
        for _ in range(100):
            with interrupts_deferred():
                try:
                    self.lock.acquire()
                except Timeout as exc:
                    raise QueueError(f"could not lock the queue within {self.lock.timeout:.0f} s",
                                     file=str(self.path), hint=f"another process holds {self.lock.lock_file}") from exc
                try:
                    return action()
                except _Changed:
                    continue
                finally:
                    self.lock.release()
        raise QueueError("the queue file kept changing while it was being rewritten", file=str(self.path))

    def read_state(self) -> State | None:
        try:
            return State.read(self.state_path)
        except ValueError as exc:
            raise QueueError(f"the queue's state file is damaged: {exc}", file=str(self.state_path),
                             hint="start again with --fresh; the pending experiments are still in the queue") from exc

    def _state(self) -> State:
        state = self.read_state()
        if state is None:
            raise QueueError("there is no queue here", file=str(self.path), hint=NO_QUEUE_HINT)
        return state

    def config(self) -> dict[str, Any]:
        """The settings and default config the queue was filled with."""
        state = self._state()
        return (load_all(state.config, str(self.state_path))[0] or {}) if state.config else {}

    def _read(self) -> tuple[bytes, list[int]]:
        """The queue's bytes and its signature as read (to notice a save that does not take the lock)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b"", []
        return data, list(signature(self.path) or ())

    def _write(self, parts: bytes | list[bytes | memoryview], state: State, before: list[int],
               durable: Callable[[], None] | None = None) -> None:
        """Replace the queue atomically. `durable` runs after the new file is synced and before it replaces
        the old one (the take records the running experiment there), so a crash between leaves the old file.
        """
        replacement = prepare_replacement(self.path, parts)
        try:
            state.signature = list(signature_of(replacement.stat))
            if durable is not None:
                durable()
            if list(signature(self.path) or ()) != before:
                raise _Changed()
            replacement.commit()
        except BaseException:
            replacement.discard()
            raise

    # --- filling, adding, resuming -----------------------------------------------------------------------

    def pending(self) -> int:
        """How many documents are waiting, counted exactly (parses the file; for status and start-up)."""
        data, _ = self._read()
        try:
            return sum(1 for doc in load_all(data.decode("utf-8"), str(self.path)) if doc is not None)
        except (ConfigError, UnicodeDecodeError):
            return count_documents(data)

    def fill(self, experiments: Sequence[Experiment], study: StudyFile, *, fresh: bool = False) -> None:
        """Write expanded experiments as the queue; pending or running work is replaced only with `fresh`."""
        defaults = to_plain(study.defaults)
        docs = []
        for experiment in experiments:
            doc = difference(to_plain(experiment.values), defaults)
            doc.pop("HOST", None)  # set by whichever machine takes it
            docs.append(doc)
        text = (f"# cool-runner queue from {study.path}: edit freely; the first document runs next.\n"
                "# Each document lists what differs from the default config; the rest is filled in when it runs.\n"
                + dump_all(docs))
        config = dump({"settings": to_plain(study.settings), "defaults": defaults})

        def action() -> None:
            old = self.read_state()
            pending = self.pending()
            if not fresh and (pending or (old and old.running)):
                raise QueueError(
                    f"the queue already holds {pending} pending and {len(old.running) if old else 0} running "
                    "experiment(s)", file=str(self.path),
                    hint="continue it with --resume (the experiment file is not read again), "
                         "or replace it with --fresh")
            state = State(config=config, source=str(study.path), running=old.running if old else {})
            self.taken_path.unlink(missing_ok=True)
            self._write(text.encode("utf-8"), state, self._read()[1], lambda: None)
            state.write(self.state_path)

        self._locked(action)

    def append(self, text: str, origin: str = "<added>") -> int:
        """Append YAML documents to the queue under its lock; returns how many were added."""
        count = sum(1 for doc in load_all(text, origin) if doc is not None)
        if not count:
            return 0
        body = (text if text.lstrip().startswith("---") else "---\n" + text).rstrip("\n") + "\n"

        def action() -> None:
            state = self._state()
            data, before = self._read()
            separator = b"\n" if data and not data.endswith(b"\n") else b""
            self._write([data, separator, body.encode("utf-8")], state, before)
            state.write(self.state_path)

        self._locked(action)
        return count

    def open(self) -> list[str]:
        """Start working on the queue: heartbeat, and put back the experiments of dead workers."""
        if self.read_state() is None:
            hint = f"start it again with run.py --exp FILE --fresh ({self.state_path} is missing)"
            raise QueueError("there is no queue here", file=str(self.path),
                             hint=hint if self.pending() else NO_QUEUE_HINT)
        self.heartbeat.start()
        return self.recover()

    def close(self) -> None:
        self.heartbeat.close()

    def recover(self) -> list[str]:
        """Put the experiments of workers that died back at the front of the queue; returns their names."""

        def action() -> list[str]:
            state = self.read_state()
            if state is None:
                return []
            data, before = self._read()
            back, names = [], []
            for ticket, entry in list(state.running.items()):
                if worker_alive(entry, self.worker, self.beats, self.stale_after):
                    continue
                del state.running[ticket]
                head = cut_first(data)
                if before == entry.get("queue_before") and head is not None and head.raw == entry["raw"]:
                    continue  # it died before the queue was rewritten: the document is still first
                back.append(entry["raw"])
                names.append(f"{entry.get('name')} (taken by {entry.get('host')} pid {entry.get('pid')})")
            if back:
                self._write(["".join(back).encode("utf-8"), data], state, before)
            state.write(self.state_path)
            return names

        return self._locked(action)

    # --- taking and finishing ----------------------------------------------------------------------------

    def take(self, slot: Mapping[str, Any] | None = None) -> Experiment | None:
        """The next experiment, recorded as running (on `slot`, if given); None when the queue is empty.

        Waits out broken edits.
        """
        while True:
            try:
                return self._locked(lambda: self._take(slot))
            except BrokenQueue as broken:
                sig = signature(self.path)
                if sig != self.warned:
                    log.warning("%s; waiting for the file to be fixed (checking every %g s)", broken.error, self.poll)
                    self.warned = sig
                time.sleep(self.poll)

    def _take(self, slot: Mapping[str, Any] | None = None) -> Experiment | None:
        state = self.read_state()
        if state is None:
            return None
        data, before = self._read()
        if data and state.signature != before:
            self._validate(data)  # someone edited the file: check all of it once, not on every take
        while True:
            cut = cut_first(data)
            if cut is None:
                if state.signature != before:  # only comments were left: tidy them away
                    self._write(data, state, before)
                    state.write(self.state_path)
                return None
            try:
                doc = load_document(cut.raw)
            except yaml.YAMLError as exc:
                error = yaml_error(exc, str(self.path))
                error.line = cut.line + (error.line or 1) - 1
                raise BrokenQueue(error) from exc
            if doc is None:  # only comments: drop it
                data = cut.rest()
                continue
            try:
                experiment = self.completer.complete(doc, cut, state)
            except CoolRunnerError as exc:
                note = "".join(f"# {line}\n" for line in f"rejected {now_iso()}: {exc}".splitlines())
                append_text(self.rejected_path, note + cut.raw)
                state.bump(REJECTED)
                log.warning("moved a document to %s: %s", self.rejected_path, exc)
                data = cut.rest()
                continue
            if experiment is not None:
                break
            data = cut.rest()  # Repeat: 0 asks for no copies
        experiment.ticket = f"t-{uuid.uuid4().hex[:12]}"
        state.running[experiment.ticket] = {**self.worker.describe(), "name": experiment.name, "raw": cut.raw,
                                            "queue_before": before, **(slot or {})}
        state.bump(TAKEN)
        known = state.signature
        try:
            self._write(cut.rest_parts(), state, before, lambda: state.write(self.state_path))
        except _Changed:
            del state.running[experiment.ticket]  # undo the durable record before trying again
            state.bump(TAKEN, -1)
            state.signature = known
            state.write(self.state_path)
            raise
        append_text(self.taken_path, dump(to_plain(experiment.values), explicit_start=True), sync=False)
        if self.pending_estimate <= 0 or state.signature != before or cut.extra:
            self.pending_estimate = cut.pending()  # a pass over the file: only when someone else changed it
        else:
            self.pending_estimate -= 1
        return experiment

    def _validate(self, data: bytes) -> None:
        try:
            load_all(data.decode("utf-8"), str(self.path))
        except UnicodeDecodeError as exc:
            raise BrokenQueue(ConfigError(f"not UTF-8 text: {exc.reason}", file=str(self.path))) from exc
        except ConfigError as exc:
            raise BrokenQueue(exc) from exc

    def finish(self, experiment: Experiment, status: str) -> None:
        """Forget a finished experiment (its record is in its YamlLog by now) and tidy up an empty queue."""

        def action() -> None:
            state = self.read_state()
            if state is None:
                return
            state.running.pop(experiment.ticket or "", None)
            state.bump(status)
            if not state.running and cut_first(self._read()[0]) is None:
                for path in (self.path, self.state_path, self.taken_path):
                    path.unlink(missing_ok=True)
                shutil.rmtree(self.beats, ignore_errors=True)
            else:
                state.write(self.state_path)

        self._locked(action)

    def release(self, experiment: Experiment) -> bool:
        """Put a taken experiment back at the front of the queue (the worker is being stopped)."""

        def action() -> bool:
            state = self._state()
            entry = state.running.pop(experiment.ticket or "", None)
            if entry is None:
                return False
            data, before = self._read()
            self._write([entry["raw"].encode("utf-8"), data], state, before)
            state.write(self.state_path)
            return True

        return self._locked(action)

    def total(self, taken: int) -> int | None:
        return taken + self.pending_estimate

    def status(self) -> dict[str, Any]:
        """Pending, running (with host, pid, start time and whether its worker is alive) and counts."""
        state = self.read_state()
        running = [{"name": e.get("name"), "host": e.get("host"), "pid": e.get("pid"), "since": e.get("since"),
                    "slot": e.get("SLOT"), "gpu": e.get("GPU"),
                    "alive": worker_alive(e, self.worker, self.beats, self.stale_after)}
                   for e in (state.running.values() if state else [])]
        return {"queue": str(self.path), "exists": state is not None, "pending": self.pending(), "running": running,
                "counts": dict(state.counts) if state else {},
                "rejected": str(self.rejected_path) if self.rejected_path.exists() else None}
