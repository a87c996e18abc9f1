"""User-facing terminal output: concise lines, colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from .keys import Status

COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "dim": "2", "bold": "1"}
STATUS_COLOURS = {Status.DONE: "green", Status.FAILED: "red", Status.INTERRUPTED: "yellow", Status.SKIPPED: "dim"}


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal only, and never when NO_COLOR is set (https://no-color.org)."""
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Console:
    """Where the runner and the tools print for people."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, colour: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.colour = wants_colour(self.out) if colour is None else colour

    def paint(self, text: str, colour: str) -> str:
        if not self.colour or colour not in COLOURS:
            return text
        return f"\033[{COLOURS[colour]}m{text}\033[0m"

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.err, flush=True)


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere, so logs and pipes stay clean."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, min_seconds: float = 0.5) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.min_seconds = min_seconds
        self.last = 0.0
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled or self.total <= 0:
            return
        now = time.monotonic()
        if now - self.start < self.min_seconds or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.last:
            self.stream.write("\r" + " " * (len(self.label) + 50) + "\r")
            self.stream.flush()
