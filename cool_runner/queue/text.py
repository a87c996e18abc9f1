"""Queue text: cutting the first document out of the file's bytes without parsing the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ..yamlio import Loader

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


def load_document(raw: str) -> Any:
    """Parse one document's text with the safe loader; YAML errors propagate."""
    return yaml.load(raw, Loader=Loader)
