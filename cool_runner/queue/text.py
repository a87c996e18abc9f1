"""Queue text: document ids on `---` lines, and cutting documents out of the file's bytes without parsing the rest."""

from __future__ import annotations

import re
import secrets
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Callable

import yaml

from ..yamlio import Loader

# A document starts at `---` in column 0 followed by a space, a tab or the end of the line. In valid YAML such
# a line can only be a document marker: it is not allowed inside quoted scalars and it ends block scalars.
# Queue texts stay bytes: decoding or copying megabytes on every take is what made the old tool slow.
_AFTER_MARKER = frozenset(b" \t\r\n")

# A document's id is a comment on its `---` line (editors keep comments): `--- # id: k3f9x2ab`. It starts with a
# letter, so that YAML never reads it as a number when it is copied into a record as QUEUE_ID.
_ID = re.compile(rb"#\s*id:\s*([a-z][a-z0-9]{7})(?![a-z0-9])")
_FIRST, _REST = "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(taken: Container[str] = ()) -> str:
    """A fresh document id, not one of `taken`."""
    while True:
        doc_id = secrets.choice(_FIRST) + "".join(secrets.choice(_REST) for _ in range(7))
        if doc_id not in taken:
            return doc_id


def marker(doc_id: str) -> str:
    """The `---` line of a document with this id."""
    return f"--- # id: {doc_id}\n"


def _line_end(data: bytes, start: int) -> int:
    end = data.find(b"\n", start)
    return len(data) if end < 0 else end


def id_on_line(line: bytes) -> str | None:
    """The id in a `---` line's comment, if it has one."""
    found = _ID.findall(line)
    return found[-1].decode("ascii") if found else None


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
    first document had no marker of its own). `extra` is text to insert in its place (more Repeat copies), and
    `back` what to put back instead of `raw` if it must run again.
    """

    raw: str
    head: bytes
    tail: memoryview
    line: int
    extra: bytes = b""
    back: str | None = None

    @property
    def id(self) -> str | None:
        return id_on_line(self.raw.encode("utf-8")[: self.raw.find("\n") + 1 or None])

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


def with_ids(data: bytes, make_id: Callable[[], str]) -> bytes:
    """The queue with an id on every document's `---` line (given ones are kept); `data` itself when none lacks one."""
    parts: list[bytes] = []
    done = 0
    first = _find_marker(data)
    head_end = first if first >= 0 else len(data)
    if not _is_blank(data[:head_end]):  # a first document without a `---` line of its own
        start = _first_content(data, head_end)
        parts += [data[:start], marker(make_id()).encode("ascii")]
        done = start
    position = first
    while position >= 0:
        end = _line_end(data, position)
        line = data[position:end]
        if id_on_line(line) is None:
            ending = b"\r" if line.endswith(b"\r") else b""
            rest = line[3:len(line) - len(ending)]
            if not rest.strip() or rest.lstrip().startswith(b"#"):
                new_line = line[:len(line) - len(ending)].rstrip() + f" # id: {make_id()}".encode("ascii") + ending
            else:  # content on the `---` line itself: give it a line of its own
                new_line = marker(make_id()).encode("ascii") + rest.lstrip() + ending
            parts += [data[done:position], new_line]
            done = end
        position = _find_marker(data, end)
    if not parts:
        return data
    parts.append(data[done:])
    return b"".join(parts)


def _first_content(data: bytes, end: int) -> int:
    """Where the first line that is neither blank nor a comment starts."""
    position = 0
    while position < end:
        line_end = _line_end(data, position)
        stripped = data[position:line_end].strip()
        if stripped and not stripped.startswith(b"#"):
            return position
        position = line_end + 1
    return end


def front(data: bytes) -> int:
    """Where the first document starts (after the comments above it): where put-back documents go."""
    cut = cut_first(data)
    return len(data) if cut is None else len(cut.head)


def find_document(data: bytes, doc_id: str) -> tuple[int, int] | None:
    """Where the document with this id starts and ends in the queue, if it is there."""
    needle = doc_id.encode("ascii")
    found = data.find(needle)
    while found >= 0:
        start = data.rfind(b"\n", 0, found) + 1
        if _find_marker(data, start) == start and id_on_line(data[start:_line_end(data, start)]) == doc_id:
            end = _find_marker(data, start + 3)
            return start, len(data) if end < 0 else end
        found = data.find(needle, found + 1)
    return None


def count_documents(data: bytes, start: int = 0) -> int:
    """About how many documents a queue holds from `start` on (a marker inside a comment counts too)."""
    if start >= len(data):
        return 0
    markers = data.count(b"\n---", max(start - 1, 0)) + (start == 0 and data.startswith(b"---"))
    return markers or (0 if _is_blank(data[start:start + 65536]) else 1)


def load_document(raw: str) -> Any:
    """Parse one document's text with the safe loader; YAML errors propagate."""
    return yaml.load(raw, Loader=Loader)
