"""Key conventions shared by every tool: runner keys, statuses, and the one walk along a key path."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


class Status(str, enum.Enum):
    """How an experiment ended, as written in its record's `STATUS`."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    # Equal to its value, so it must hash like it too: `{"done": ...}[Status.DONE]` works.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


#: The order in which summaries list the statuses.
STATUSES = tuple(Status)

#: `Name: skip` keeps an experiment out of the run but in the history `E`.
SKIP = "skip"

#: Keys the runner reads from an experiment (Capitalised by convention).
READ_KEYS = frozenset({"Name", "Module", "YamlLog", "Repeat", "Grid", "Desc", "After", "Timeout"})
#: Keys the runner adds to every experiment before it runs (GRID only to Grid points); `parse` can use all but
#: IDENTITY, which is computed from the definition as written.
ADDED_KEYS = ("INDEX", "GRID", "REP", "GLOBAL_REP", "RND_IDX", "HOST", "IDENTITY")
#: What ran, added to each record unless `Global.metadata` is false (see run/metadata.py).
METADATA_KEYS = ("START", "END", "GIT", "ARGV", "PYTHON", "PACKAGES", "FILE", "LINE")
#: Keys the engine writes into the record: where the experiment ran and where its output is.
PLACE_KEYS = ("SLOT", "GPU", "OUTPUT")
#: Keys the runner writes into the record after the module ran (`CONFIGURED`: values the module changed, as
#: they were configured). QUEUE_ID, the queue document's id, comes last: a record that ends with it was written
#: whole.
RESULT_KEYS = ("CONFIGURED", *PLACE_KEYS, "TIME_STARTED", "TIME_ELAPSED", "STATUS", "ERROR", "TRACEBACK",
               "QUEUE_ID")
#: Every key of a record that the runner, not the module, is responsible for.
RUNNER_KEYS = READ_KEYS | frozenset(ADDED_KEYS) | frozenset(METADATA_KEYS) | frozenset(RESULT_KEYS)

#: Returned by `lookup` for a path that leaves the data.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>", "__bool__": lambda self: False})()


def is_runner_key(key: Any) -> bool:
    """Keys the runner uses or the convention reserves: not reported as unread by the module."""
    return not isinstance(key, str) or key in RUNNER_KEYS or key.isupper() or key.startswith("_")


def format_key(path: Sequence[object]) -> str:
    """Render a key path as `a.b[2].c`."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def walk(root: Any, path: Sequence[Any]) -> Iterator[Any]:
    """The nodes along `path`, `root` first; it stops early where the path leaves the data."""
    node = root
    yield node
    for part in path:
        if isinstance(node, Mapping):
            if part not in node:
                return
        elif isinstance(node, list):
            if isinstance(part, bool) or not isinstance(part, int) or not -len(node) <= part < len(node):
                return
        else:
            return
        node = node[part]
        yield node


def lookup(root: Any, path: Sequence[Any], default: Any = ABSENT) -> Any:
    """The value at `path` inside nested mappings and lists, or `default` when there is none."""
    nodes = list(walk(root, path))
    return nodes[-1] if len(nodes) == len(path) + 1 else default


def lookup_dotted(record: Mapping[str, Any], dotted: str, default: Any = ABSENT) -> Any:
    """`a.b.c` inside nested mappings; a key that itself contains dots is found too."""
    if dotted in record:
        return record[dotted]
    return lookup(record, dotted.split("."), default)


def put(root: Any, path: Sequence[Any], value: Any) -> bool:
    """Set the value at `path` when its container exists; returns whether it was set."""
    container = lookup(root, path[:-1])
    if isinstance(container, dict) or (isinstance(container, list) and lookup(container, path[-1:]) is not ABSENT):
        container[path[-1]] = value
        return True
    return False


def host_name() -> str:
    """The machine's name, the value of `HOST` (what `socket.gethostname()` gives, without importing socket)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return uname().nodename
    import socket  # Windows

    return socket.gethostname()
