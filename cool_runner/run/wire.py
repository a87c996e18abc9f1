"""Messages between run.py and its worker processes: pickled plain data, each prefixed by its length."""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

_LENGTH = struct.Struct("!Q")


def encode(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def decode(data: bytes) -> Any:
    """The message in `data`; None when it was cut short."""
    if len(data) < _LENGTH.size or len(data) < _LENGTH.size + _LENGTH.unpack_from(data)[0]:
        return None
    return pickle.loads(data[_LENGTH.size:])


def write_message(fd: int, message: Any) -> None:
    """Write one message to a blocking pipe."""
    view = memoryview(encode(message))
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> Any:
    """Read one message from a blocking pipe; None at the end of the stream (or a message cut short)."""
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return None
    body = _read_exactly(fd, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


class Inbox:
    """Collects the bytes of a non-blocking pipe and hands out complete messages."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.closed = False

    def read(self) -> list[Any]:
        """Whatever complete messages have arrived; sets `closed` at the end of the stream."""
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            self.closed = True
        elif chunk:
            self.buffer += chunk
        messages = []
        while len(self.buffer) >= _LENGTH.size:
            size = _LENGTH.unpack_from(self.buffer)[0]
            if len(self.buffer) < _LENGTH.size + size:
                break
            messages.append(pickle.loads(bytes(self.buffer[_LENGTH.size:_LENGTH.size + size])))
            del self.buffer[:_LENGTH.size + size]
        return messages
