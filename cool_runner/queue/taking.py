"""Taking the next experiment: drop what was taken before, journal the take, then rewrite the queue."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import ConfigError, CoolRunnerError, QueueError, Terminated
from ..files import append_text, write_error
from ..signals import held_signals, released_signals
from ..study.expand import Experiment
from ..yamlio import load_all, yaml_error
from .disk import Snapshot
from .lookup import record_status
from .state import DROPPED, REJECTED, QueueState, new_id_for, now_iso, signature
from .text import cut_first, find_document, front, load_document, with_ids
from .transactions import _RETRIES, Changed, QueueBase

log = logging.getLogger("cool_runner")


class BrokenQueue(Exception):
    """The queue file is not valid YAML right now (probably half-way through an edit)."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


class Taking(QueueBase):
    """Takes, finishes and puts back experiments."""

    def take(self, slot: Mapping[str, Any] | None = None) -> Experiment | None:
        """The next experiment, recorded as running (on `slot`, if given: SLOT, GPU); None when nothing is
        pending. Waits out broken edits.

        A stop asked for while the take was being recorded (Ctrl-C, SIGTERM, SIGHUP) puts it back at once: it
        never started.
        """
        taken: list[Experiment] = []
        try:
            with held_signals():
                while True:
                    try:
                        experiment = self._locked(lambda state: self._take(state, slot))
                    except BrokenQueue as broken:
                        sig = signature(self.path)
                        if sig != self.warned:
                            log.warning("%s; waiting for the file to be fixed (checking every %g s)", broken.error,
                                        self.poll)
                            self.warned = sig
                        with released_signals():
                            time.sleep(self.poll)
                        continue
                    if experiment is not None:
                        taken.append(experiment)
                        return experiment
                    names = self._locked(lambda state: self._recover(state, unlogged=False))
                    if not names:
                        self.drained = True
                        return None
                    log.warning("%s: put back in the queue, its worker is gone: %s", self.path, ", ".join(names))
        except (KeyboardInterrupt, Terminated):
            if taken:
                self.release(taken[0])
            raise

    def _take(self, state: QueueState | None, slot: Mapping[str, Any] | None = None) -> Experiment | None:
        if state is None:  # the queue's state was removed: there is nothing to record to
            self.done.clear()
            self.unlogged.clear()
            return None
        entry = self._buffered()
        snapshot = self.file.read(state.sig)
        data = snapshot.data
        foreign = snapshot.sig != state.sig
        try:
            if foreign and data.strip():
                self._validate(data)  # someone edited the file: check all of it once, not on every take
            if foreign:
                data = with_ids(data, new_id_for(state))  # documents typed by hand get their ids when first read
            experiment, cut, rejected, data = self._choose(data, state, entry)
        except BrokenQueue:
            self._log_if(entry)
            raise
        if rejected:
            try:
                append_text(self.rejected_path, "".join(rejected))
            except OSError as exc:
                raise write_error(self.rejected_path, exc, "keep a rejected document", self.resume_hint) from exc
            _count(entry, REJECTED, len(rejected))
        if experiment is None or cut is None:
            if data != snapshot.data:
                self._replace(snapshot, data, entry)  # dropped documents, or comments only
            else:
                self._log_if(entry)
            return None
        self._commit_take(experiment, cut, snapshot, entry, slot)
        if self.pending_estimate <= 0 or foreign or cut.extra:
            self.pending_estimate = cut.pending()  # a pass over the file: only when something else changed
        else:
            self.pending_estimate -= 1
        return experiment

    def _choose(self, data: bytes, state: QueueState, entry: dict[str, Any]) -> tuple[Any, Any, list[str], bytes]:
        """The first document that should run, cut out of `data`; documents before it that should not are
        dropped (or rejected). Returns the experiment, its cut, the rejected texts, and the bytes it was cut from.
        """
        rejected: list[str] = []
        finished_now = {doc_id for doc_id, _ in self.done}
        while True:
            cut = cut_first(data)
            if cut is None:
                return None, None, rejected, data
            if cut.id is None:  # typed by hand and not read by anyone yet: ids for all of them now
                data = with_ids(data, new_id_for(state))
                continue
            try:
                doc = load_document(cut.raw)
            except yaml.YAMLError as exc:
                error = yaml_error(exc, str(self.path))
                error.line = cut.line + (error.line or 1) - 1
                raise BrokenQueue(error) from exc
            doc_id = cut.id
            if doc is None or self._already(doc_id, doc, cut.line, state, finished_now, entry):
                data = cut.rest()  # only comments, or taken before: drop it
                continue
            try:
                experiment = self.completer.complete(doc, cut, state, new_id_for(state))
            except CoolRunnerError as exc:
                note = "".join(f"# {line}\n" for line in f"rejected {now_iso()}: {exc}".splitlines())
                rejected.append(note + cut.raw)
                log.warning("moved a document to %s: %s", self.rejected_path, exc)
                data = cut.rest()
                continue
            if experiment is None:
                data = cut.rest()  # Repeat: 0 asks for no copies
                continue
            experiment.ticket = doc_id
            return experiment, cut, rejected, data

    def _already(self, doc_id: str, doc: Any, line: int, state: QueueState, finished_now: set[str],
                 entry: dict[str, Any]) -> bool:
        """Whether a document was taken before (an editor's save brought it back): it must not run again."""
        run = state.running.get(doc_id)
        if run is not None and doc_id not in finished_now and not self._alive(run):
            status = record_status(doc_id, run)  # its worker died: did it get as far as its record?
            if status is None:
                return False  # no: run it (this take replaces the dead worker's)
            entry.setdefault("done", []).append([doc_id, status])
            return True
        if run is None and doc_id not in state.finished and doc_id not in finished_now:
            return False
        name = doc.get("Name") if isinstance(doc, dict) else None
        where = f"running on {run.get('host')} pid {run.get('pid')}" if run and doc_id not in finished_now else "done"
        log.warning("%s:%d: dropped a document%s that was already taken (id %s, %s); to run it again, add it "
                    "once more without `# id: %s` on its --- line", self.path, line, f" ({name})" if name else "",
                    doc_id, where, doc_id)
        _count(entry, DROPPED)
        return True

    def _commit_take(self, experiment: Experiment, cut: Any, snapshot: Snapshot, entry: dict[str, Any],
                     slot: Mapping[str, Any] | None = None) -> None:
        """Journal the take (the commit point), then rewrite the queue without the document."""
        doc_id = experiment.ticket or ""
        name = experiment.name
        log_path = experiment.values.get("YamlLog")
        log_path = os.path.abspath(log_path) if isinstance(log_path, str) else None
        entry["take"] = {"id": doc_id, **self.worker.describe(), "name": name if _plain(name) else str(name),
                         "raw": cut.back or cut.raw, "hist": self.completer.remember(experiment),
                         "index": experiment.index, "log": log_path, "offset": _size(log_path), **(slot or {})}
        replacement = self.file.prepare(cut.rest_parts())
        try:
            if not self.file.unchanged(snapshot):
                raise Changed()
            entry["sig"] = [replacement.stat.st_size, replacement.stat.st_mtime_ns, replacement.stat.st_ino]
            self._log(entry)
        except BaseException:
            replacement.discard()
            raise
        if self.file.commit(replacement, snapshot) is None:
            self._reconcile(doc_id, cut.extra)

    def _reconcile(self, doc_id: str, extra: bytes) -> None:
        """An editor saved between the commit and the rewrite: take the document out of its version instead."""
        for _ in range(_RETRIES):
            snapshot, data = self._read(self.journal.state, wait=True)  # committed: finish it here
            where = find_document(data, doc_id)
            if where is None and not extra and data is snapshot.data:
                return
            start, end = where or (front(data),) * 2
            sig = self.file.replace(snapshot, [data[:start], extra, data[end:]])
            if sig is not None:
                self._log({"sig": list(sig)})
                return
        raise QueueError("the queue file kept changing while it was being rewritten", file=str(self.path))

    def _validate(self, data: bytes) -> None:
        try:
            load_all(data.decode("utf-8"), str(self.path))
        except UnicodeDecodeError as exc:
            raise BrokenQueue(ConfigError(f"not UTF-8 text: {exc.reason}", file=str(self.path))) from exc
        except ConfigError as exc:
            raise BrokenQueue(exc) from exc

    def finish(self, experiment: Experiment, status: str) -> None:
        """Note a finished experiment (its record is in its log); journalled with the next take."""
        if experiment.ticket:
            self.done.append([experiment.ticket, str(status)])

    def abandon(self, experiment: Experiment, error: str) -> None:
        """Note an experiment whose record could not be written: --resume puts it back."""
        if experiment.ticket:
            self.unlogged.append([experiment.ticket, error])

    def release(self, experiment: Experiment) -> bool:
        """Put a taken experiment back at the front of the queue (the worker is being stopped)."""

        def action(state: QueueState | None) -> bool:
            run = state.running.get(experiment.ticket or "") if state else None
            if state is None or run is None or not self.worker.owns(run):
                return False
            entry = self._buffered()
            entry["back"] = [experiment.ticket]
            self._put_back(state, [(experiment.ticket or "", run)], entry)
            return True

        return self._locked(action)


def _count(entry: dict[str, Any], key: str, by: int = 1) -> None:
    counts = entry.setdefault("count", {})
    counts[key] = counts.get(key, 0) + by


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _size(path: str | None) -> int:
    """A log's size now: its record for an experiment taken now can only come after it."""
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0
