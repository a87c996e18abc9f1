"""The queue file on disk: read only once an editor's save has settled, replaced only if nobody saved meanwhile.

Editors cannot take our lock. They save in one of two ways: write a new file and rename it over the old one
(vim, `sed -i`), or truncate the file and write into it (nano, VS Code). Either way the file's identity (inode,
size, modification time) changes, so a worker compares it before reading, after reading and around the moment
its own rewrite takes the file's place, and starts over when anything changed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..files import Replacement, exchange, prepare_replacement, write_error
from .state import Signature, signature, signature_of

log = logging.getLogger("cool_runner")

#: A file changed by someone else less than this long ago is probably still being saved.
SETTLE = 0.5
#: An empty file must have been still this many times as long.
EMPTY_FACTOR = 4


@dataclass
class Snapshot:
    """The queue's bytes as read, and the identity of the file they came from (None: there was no file)."""

    data: bytes
    sig: Signature | None


class Unsettled(Exception):
    """The file is being saved by someone else: try again in `seconds` (without holding the lock meanwhile)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class QueueFile:
    """Reads and replaces one queue file; the caller holds the queue's lock."""

    def __init__(self, path: Path, settle: float = SETTLE, then: str = "") -> None:
        self.path = path
        self.settle = settle
        self.then = then  # advice added to write errors
        self.can_exchange = True
        self.sleep: Callable[[float], None] = time.sleep
        self.seen: dict[Signature | None, float] = {}  # when we first saw the file in each state, until it settles
        self.waiting_since: float | None = None
        self.warned = False

    def read(self, known: Signature | None, *, wait: bool = False) -> Snapshot:
        """The file once it has settled: a change that is not `known` (ours) must be `settle` seconds old.

        An empty or half-written file that an editor is saving right now looks like any other recent change,
        so it is read again after it settles instead of being taken for the truth. Until then this raises
        Unsettled, so that the caller can let go of the lock and let signals act while it waits; with `wait`
        it waits here.
        """
        while True:
            found = self._attempt(known)
            if isinstance(found, Snapshot):
                self.seen.clear()
                self.waiting_since, self.warned = None, False
                return found
            now = time.monotonic()
            self.waiting_since = self.waiting_since or now
            if not self.warned and now - self.waiting_since > 10 * self.settle:
                log.warning("%s keeps changing; waiting until it has been still for %g s", self.path, self.settle)
                self.warned = True
            if not wait:
                raise Unsettled(found)
            self.sleep(found)

    def _attempt(self, known: Signature | None) -> Snapshot | float:
        """The file's bytes, or how long to wait before trying again."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below; the file may vanish between stat and open
        except FileNotFoundError:
            if known is None or self._observed(None) >= self.settle:
                return Snapshot(b"", None)  # an editor may remove it for a moment while saving
            return 0.05
        with handle:
            before = os.fstat(handle.fileno())
            sig = signature_of(before)
            pause = 0.0 if sig == known else self._unsettled(before, sig)
            if pause > 0:
                return pause
            data = handle.read()
            after = signature_of(os.fstat(handle.fileno()))
        if after == sig and len(data) == before.st_size:
            return Snapshot(data, sig)
        return 0.01  # it changed while we read it

    def _observed(self, sig: Signature | None) -> float:
        """How long we have seen the file in this state ourselves."""
        return time.monotonic() - self.seen.setdefault(sig, time.monotonic())

    def _unsettled(self, st: os.stat_result, sig: Signature) -> float:
        """How much longer to wait before the file counts as saved (0: it has settled).

        An empty file must be still four times as long: it is what an editor leaves between emptying the file and
        writing it, and taking it for the truth would end the run.
        """
        settle = self.settle * (EMPTY_FACTOR if st.st_size == 0 else 1)
        age = time.time() - st.st_mtime_ns / 1e9
        observed = self._observed(sig)  # by our own clock too: a file server's clock may disagree
        if age >= settle or observed >= settle:
            return 0.0
        return max(0.01, min(settle - max(age, 0.0), settle - observed))

    def unchanged(self, snapshot: Snapshot) -> bool:
        return signature(self.path) == snapshot.sig

    def prepare(self, parts: bytes | list[bytes | memoryview]) -> Replacement:
        """The new content, written and synced beside the queue."""
        try:
            return prepare_replacement(self.path, parts)
        except OSError as exc:
            raise write_error(self.path, exc, "rewrite the queue", self.then) from exc

    def commit(self, replacement: Replacement, snapshot: Snapshot) -> Signature | None:
        """Put `replacement` in the file's place if the file is still the one read; None when it is not.

        The files are swapped atomically and the one taken out is checked afterwards: if an editor's save
        landed just before the swap, it is swapped back in. No save by rename can be lost this way.
        """
        try:
            if snapshot.sig is None:
                return self._create(replacement)
            if not self.unchanged(snapshot):
                replacement.discard()
                return None
            if self.can_exchange:
                if exchange(replacement.tmp, str(self.path)):
                    if signature(replacement.tmp) != snapshot.sig:
                        exchange(replacement.tmp, str(self.path))  # an editor saved meanwhile: its file goes back
                        replacement.discard()
                        return None
                    replacement.discard()  # the old file, now under the temporary name
                    return signature_of(replacement.stat)
                self.can_exchange = False  # this file system cannot swap files
            os.replace(replacement.tmp, self.path)
            return signature_of(replacement.stat)
        except OSError as exc:
            replacement.discard()
            raise write_error(self.path, exc, "rewrite the queue", self.then) from exc

    def _create(self, replacement: Replacement) -> Signature | None:
        try:
            os.link(replacement.tmp, self.path)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            replacement.discard()
            return None
        except OSError:
            os.replace(replacement.tmp, self.path)  # a file system without hard links
            return signature_of(replacement.stat)
        replacement.discard()
        return signature_of(replacement.stat)

    def replace(self, snapshot: Snapshot, parts: bytes | list[bytes | memoryview]) -> Signature | None:
        """Write `parts` as the queue if it is still `snapshot`; the new identity, or None if it changed."""
        if not self.unchanged(snapshot):
            return None
        return self.commit(self.prepare(parts), snapshot)
