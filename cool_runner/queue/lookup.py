"""The log as the commit point: an experiment whose record, with its QUEUE_ID, is in its log has finished."""

from __future__ import annotations

import os
import re
from typing import Any

_STATUS = re.compile(rb"^STATUS: *([A-Za-z]+) *$", re.MULTILINE)


def record_status(doc_id: str, entry: dict[str, Any]) -> str | None:
    """The STATUS of the record a running experiment left in its YamlLog, or None when it left none.

    Only the log's tail is read: the record can only be behind the size the log had when the experiment was
    taken. QUEUE_ID is the record's last key, so finding its line means the whole record was written.
    """
    path = entry.get("log")
    if not path:
        return None
    offset = int(entry.get("offset") or 0)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < offset:  # the log was replaced meanwhile: read all of it
                offset = 0
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return None
    found = data.find(f"\nQUEUE_ID: {doc_id}\n".encode("ascii"))
    if found < 0:
        return None
    start = data.rfind(b"\n---", 0, found) + 1
    statuses = _STATUS.findall(data, start, found + 1)
    return statuses[-1].decode("ascii") if statuses else "done"
