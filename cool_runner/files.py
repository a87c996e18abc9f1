"""Files, safely: reading only regular files, atomic replacement and exchange, locked appends, new files that never
overwrite, write errors people can act on, and telling early whether a path can take a log or a queue."""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

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


log = logging.getLogger("cool_runner")

# What a failed write means for the user, and what to do about it.
_WRITE_ADVICE = {
    errno.ENOSPC: ("no space left on device", "free some space"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota"),
    errno.EIO: ("input/output error", "the disk or network file system failed; check it (dmesg)"),
    errno.EROFS: ("read-only file system", "write to a writable folder"),
    errno.EACCES: ("permission denied", "check the permissions of the file and its folder"),
    errno.EPERM: ("operation not permitted", "check the permissions of the file and its folder"),
    errno.EISDIR: ("it is a folder", "name a file instead"),
    errno.ENOTDIR: ("a part of its path is a file, not a folder", "fix the path"),
}


def write_error(path: str | os.PathLike[str], exc: OSError, doing: str, then: str = "") -> OutputError:
    """A one-line error (exit 1) for a failed write of a log or a queue: the file, what failed, and what to do."""
    what, hint = _WRITE_ADVICE.get(exc.errno or 0, (exc.strerror or str(exc), ""))
    hint = "; ".join(part for part in (hint, then) if part)
    return OutputError(f"cannot {doing}: {what}", file=os.fspath(path), exit_code=1, hint=hint or None)


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


def append_bytes(path: str | os.PathLike[str], data: bytes, *, sync: bool = True, record_start: bytes = b"") -> int:
    """Append `data` in one write (and fsync); returns the offset it starts at. The caller holds the file's lock.

    A failed or short write is truncated back, so the file never keeps half a record. A tail left by a writer
    that died mid-write (no final newline) is cut back to its last line starting with `record_start` first.
    """
    target = os.fspath(path)
    fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        if start and os.pread(fd, 1, start - 1) != b"\n":
            start = _cut_torn_tail(fd, target, start, record_start)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
        return start
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, target: str, size: int, record_start: bytes) -> int:
    """Remove what a crashed writer left after the last complete record; returns the new size."""
    window = min(size, 1 << 20)
    tail = os.pread(fd, window, size - window)
    cut = -1
    if record_start:
        marker = b"\n" + record_start
        found = tail.rfind(marker)
        cut = found + 1 if found >= 0 else (0 if tail.startswith(record_start) and window == size else -1)
    else:
        found = tail.rfind(b"\n")
        cut = found + 1 if found >= 0 else (0 if window == size else -1)
    if cut < 0:
        os.write(fd, b"\n")  # cannot find where it starts: at least start ours on a line of its own
        return size + 1
    new_size = size - window + cut
    os.ftruncate(fd, new_size)
    log.warning("%s: removed %d byte(s) of an entry cut short by a crash", target, size - new_size)
    return new_size


def append_text(path: str | os.PathLike[str], text: str, *, sync: bool = True) -> None:
    """Append `text` in one write (and fsync); the caller holds whatever lock guards the file."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    append_bytes(target, text.encode("utf-8"), sync=sync)


def append_locked(path: str | os.PathLike[str], text: str, timeout: float = LOCK_TIMEOUT,
                  lock: FileLock | None = None, then: str = "") -> None:
    """Append a YAML document to `path` in one write under the file's own lock, then fsync.

    Failures are StorageErrors naming the file (`then` is added to their advice); the file is left as it was.
    """
    from filelock import Timeout

    target = os.fspath(path)
    if os.path.isdir(target):
        raise OutputError("cannot append: it is a folder", file=target, exit_code=1,
                          hint="name a file, e.g. logs/run.yaml" + (f"; {then}" if then else ""))
    lock = lock or file_lock(target, timeout)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with lock:
            append_bytes(target, text.encode("utf-8"), record_start=b"---")
    except Timeout as exc:
        raise OutputError(f"could not lock the file within {lock.timeout:g} s", file=target, exit_code=1,
                           hint=f"another process holds {lock.lock_file}; if none is running, delete that file"
                                + (f"; {then}" if then else "")) from exc
    except OSError as exc:
        raise write_error(target, exc, "append", then) from exc


def exchange(first: str, second: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    libc = _libc()
    if libc is None:
        return False
    if libc.renameat2(-100, os.fsencode(first), -100, os.fsencode(second), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    code = _errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second)


_LIBC: list[Any] = []


def _libc() -> Any:
    """libc with renameat2, loaded once (None where it is missing)."""
    if not _LIBC:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _LIBC.append(libc)
        except (OSError, AttributeError, ImportError):
            _LIBC.append(None)
    return _LIBC[0]


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def remove_temporaries(path: str | os.PathLike[str]) -> list[str]:
    """Delete the temporary files `prepare_replacement` left beside `path` (callers hold the file's lock)."""
    target = Path(path)
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    prefix = f".{target.name}."
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed


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

