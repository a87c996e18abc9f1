"""Experiment output as run.py sees it: the output.log paths, following them, and the status lines per slot."""

from __future__ import annotations

import codecs
import os
import re
import shutil
import time
from typing import Any

from ..console import Console

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
FOLLOW_LIMIT = 1 << 16  # without a terminal copy, only the end of a burst of output matters


def output_path(runs_dir: str, index: int, name: Any, rnd_idx: Any) -> str:
    """`runs/<index>-<Name>-<RND_IDX>/output.log`, with the Name made safe for a file name."""
    label = _UNSAFE.sub("_", str(name)).strip("._")[:60] if name is not None else ""
    return os.path.join(runs_dir, f"{index}-{label or 'unnamed'}-{rnd_idx}", "output.log")


def last_line(text: str) -> str | None:
    """The last non-empty line of `text`, where a carriage return (a progress bar) also starts a line."""
    for line in reversed(re.split(r"[\r\n]", text)):
        if line.strip():
            return line.strip()
    return None


class OutputFollower:
    """Reads what an experiment adds to its output.log, as it runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.last: str | None = None

    def read(self, everything: bool) -> str:
        """The new text since the last call (with `everything` false, only the end of a long burst)."""
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:
                    self.offset = 0
                if not everything and size - self.offset > FOLLOW_LIMIT:
                    self.offset = size - FOLLOW_LIMIT
                    self.decoder.reset()
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return ""
        self.offset += len(data)
        text = self.decoder.decode(data)
        line = last_line(text)
        if line is not None:
            self.last = line
        return text

    def tail(self, count: int = 10) -> list[str]:
        """The last lines of the whole file (for an experiment that timed out or died)."""
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - 8192))
                data = handle.read()
        except FileNotFoundError:
            return []
        lines = [line.rstrip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-count:]


class StatusBoard:
    """One status line per slot below the result lines, redrawn in place; only on a terminal that takes colour."""

    def __init__(self, out: Any, labels: list[str], live: bool) -> None:
        self.out = out
        self.live = live
        self.lines = [slot_line(label, None, None, None) for label in labels]
        self.drawn = 0
        self.shown: list[str] = []

    def set(self, slot: int, text: str) -> None:
        self.lines[slot] = text

    def clear(self) -> None:
        if self.live and self.drawn:
            self.out.write(f"\033[{self.drawn}F\033[J")
            self.drawn = 0

    def draw(self) -> None:
        if not self.live:
            return
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        text = "".join(f"\033[2m{line[:width]}\033[0m\n" for line in self.lines)
        self.out.write(text)
        self.out.flush()
        self.drawn = len(self.lines)
        self.shown = list(self.lines)

    def refresh(self) -> None:
        """Redraw when a line changed (elapsed seconds, a new last line)."""
        if self.live and self.lines != self.shown:
            self.clear()
            self.draw()


class BoardConsole(Console):
    """A Console whose lines appear above the status board."""

    def __init__(self, base: Console, board: StatusBoard) -> None:
        super().__init__(base.out, base.err, base.colour)
        self.board = board

    def print(self, text: str = "") -> None:
        self.board.clear()
        super().print(text)
        self.board.draw()

    def warn(self, text: str) -> None:
        self.board.clear()
        super().warn(text)
        self.board.draw()


def slot_line(label: str, name: Any, started: float | None, last: str | None) -> str:
    """`slot 1 GPU 0  wrn-a  12 s  epoch 3: loss 0.41`."""
    if started is None:
        return f"{label}  idle"
    line = f"{label}  {name}  {time.monotonic() - started:.0f} s"
    return f"{line}  {last}" if last else line


class Terminal:
    """What run.py shows while experiments run: with one slot, their output as it comes (as the in-process
    runner did); with several, a status line per slot below the result lines."""

    def __init__(self, console: Console, labels: list[str]) -> None:
        self.single = len(labels) == 1
        self.board = StatusBoard(console.out, labels, live=console.colour and not self.single)
        self.console: Console = BoardConsole(console, self.board) if self.board.live else console
        self.open_line = False

    def follow(self, slot: int, label: str, name: Any, started: float, follower: OutputFollower,
               final: bool = False) -> None:
        """Show what the experiment printed since the last call (`final`: it ended, so end its last line)."""
        text = follower.read(everything=self.single)
        if self.single:
            if text:
                self.console.out.write(text)
                self.console.out.flush()
                self.open_line = not text.endswith("\n")
            if final and self.open_line:
                self.console.out.write("\n")
                self.open_line = False
        elif not final:
            self.board.set(slot, slot_line(label, name, started, follower.last))

    def started(self, slot: int, label: str, name: Any, started: float) -> None:
        self.board.set(slot, slot_line(label, name, started, None))

    def idle(self, slot: int, label: str) -> None:
        self.board.set(slot, slot_line(label, None, None, None))

    def refresh(self) -> None:
        self.board.refresh()

    def close(self) -> None:
        self.board.clear()
