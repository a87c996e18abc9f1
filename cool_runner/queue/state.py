"""A queue's durable state beside its file, and the signature that tells whether the file changed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..files import atomic_write

#: Queue counters besides the statuses of finished experiments.
REJECTED, TAKEN = "rejected", "taken"

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
