"""The YamlLog: one YAML document appended per finished experiment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import format_key
from .yamlio import append_locked, dump, to_plain

STATUSES = ("done", "failed", "interrupted")


def build_record(values: Mapping[str, Any], recipes: Mapping[tuple[Any, ...], str], *, status: str,
                 elapsed: float, error: str | None = None, traceback_text: str | None = None) -> dict[str, Any]:
    """The log record: the experiment as the module left it, `solve` recipes as text, and the run's facts."""
    record = to_plain(values)
    for path, recipe in recipes.items():
        _put(record, path, recipe)
    for key in ("TIME_ELAPSED", "STATUS", "ERROR", "TRACEBACK"):
        record.pop(key, None)
    record["TIME_ELAPSED"] = round(elapsed, 3)
    record["STATUS"] = status
    if error is not None:
        record["ERROR"] = error
    if traceback_text is not None:
        record["TRACEBACK"] = traceback_text
    return record


def _put(record: Any, path: tuple[Any, ...], value: Any) -> None:
    node = record
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return  # the module removed the container; the recipe has nowhere to go
    if isinstance(node, (dict, list)):
        try:
            node[path[-1]] = value
        except IndexError:
            pass


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record as a YAML document, in a single write under the log's lock."""
    append_locked(path, dump(dict(record), explicit_start=True))


def describe_results(record: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """`ACC=0.93 LOSS=0.2`: the keys the module added, short values only."""
    parts = []
    for key, value in record.items():
        if key in inputs or key in ("TIME_ELAPSED", "STATUS", "ERROR", "TRACEBACK"):
            continue
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, (int, str, bool)) and len(str(value)) <= 40:
            parts.append(f"{key}={value}")
        else:
            parts.append(f"{key}=<{type(value).__name__}>")
    return " ".join(parts)


def describe_paths(paths: list[tuple[Any, ...]]) -> str:
    return ", ".join(format_key(path) for path in paths)
