"""A queue file of pending experiments that people can edit while it runs and several workers can share.

Two ideas keep every experiment exactly once (README, "The queue"):
* Every document has an id on its `---` line. The journal beside the queue lists every id ever taken, and a
  document whose id was taken is dropped with a warning instead of being run again.
* A take is committed by one synced journal line before the queue file is rewritten, and an experiment is
  finished once its record, which carries the id as QUEUE_ID, is in its log. Recovery looks there before it
  puts anything back. So a crash at any instruction leaves the old or the new state, and nothing runs twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, CoolRunnerError, QueueError
from ..files import remove_temporaries, write_error
from ..study.expand import Experiment
from ..study.load import StudyFile
from ..yamlio import dump, load_all, to_plain
from .documents import difference, render
from .state import VERSION, QueueState, new_id_for, now_iso
from .taking import BrokenQueue, Taking
from .text import count_documents, with_ids
from .transactions import NO_QUEUE_HINT
from .workers import remove_stale_beats, worker_alive

__all__ = ["BrokenQueue", "FileQueue"]
log = logging.getLogger("cool_runner")


class FileQueue(Taking):
    """Pending experiments in `path`, one YAML document each, in run order.

    Beside it: `<path>.state` (the journal), `<path>.lock`, `<path>.workers/` (heartbeats) and
    `<queue>.rejected.yaml` (documents that are not valid experiments).
    """

    def fill(self, experiments: Sequence[Experiment], study: StudyFile, *, fresh: bool = False,
             paths: Sequence[str] = ()) -> None:
        """Write expanded experiments as the queue; pending or running work is replaced only with `fresh`.

        `paths` is where this worker imports modules from; workers started elsewhere look there too.
        """
        defaults = to_plain(study.defaults)
        docs = []
        for experiment in experiments:
            doc = difference(to_plain(experiment.values), defaults)
            doc.pop("HOST", None)  # set by whichever machine takes it
            docs.append(doc)
        config = dump({"settings": to_plain(study.settings), "defaults": defaults})

        def action(state: QueueState | None) -> None:
            pending = self.pending()
            if not fresh and (pending or (state and state.running)):
                raise QueueError(
                    f"the queue already holds {pending} pending and {len(state.running) if state else 0} running "
                    "experiment(s)", file=str(self.path),
                    hint="continue it with --resume (the experiment file is not read again), "
                         "or replace it with --fresh")
            text = (f"# cool-runner queue from {study.path}: edit freely; the first document runs next.\n"
                    "# Each document lists what differs from the default config; the rest is filled in when it "
                    "runs.\n# The id on each --- line keeps an experiment from running twice: leave it; a copy "
                    "without it is a new experiment.\n"
                    + render(docs, new_id_for(state or QueueState())))
            carry = {"running": state.running, "finished": sorted(state.finished)} if state else {}
            head = {"version": VERSION, "config": config, "source": str(study.path), "paths": list(paths),
                    "text": text, "carry": carry, "created": now_iso()}
            try:
                self.journal.rewrite(head)  # the commit point: a crash after it writes the queue on the next look
            except OSError as exc:
                raise write_error(self.state_path, exc, "write the queue's state") from exc
            self._write_filled(self.journal.state)  # type: ignore[arg-type]

        self._locked(action)

    def append(self, text: str, origin: str = "<added>") -> int:
        """Append YAML documents to the queue under its lock, each with a new id; returns how many were added."""
        count = sum(1 for doc in load_all(text, origin) if doc is not None)
        if not count:
            return 0

        def action(state: QueueState | None) -> None:
            if state is None:
                raise QueueError("there is no queue here", file=str(self.path), hint=NO_QUEUE_HINT)
            body = with_ids(text.encode("utf-8").rstrip(b"\n") + b"\n", new_id_for(state))
            snapshot, data = self._read(state)
            separator = b"\n" if data and not data.endswith(b"\n") else b""
            self._replace(snapshot, [data, separator, body], {})

        self._locked(action)
        self.pending_estimate += count
        return count

    def open(self) -> list[str]:
        """Start working on the queue: heartbeat, tidy up after dead workers, put their experiments back."""
        if self.journal.refresh() is None:
            hint = f"start it again with run.py --exp FILE --fresh ({self.state_path} is missing)"
            raise QueueError("there is no queue here", file=str(self.path),
                             hint=hint if self.pending() else NO_QUEUE_HINT)
        self.heartbeat.start()

        def action(state: QueueState | None) -> list[str]:
            remove_temporaries(self.path)  # under the lock every temporary file is a dead worker's
            remove_stale_beats(self.beats, self.worker)
            return self._recover(state, unlogged=True)

        return self._locked(action)

    def close(self) -> None:
        """Record what finished since the last take, and stop the heartbeat."""
        try:
            if (self.done or self.unlogged) and not self.failed:
                self._locked(lambda state: self._log_if(self._buffered()) if state is not None else None)
        except CoolRunnerError as exc:
            log.warning("%s (the records are in the logs: run.py --resume will count them)", exc)
        finally:
            self.heartbeat.close()

    def exists(self) -> bool:
        """Whether a queue was filled here (a finished one still is one: its file stays, empty)."""
        return self.journal.refresh() is not None

    def total(self, taken: int) -> int | None:
        return taken + self.pending_estimate

    def config(self) -> dict[str, Any]:
        """The settings and default config the queue was filled with."""
        state = self._state()
        return (load_all(state.config, str(self.state_path))[0] or {}) if state.config else {}

    def module_paths(self) -> list[str]:
        """Where the worker that filled the queue imported modules from."""
        return list(self._state().paths)

    def _state(self) -> QueueState:
        state = self.journal.refresh()
        if state is None:
            raise QueueError("there is no queue here", file=str(self.path), hint=NO_QUEUE_HINT)
        return state

    def pending(self) -> int:
        """How many documents are waiting, counted exactly (parses the file; for status and start-up)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        try:
            return sum(1 for doc in load_all(data.decode("utf-8"), str(self.path)) if doc is not None)
        except (ConfigError, UnicodeDecodeError):
            return count_documents(data)

    def status(self) -> dict[str, Any]:
        """Pending, running (with host, pid, start time and whether its worker is alive) and counts."""
        state = self.journal.refresh()
        running = [{"name": e.get("name"), "host": e.get("host"), "pid": e.get("pid"), "since": e.get("since"),
                    "slot": e.get("SLOT"), "gpu": e.get("GPU"), "unlogged": e.get("unlogged"),
                    "alive": worker_alive(e, self.worker, self.beats, self.stale_after)}
                   for e in (state.running.values() if state else [])]
        return {"queue": str(self.path), "exists": state is not None, "pending": self.pending(), "running": running,
                "counts": dict(state.counts) if state else {},
                "rejected": str(self.rejected_path) if self.rejected_path.exists() else None}

