"""A queue file of pending experiments that people can edit while it runs and several workers can share."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from .errors import ConfigError, CoolRunnerError, QueueError
from .expand import Expander, Experiment, StudyFile
from .mapping import History
from .queuefiles import (
    Heartbeat,
    Signature,
    State,
    Worker,
    count_documents,
    cut_first,
    load_document,
    now_iso,
    signature,
    signature_of,
    worker_alive,
)
from .yamlio import (
    append_text,
    atomic_write,
    dump,
    dump_all,
    interrupts_deferred,
    load_all,
    prepare_replacement,
    to_plain,
    yaml_error,
)

log = logging.getLogger("cool_runner")


class BrokenQueue(Exception):
    """The queue file is not valid YAML right now (probably half-way through an edit)."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


def difference(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The keys of a resolved experiment whose values differ from the raw default config (deeply).

    Merging the result with the defaults gives the experiment back, so the queue stays small and shows each
    experiment as what makes it special.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in defaults:
            out[key] = value
            continue
        base = defaults[key]
        if isinstance(value, dict) and isinstance(base, dict):
            nested = difference(value, base)
            if nested:
                out[key] = nested
        elif value != base or type(value) is not type(base):
            out[key] = value
    return out


class FileQueue:
    """Pending experiments in `path`, one YAML document each, in run order.

    Beside it: `<path>.state` (defaults, counts and the experiments running, with host and pid),
    `<path>.taken` (every experiment taken so far, for `E` in documents added by hand), `<path>.lock`,
    `<path>.workers/` (heartbeats) and `<queue>.rejected.yaml` (documents that are not valid experiments).
    """

    def __init__(self, path: str | os.PathLike[str], *, worker: Worker | None = None, lock_timeout: float = 60.0,
                 poll: float = 1.0, stale_after: float = 60.0, heartbeat: float = 10.0) -> None:
        self.path = Path(path)
        base = str(self.path)
        self.state_path = Path(base + ".state")
        self.taken_path = Path(base + ".taken")
        self.beats = Path(base + ".workers")
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        self.rejected_path = self.path.with_name(stem + ".rejected.yaml")
        self.lock = FileLock(base + ".lock", timeout=lock_timeout)
        self.worker = worker or Worker()
        self.poll = poll
        self.stale_after = stale_after
        self.heartbeat = Heartbeat(self.beats, self.worker, heartbeat)
        self.history = History()
        self.history_offset = 0
        self.expander: Expander | None = None
        self.expander_config = ""
        self.warned: Signature | None = None
        self.pending_estimate = 0

    # --- locking and state -------------------------------------------------------------------------------

    def _acquire(self) -> None:
        try:
            self.lock.acquire()
        except Timeout as exc:
            raise QueueError(f"could not lock the queue within {self.lock.timeout:.0f} s", file=str(self.path),
                             hint=f"another process holds {self.lock.lock_file}") from exc

    def read_state(self) -> State | None:
        try:
            return State.read(self.state_path)
        except ValueError as exc:
            raise QueueError(f"the queue's state file is damaged: {exc}", file=str(self.state_path),
                             hint="start again with --fresh; the pending experiments are still in the queue") from exc

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def _write_queue(self, data: bytes | list[bytes | memoryview], state: State) -> None:
        atomic_write(self.path, data)
        state.signature = list(signature(self.path) or ())

    def pending(self) -> int:
        """How many documents are waiting, counted exactly (parses the file; for status and start-up only)."""
        data = self._read()
        if not data.strip():
            return 0
        try:
            return sum(1 for doc in load_all(data.decode("utf-8"), str(self.path)) if doc is not None)
        except (ConfigError, UnicodeDecodeError):
            return count_documents(data)

    def has_work(self) -> bool:
        state = self.read_state()
        return self.pending() > 0 or bool(state and state.running)

    # --- filling and resuming ----------------------------------------------------------------------------

    def fill(self, experiments: Sequence[Experiment], study: StudyFile, *, fresh: bool = False) -> None:
        """Write the expanded experiments as the queue (refusing to replace pending work unless `fresh`)."""
        defaults = to_plain(study.defaults)
        docs = []
        for experiment in experiments:
            doc = difference(to_plain(experiment.values), defaults)
            doc.pop("HOST", None)  # set by whichever machine takes it
            docs.append(doc)
        header = (f"# cool-runner queue from {study.path}: edit freely; the first document runs next.\n"
                  "# Each document lists what differs from the default config; the rest is filled in when it runs.\n")
        with interrupts_deferred():
            self._acquire()
            try:
                state = self.read_state()
                if not fresh and (self.pending() or (state and state.running)):
                    running = len(state.running) if state else 0
                    raise QueueError(
                        f"the queue already holds {self.pending()} pending and {running} running experiment(s)",
                        file=str(self.path),
                        hint="continue it with --resume (the experiment file is not read again), "
                             "or replace it with --fresh")
                config = dump({"settings": to_plain(study.settings), "defaults": to_plain(study.defaults)})
                new = State(config=config, source=str(study.path), counts={}, running=state.running if state else {})
                try:
                    self.taken_path.unlink()
                except FileNotFoundError:
                    pass
                self._write_queue((header + dump_all(docs)).encode("utf-8"), new)
                new.write(self.state_path)
            finally:
                self.lock.release()

    def append(self, text: str, origin: str = "<added>") -> int:
        """Append YAML documents (text) to the queue under its lock; returns how many were added."""
        docs = [doc for doc in load_all(text, origin) if doc is not None]
        if not docs:
            return 0
        if not text.lstrip().startswith("---"):
            text = "---\n" + text
        if not text.endswith("\n"):
            text += "\n"
        with interrupts_deferred():
            self._acquire()
            try:
                state = self.read_state()
                if state is None:
                    raise QueueError("there is no queue here", file=str(self.path),
                                     hint="start one with run.py --exp FILE and Global.queue set")
                current = self._read()
                if current and not current.endswith(b"\n"):
                    current += b"\n"
                self._write_queue([current, text.encode("utf-8")], state)
                state.write(self.state_path)
            finally:
                self.lock.release()
        return len(docs)

    def open(self) -> list[str]:
        """Start working on the queue: heartbeat, and put back the experiments of dead workers."""
        if self.read_state() is None:
            if self.pending():
                raise QueueError("the queue has no state file beside it", file=str(self.path),
                                 hint=f"start it with run.py --exp FILE --fresh (expected {self.state_path})")
            raise QueueError("there is no queue here", file=str(self.path),
                             hint="start one with run.py --exp FILE and Global.queue set")
        self.heartbeat.start()
        return self.recover()

    def close(self) -> None:
        self.heartbeat.close()

    def recover(self) -> list[str]:
        """Put the experiments of workers that died back at the front of the queue; returns their names."""
        with interrupts_deferred():
            self._acquire()
            try:
                state = self.read_state()
                if state is None:
                    return []
                data = self._read()
                back, names = [], []
                current = list(signature(self.path) or ())
                for ticket, entry in list(state.running.items()):
                    if worker_alive(entry, self.worker, self.beats, self.stale_after):
                        continue
                    del state.running[ticket]
                    head = cut_first(data)
                    if current == entry.get("queue_before") and head is not None and head.raw == entry["raw"]:
                        continue  # it died before the queue was rewritten: the document is still first
                    back.append(entry["raw"])
                    names.append(f"{entry.get('name')} (taken by {entry.get('host')} pid {entry.get('pid')})")
                if back:
                    self._write_queue(["".join(back).encode("utf-8"), data], state)
                state.write(self.state_path)
                return names
            finally:
                self.lock.release()

    # --- taking and finishing ----------------------------------------------------------------------------

    def take(self) -> Experiment | None:
        """The next experiment, recorded as running; None when the queue is empty. Waits out broken edits."""
        while True:
            try:
                return self._take_once()
            except BrokenQueue as broken:
                sig = signature(self.path)
                if sig != self.warned:
                    log.warning("%s; waiting for the file to be fixed (checking every %g s)", broken.error,
                                self.poll)
                    self.warned = sig
                time.sleep(self.poll)

    def _take_once(self) -> Experiment | None:
        with interrupts_deferred():
            self._acquire()
            try:
                return self._take_locked()
            finally:
                self.lock.release()

    def _take_locked(self) -> Experiment | None:
        state = self.read_state()
        if state is None:
            return None
        data = self._read()
        before = list(signature(self.path) or ())
        if data and state.signature != before:
            self._validate(data)  # someone edited the file: check all of it once, not on every take
        while True:
            cut = cut_first(data)
            if cut is None:
                if state.signature != before:
                    self._write_queue(data, state)
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
                experiment = self._complete(doc, cut, state)
            except CoolRunnerError as exc:
                self._reject(cut.raw, str(exc))
                state.bump("rejected")
                log.warning("moved a document to %s: %s", self.rejected_path, exc)
                data = cut.rest()
                continue
            break
        ticket = f"t-{uuid.uuid4().hex[:12]}"
        experiment.ticket = ticket
        state.running[ticket] = {**self.worker.describe(), "name": experiment.name, "raw": cut.raw,
                                 "queue_before": before}
        state.bump("taken")
        # Crash safety: the new queue is written and synced aside, then the running record (which names the
        # new queue's signature) is made durable, and only then does the new queue replace the old one. A
        # crash before the rename leaves the document in the queue and a record that `recover` drops.
        replacement = prepare_replacement(self.path, cut.rest_parts())
        try:
            state.signature = list(signature_of(replacement.stat))
            state.write(self.state_path)
            append_text(self.taken_path, dump(to_plain(experiment.values), explicit_start=True), sync=False)
            replacement.commit()
        except BaseException:
            replacement.discard()
            raise
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

    def _complete(self, doc: Any, cut: Any, state: State) -> Experiment:
        """Turn a queue document into an experiment: defaults, REP, RND_IDX, HOST and `parse` values."""
        line = cut.line + 1
        if not isinstance(doc, dict):
            raise ConfigError(f"a queue document must be a mapping, not a {type(doc).__name__}",
                              file=str(self.path), line=line)
        if self.expander is None or self.expander_config != state.config:
            config = load_all(state.config, str(self.state_path))[0] if state.config else {}
            study = StudyFile(path=str(self.path), defaults=config.get("defaults") or {},
                              settings=config.get("settings") or {}, definitions=[])
            self.expander = Expander(study, host=self.worker.host)
            self.expander_config = state.config
        self._catch_up_history()
        copies = doc.get("Repeat", 1)
        if "REP" not in doc and isinstance(copies, int) and not isinstance(copies, bool) and copies > 1:
            rnd_idx = doc.get("RND_IDX") or self.expander.new_rnd_idx()
            extra = [{**doc, "REP": rep, "RND_IDX": rnd_idx} for rep in range(1, copies)]
            cut.extra = dump_all(extra).encode("utf-8")
            doc = {**doc, "REP": 0, "RND_IDX": rnd_idx}
        experiment = self.expander.resolve(doc, self.history, state.counts.get("taken", 0),
                                           rep=doc.get("REP", 0), rnd_idx=doc.get("RND_IDX"))
        experiment.values["HOST"] = self.worker.host
        experiment.line = line
        return experiment

    def _catch_up_history(self) -> None:
        """Read the experiments other workers took since we last looked (appended, so read only the new part)."""
        try:
            with open(self.taken_path, "rb") as handle:
                handle.seek(self.history_offset)
                new = handle.read()
        except FileNotFoundError:
            return
        # Every append to this file happens under the queue's lock, which we hold: what is there is complete.
        for doc in load_all(new.decode("utf-8"), str(self.taken_path)):
            if isinstance(doc, dict):
                self.history.append(doc)
        self.history_offset += len(new)

    def _reject(self, raw: str, reason: str) -> None:
        note = "".join(f"# {line}\n" for line in f"rejected {now_iso()}: {reason}".splitlines())
        append_text(self.rejected_path, note + raw)

    def finish(self, experiment: Experiment, status: str) -> None:
        """Forget a finished experiment (its record is in its YamlLog by now) and tidy up an empty queue."""
        with interrupts_deferred():
            self._acquire()
            try:
                state = self.read_state()
                if state is None:
                    return
                state.running.pop(experiment.ticket or "", None)
                state.bump(status)
                if not state.running and cut_first(self._read()) is None:
                    self._remove_all()
                else:
                    state.write(self.state_path)
            finally:
                self.lock.release()

    def release(self, experiment: Experiment) -> None:
        """Put a taken experiment back at the front of the queue (the worker is being stopped)."""
        with interrupts_deferred():
            self._acquire()
            try:
                state = self.read_state()
                if state is None:
                    state = State()
                entry = state.running.pop(experiment.ticket or "", None)
                if entry is None:
                    return
                self._write_queue([entry["raw"].encode("utf-8"), self._read()], state)
                state.write(self.state_path)
            finally:
                self.lock.release()

    def _remove_all(self) -> None:
        for path in (self.path, self.state_path, self.taken_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(self.beats, ignore_errors=True)

    def total(self, taken: int) -> int | None:
        return taken + self.pending_estimate

    # --- status ------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Pending, running (with host, pid and start time, and whether the worker is alive) and counts."""
        state = self.read_state()
        running = []
        for entry in (state.running.values() if state else []):
            alive = worker_alive(entry, self.worker, self.beats, self.stale_after)
            running.append({"name": entry.get("name"), "host": entry.get("host"), "pid": entry.get("pid"),
                            "since": entry.get("since"), "alive": alive})
        return {"queue": str(self.path), "exists": state is not None, "pending": self.pending(),
                "running": running, "counts": dict(state.counts) if state else {},
                "rejected": str(self.rejected_path) if self.rejected_path.exists() else None}
