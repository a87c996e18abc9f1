"""The queue's transactions: one lock, one journal line each, and putting back the work of dead workers."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import OutputError, QueueError
from ..files import file_lock, write_error
from ..signals import held_signals, released_signals
from .disk import SETTLE, QueueFile, Snapshot, Unsettled
from .documents import Completer
from .lookup import record_status
from .state import Journal, QueueState, Signature, new_id_for, signature_of
from .text import find_document, front, with_ids
from .workers import Heartbeat, Worker, worker_alive

log = logging.getLogger("cool_runner")
T = TypeVar("T")
_RETRIES = 100
NO_QUEUE_HINT = "start one with run.py --exp FILE and Global.queue set"


class Changed(Exception):
    """Someone saved the queue between our reading it and replacing it: read it again."""


class QueueBase:
    """A queue file, its journal, its lock and this worker; every change runs in `_locked`."""

    def __init__(self, path: str | os.PathLike[str], *, worker: Worker | None = None, lock_timeout: float = 60.0,
                 poll: float = 1.0, stale_after: float = 60.0, heartbeat: float = 10.0,
                 settle: float = SETTLE) -> None:
        self.path = Path(path)
        self.resume_hint = f"then run.py --resume --queue {self.path}: nothing is lost"
        self.file = QueueFile(self.path, settle, then=self.resume_hint)
        self.journal = Journal(Path(f"{self.path}.state"))
        self.state_path = self.journal.path
        self.beats = Path(f"{self.path}.workers")
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        self.rejected_path = self.path.with_name(stem + ".rejected.yaml")
        self.lock = file_lock(self.path, lock_timeout)
        self.worker = worker or Worker()
        self.poll = poll
        self.stale_after = stale_after
        self.heartbeat = Heartbeat(self.beats, self.worker, heartbeat)
        self.completer = Completer(self.path, self.worker.host)
        self.warned: Signature | None = None
        self.pending_estimate = 0
        self.done: list[list[str]] = []  # [id, status] of experiments finished since the last journal line
        self.unlogged: list[list[str]] = []  # [id, error] of experiments whose record could not be written
        self.drained = False  # the last take found nothing pending
        self.failed = False  # a write failed: the journal may lag behind, --resume sorts it out

    def _locked(self, action: Callable[[QueueState | None], T]) -> T:
        """Run `action` on the current state under the queue's lock, with signals held throughout.

        While an editor's save settles, the lock is let go and signals may act; then the action starts over.
        """
        from filelock import Timeout

        changes = 0
        while True:
            with held_signals():
                try:
                    self.lock.acquire()
                except Timeout as exc:
                    raise OutputError(f"could not lock the queue within {self.lock.timeout:g} s",
                                      file=str(self.path), exit_code=1,
                                      hint=f"another process holds {self.lock.lock_file}; if none is running, "
                                           "delete that file") from exc
                try:
                    state = self.journal.refresh(repair=True)
                    if state is not None and state.text is not None:
                        self._write_filled(state)  # a fill crashed before the queue file was written
                    return action(state)
                except Changed:
                    changes += 1
                    if changes >= _RETRIES:
                        raise QueueError("the queue file kept changing while it was being rewritten",
                                         file=str(self.path),
                                         hint="an editor or a script saves it continuously; stop it and try "
                                              "again") from None
                    pause = 0.0
                except Unsettled as unsettled:
                    pause = unsettled.seconds
                except OutputError:
                    self.failed = True  # the user gets one line saying what to do; close() adds nothing
                    raise
                finally:
                    self.lock.release()
            with released_signals():
                time.sleep(pause)

    def _write_filled(self, state: QueueState) -> None:
        """Write the queue a fill put in the journal (it replaces whatever is there), and say it is done."""
        replacement = self.file.prepare((state.text or "").encode("utf-8"))
        try:
            replacement.commit()
        except OSError as exc:
            replacement.discard()
            raise write_error(self.path, exc, "write the queue") from exc
        self._log({"filled": True, "sig": list(signature_of(replacement.stat)), **self._buffered()})

    def _log(self, entry: dict[str, Any]) -> None:
        """Append a journal line: the commit point of every change of the queue's state."""
        try:
            self.journal.append(entry)
        except OSError as exc:
            self.failed = True
            raise write_error(self.state_path, exc, "record the queue's state", self.resume_hint) from exc
        self.done.clear()
        self.unlogged.clear()

    def _buffered(self) -> dict[str, Any]:
        """A journal line with what finished since the last one (a take adds itself to it)."""
        entry: dict[str, Any] = {}
        if self.done:
            entry["done"] = list(self.done)
        if self.unlogged:
            entry["unlogged"] = list(self.unlogged)
        return entry

    def _log_if(self, entry: dict[str, Any]) -> None:
        if entry:
            self._log(entry)

    def _read(self, state: QueueState | None, *, wait: bool = False) -> tuple[Snapshot, bytes]:
        """The queue once settled, and its bytes with ids on documents typed since anyone last read it."""
        snapshot = self.file.read(state.sig if state else None, wait=wait)
        if state is not None and snapshot.sig == state.sig:
            return snapshot, snapshot.data
        return snapshot, with_ids(snapshot.data, new_id_for(state or QueueState()))

    def _replace(self, snapshot: Snapshot, parts: list[Any], entry: dict[str, Any]) -> None:
        """Rewrite the queue if nobody saved it meanwhile (else try again), then record the new identity."""
        sig = self.file.replace(snapshot, parts)
        if sig is None:
            raise Changed()
        entry["sig"] = list(sig)
        self._log(entry)

    def recover(self) -> list[str]:
        """Put the experiments of workers that died back at the front of the queue; returns their names."""
        return self._locked(lambda state: self._recover(state, unlogged=True))

    def _recover(self, state: QueueState | None, *, unlogged: bool) -> list[str]:
        """Finish (from their records) or put back the experiments of dead workers, and with `unlogged` those
        whose record could not be written."""
        if state is None:
            return []
        entry = self._buffered()
        names, back = [], []
        for doc_id, run in list(state.running.items()):
            if self.worker.owns(run) or not ((unlogged and run.get("unlogged")) or not self._alive(run)):
                continue
            status = record_status(doc_id, run)
            if status:
                entry.setdefault("done", []).append([doc_id, status])
            else:
                back.append((doc_id, run))
                names.append(f"{run.get('name')} (taken by {run.get('host')} pid {run.get('pid')})")
        if back:
            entry["back"] = [doc_id for doc_id, _ in back]
            self._put_back(state, back, entry)
        else:
            self._log_if(entry)
        return names

    def _put_back(self, state: QueueState, items: list[tuple[str, dict[str, Any]]], entry: dict[str, Any]) -> None:
        """Write documents back at the front of the queue (those not there already), then journal `entry`.

        The queue file first: a crash between leaves the experiment both pending and running by a dead worker,
        which the next look resolves; the other order could lose it.
        """
        snapshot, data = self._read(state)
        missing = "".join(run["raw"] for doc_id, run in items if find_document(data, doc_id) is None)
        if not missing and data is snapshot.data:
            self._log(entry)
            return
        at = front(data)
        self._replace(snapshot, [data[:at], missing.encode("utf-8"), data[at:]], entry)

    def _alive(self, run: dict[str, Any]) -> bool:
        return self.worker.owns(run) or worker_alive(run, self.worker, self.beats, self.stale_after)

