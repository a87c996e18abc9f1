"""Files, safely: reading only regular files, atomic replacement, locked appends, new files that never
overwrite, held signals, and telling early whether a path can take a log or a queue."""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import ConfigError, OutputError, UsageError

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_TIMEOUT = 60.0
#: Virtual file systems: writing there changes kernel settings or fails, and nothing written is kept.
VIRTUAL_ROOTS = ("/proc", "/sys")


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, for messages."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, hint: str | None = None) -> BinaryIO:
    """Open a regular file for reading. A folder, FIFO or device is refused before it is opened, so nothing
    blocks on a pipe or reads /dev/zero forever; `hint` goes with "file not found".
    """
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=name, hint=hint) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=name) from exc
    if stat.S_ISREG(mode):
        try:
            # O_NONBLOCK: should the path have become a FIFO since the stat, opening it still returns at once.
            fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=name) from exc
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            handle = open(fd, "rb")  # noqa: SIM115 - the caller reads it, in a with block
            handle.raw.name = name  # as if opened by name: messages and callers see the path
            return handle
        os.close(fd)
    raise ConfigError(f"is {kind_of(mode)}, not a file", file=name, hint="give the path of a YAML file")


def read_regular(path: str | os.PathLike[str], *, hint: str | None = None) -> bytes:
    """The bytes of a regular file (see `open_regular`)."""
    with open_regular(path, hint=hint) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=os.fspath(path)) from exc


def write_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a log or queue could not be written at `path`, found before anything runs; None when it looks fine.

    Missing folders are fine (they are created); a folder, a device or FIFO, a path under /proc or /sys, a parent
    that is a file, or a folder without write permission is not.
    """
    target = os.path.abspath(os.fspath(path))
    real = os.path.realpath(target)
    for root in VIRTUAL_ROOTS:
        if real == root or real.startswith(root + os.sep):
            return f"is under {root}, a virtual file system that cannot hold files"
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:
        return f"cannot be used: {exc.strerror}"
    if mode is not None:
        if not stat.S_ISREG(mode):
            return f"is {kind_of(mode)}, not a file"
        return None if os.access(target, os.W_OK) else "is not writable (permission denied)"
    folder = os.path.dirname(target)
    while not os.path.exists(folder):
        if os.path.lexists(folder):
            return f"cannot be created: {folder} is a broken symbolic link"
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"cannot be created: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot be created: no permission to write in {folder}"
    return None


def file_lock(path: str | os.PathLike[str], timeout: float = LOCK_TIMEOUT) -> FileLock:
    """The lock that guards `path` (a `.lock` file beside it)."""
    from filelock import FileLock  # imported on first use: most commands never lock anything

    return FileLock(f"{os.fspath(path)}.lock", timeout=timeout)


def fsync_dir(folder: str) -> None:
    """Make a rename in `folder` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


@dataclass
class Replacement:
    """New content for a file, written and synced beside it, waiting for `commit` to take its place."""

    target: str
    tmp: str
    stat: os.stat_result

    def commit(self) -> None:
        os.replace(self.tmp, self.target)
        fsync_dir(os.path.dirname(os.path.abspath(self.target)))

    def discard(self) -> None:
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def prepare_replacement(path: str | os.PathLike[str], data: str | bytes | Sequence[bytes | memoryview]) -> Replacement:
    """Write `data` (text, bytes or byte chunks) to a synced temporary file in the same folder as `path`."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        chunks = [data.encode("utf-8")] if isinstance(data, str) else [data] if isinstance(data, bytes) else data
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            try:
                mode = os.stat(target).st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
            os.fchmod(handle.fileno(), mode)
            stat = os.fstat(handle.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return Replacement(target, tmp, stat)


def atomic_write(path: str | os.PathLike[str], data: str | bytes | Sequence[bytes | memoryview]) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves either the old or the new file."""
    replacement = prepare_replacement(path, data)
    try:
        replacement.commit()
    except BaseException:
        replacement.discard()
        raise


#: /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N name a descriptor this process already holds.
_OWN_FD = re.compile(r"/dev/(?:(stdout)|(stderr)|fd/(\d+))|/proc/self/fd/(\d+)")
#: Errors of a write that started and failed (exit 1); any other OSError means the path cannot be used (exit 2).
_WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EPIPE}


def write_output(path: str | os.PathLike[str], data: str | bytes) -> bool:
    """Write a tool's output where the user pointed it; returns True when a regular file was (re)placed.

    A regular file or a new path is replaced atomically; a symlink keeps pointing where it did while its target
    is replaced; FIFOs, terminals and other devices are written through as they are (as a shell's `>` does), and
    a descriptor the process holds (`/dev/stdout`) is written to directly. A folder is an OutputError (exit 2),
    and so is any path the system refuses; a write that fails part-way (disk full) is one with exit code 1.
    """
    name = os.fspath(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        own = _OWN_FD.fullmatch(name)
        if own:
            _write_fd(1 if own[1] else 2 if own[2] else int(own[3] or own[4]), payload)
            return False
        try:
            mode = os.stat(name).st_mode
        except FileNotFoundError:
            mode = None  # a new file, or a dangling symlink whose target gets created
        if mode is not None and stat.S_ISDIR(mode):
            raise OutputError("is a folder", file=name,
                              hint="give a file name inside it, or leave out -o to get a new file in --dest")
        if mode is None or stat.S_ISREG(mode):
            atomic_write(os.path.realpath(name) if os.path.islink(name) else name, payload)
            return True
        fd = os.open(name, os.O_WRONLY | os.O_NOCTTY)  # a FIFO blocks here until someone reads it
        try:
            _write_fd(fd, payload)
        finally:
            os.close(fd)
        return False
    except OSError as exc:
        failed = exc.errno in _WRITE_FAILURES
        raise OutputError(f"cannot write: {exc.strerror or exc}", file=name, exit_code=1 if failed else 2,
                          hint=None if failed else "choose another output path") from exc


def _write_fd(fd: int, data: bytes) -> None:
    for stream in (sys.stdout, sys.stderr):  # keep the order of what was already printed
        try:
            if stream is not None and stream.fileno() == fd:
                stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_text(path: str | os.PathLike[str], text: str, *, sync: bool = True) -> None:
    """Append `text` in one write (and fsync); the caller holds whatever lock guards the file."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_locked(path: str | os.PathLike[str], text: str, timeout: float = LOCK_TIMEOUT,
                  lock: FileLock | None = None) -> None:
    """Append `text` to `path` in one write under the file's own lock, then fsync."""
    from filelock import Timeout

    target = os.fspath(path)
    try:
        with lock or file_lock(target, timeout):
            append_text(target, text)
    except Timeout as exc:
        raise ConfigError(
            f"could not lock the file within {timeout:.0f} s", file=target,
            hint=f"another process holds {target}.lock; if none is running, delete that file",
        ) from exc


def write_new(folder: str | os.PathLike[str], prefix: str, suffix: str, text: str | bytes) -> Path:
    """Write `text` (or bytes) to a new file `prefix_YYYY-MM-DD_HH-MM-SS[-N]suffix` that no earlier run wrote."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for attempt in range(1, 10_000):
        path = target / f"{prefix}_{stamp}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never overwrites: same second too
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        return path
    raise UsageError(f"{folder}: too many output files named {prefix}_{stamp}", option="--dest")


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while files are rewritten, so a record or a queue is never left half-updated."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
