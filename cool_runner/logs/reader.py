"""Reading log files: every YAML document with its own text, through the safe loader."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

import yaml

from ..errors import ConfigError
from ..files import open_regular
from ..yamlio import load_with_text, yaml_error

LOG_SUFFIXES = (".yaml", ".yml")
#: The first line of every file the tools write; collect never gathers such a file again.
MARK = "# written by cool-runner "
#: A mapping with one of these keys is a run record (the runner writes both; older logs have TIME_ELAPSED).
RECORD_KEYS = ("STATUS", "TIME_ELAPSED")

#: What identifies a file's content without reading it: size, modification time (ns) and inode.
Stamp = tuple[int, int, int]


def is_run_record(document: Any) -> bool:
    """A run's record, as opposed to an experiment definition, a queue document or other YAML."""
    return isinstance(document, Mapping) and any(key in document for key in RECORD_KEYS)


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _read_handle(handle: IO[bytes]) -> bytes:
    return handle.read()


def read_bytes(path: str | os.PathLike[str]) -> tuple[bytes, Stamp | None]:
    """A file's bytes, and its stamp if the file did not change while it was read (else None: do not cache)."""
    name = os.fspath(path)
    try:
        with open_regular(name, hint="give the path of a .yaml log") as handle:
            before = stamp_of(os.fstat(handle.fileno()))
            data = _read_handle(handle)
        after = stamp_of(os.stat(name))  # by path: a file replaced meanwhile has another inode
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=name) from exc
    return data, (before if before == after and before[0] == len(data) else None)


def parse_documents(data: bytes, name: str, *, skip_marked: bool = False) -> list[tuple[Any, str]]:
    """Every document of a log's bytes with its source text; problems are ConfigErrors that name the file."""
    if skip_marked and data.startswith(MARK.encode()):
        return []
    try:
        return load_with_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=name) from exc
    except yaml.YAMLError as exc:
        raise yaml_error(exc, name) from exc


def read_documents(path: str | os.PathLike[str], *, skip_marked: bool = False) -> list[tuple[Any, str]]:
    """Every document of a log with its source text; problems are ConfigErrors that name the file."""
    data, _ = read_bytes(path)
    return parse_documents(data, os.fspath(path), skip_marked=skip_marked)
