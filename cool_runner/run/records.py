"""Log records: one YAML document per finished experiment, appended to its YamlLog."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..files import append_locked
from ..keys import RESULT_KEYS, format_key
from ..yamlio import dump, to_plain


def build_record(values: Mapping[str, Any], recipes: Mapping[tuple[Any, ...], str], *, status: str,
                 elapsed: float, error: str | None = None, traceback_text: str | None = None,
                 place: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The log record: the experiment as the module left it, `solve` recipes as text, and the run's facts.

    `place` holds where it ran (SLOT, GPU, OUTPUT), written before the timing and status.
    """
    for path, recipe in recipes.items():
        values = _restore(values, path, recipe)  # before converting: the solved objects are not data
    record = to_plain(values)
    for key in RESULT_KEYS:
        record.pop(key, None)
    record.update(place or {})
    # Local time with its UTC offset, so records written on machines in different time zones still line up.
    started = datetime.now().astimezone() - timedelta(seconds=elapsed)
    record["TIME_STARTED"] = started.isoformat(timespec="seconds")
    record["TIME_ELAPSED"] = round(elapsed, 3)
    record["STATUS"] = str(status)
    if error is not None:
        record["ERROR"] = error
    if traceback_text is not None:
        record["TRACEBACK"] = traceback_text
    return record


def _restore(node: Any, path: tuple[Any, ...], recipe: str) -> Any:
    """`node` with the value at `path` replaced by `recipe`; only the containers on the path are copied."""
    if not path:
        return recipe
    part, rest = path[0], path[1:]
    if isinstance(node, Mapping) and part in node:
        copy: Any = dict(node)
    elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
        copy = list(node)
    else:
        return node  # the module removed the container; the recipe has nowhere to go
    copy[part] = _restore(node[part], rest, recipe)
    return copy


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record as a YAML document, in a single write under the log's lock."""
    append_locked(path, dump(dict(record), explicit_start=True))


def describe_results(record: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """`ACC=0.93 LOSS=0.2`: the keys the module added, short values only."""
    parts = []
    for key, value in record.items():
        if key in inputs or key in RESULT_KEYS:
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
