"""Log records: one YAML document per finished experiment, appended to its YamlLog."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..emitter import Emitter
from ..errors import CoolRunnerError, LimitError, message_of, user_traceback
from ..files import LOCK_TIMEOUT, append_locked, file_lock
from ..keys import ABSENT, METADATA_KEYS, PLACE_KEYS, RESULT_KEYS, RUNNER_KEYS, Status, format_key
from ..yamlio import dump, to_plain

if TYPE_CHECKING:
    from filelock import FileLock


def build_record(values: Mapping[str, Any], recipes: Mapping[tuple[Any, ...], str], *, status: str,
                 elapsed: float, error: str | None = None, traceback_text: str | None = None,
                 place: Mapping[str, Any] | None = None, changes: Sequence[Change] = (),
                 metadata: Mapping[str, Any] | None = None, problems: list[LimitError] | None = None) -> dict[str, Any]:
    """The log record: the experiment as the module left it, `solve` recipes as text, and the run's facts.

    `metadata` (what ran: times, git, versions) comes first, a key the module set itself winning; then
    `changes`, the configured values the module changed (kept under CONFIGURED), and `place`, where it ran
    (SLOT, GPU, OUTPUT); then the timing and status. With `problems`, a value that cannot be written (it contains
    itself, nests too deeply, a huge integer) is replaced by a note and its error collected there, so the record
    is still written.
    """
    for path, recipe in recipes.items():
        values = _restore(values, path, recipe)  # before converting: the solved objects are not data
    record = to_plain(values, problems=problems)
    for key in RESULT_KEYS:
        record.pop(key, None)
    for key, value in (metadata or {}).items():
        record.setdefault(key, value)
    if changes:
        configured: dict[Any, Any] = {}
        for change in changes:
            node = configured
            for part in change.path[:-1]:
                node = node.setdefault(part, {})
            node[change.path[-1]] = change.configured
        record["CONFIGURED"] = to_plain(configured)
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


def failure(exc: BaseException, *, debug: bool = False) -> tuple[str, str, str]:
    """ERROR and TRACEBACK for what an experiment raised, and the traceback to show (the whole one with debug).

    TRACEBACK starts at the user's code: cool-runner's own frames that called it are left out.
    """
    if isinstance(exc, CoolRunnerError):
        error = str(exc)
    else:
        message = message_of(exc)
        error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    trace = user_traceback(exc)
    if not debug:
        return error, trace, trace
    import traceback

    return error, trace, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def settle(record: dict[str, Any], status: str, error: str | None, problems: list[LimitError], index: int,
           name: Any) -> tuple[str, str | None]:
    """The status and error once `build_record` found values it could not write (a list containing itself, say):
    the record keeps a note in their place, and an experiment that was done counts as failed."""
    if not problems or status != Status.DONE:
        return status, error
    problems[0].experiment, problems[0].name = index, name
    error = str(problems[0])
    record["STATUS"], record["ERROR"] = str(Status.FAILED), error
    return Status.FAILED, error


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


@dataclass
class Change:
    """A configured value the module changed (`now` is ABSENT when it deleted the key)."""

    path: tuple[Any, ...]
    configured: Any
    now: Any

    def describe(self) -> str:
        if self.now is ABSENT:
            return f"{format_key(self.path)} (removed)"
        return f"{format_key(self.path)} {_short(self.configured)} -> {_short(self.now)}"


def changed_values(configured: Mapping[Any, Any], now: Mapping[Any, Any],
                   solved: Collection[tuple[Any, ...]] = ()) -> list[Change]:
    """The values the experiment was configured with that the module changed or removed.

    Keys the module added are results, not changes; `solved` paths hold the objects `solve` built for the
    module and are not compared. Reads go around TrackedExp, so comparing marks nothing as used.
    """
    found: list[Change] = []
    _compare(configured, now, (), set(solved), found)
    return found


def _compare(before: Any, after: Any, path: tuple[Any, ...], solved: set[tuple[Any, ...]],
             found: list[Change]) -> None:
    if path in solved:
        return
    if isinstance(before, Mapping) and isinstance(after, dict):
        for key, value in before.items():
            if dict.__contains__(after, key):
                _compare(value, dict.__getitem__(after, key), (*path, key), solved, found)
            elif (*path, key) not in solved:
                found.append(Change((*path, key), value, ABSENT))
        return
    if (isinstance(before, list) and isinstance(after, list) and len(before) == len(after)
            and any(p[:len(path)] == path for p in solved)):
        for index, (old, new) in enumerate(zip(before, after)):  # a solved value inside: compare item by item
            _compare(old, new, (*path, index), solved, found)
        return
    if path and not _same(before, after):
        found.append(Change(path, before, after))


def _same(a: Any, b: Any) -> bool:
    """Equal, or equal once tuples and arrays are the lists the record will hold (`(1, 2)` is `[1, 2]`)."""
    if a is b:
        return True
    for left, right in ((a, b), (_as_data(a), _as_data(b))):
        try:
            if bool(left == right):
                return True
        except Exception:  # an array compared with a list has no single truth value
            pass
    return False


def _as_data(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy and torch values
    if callable(tolist):
        try:
            return tolist()
        except Exception:
            return value
    return value


def _short(value: Any) -> str:
    """A value as the terminal shows it: short ones written out, long ones by their type."""
    if isinstance(value, float):
        return f"{value:.4g}"
    try:
        text = repr(value)
    except Exception:
        text = ""
    return text if 0 < len(text) <= 40 and "\n" not in text else f"<{type(value).__name__}>"


#: Keys written by the fast emitter: plain data the runner makes (see render_record).
_FAST = frozenset(METADATA_KEYS) | frozenset(PLACE_KEYS) | {"CONFIGURED", "TIME_STARTED", "TIME_ELAPSED", "STATUS"}


def render_record(record: Mapping[str, Any]) -> str:
    """A record as one YAML document. The metadata keys and the run's time and status (plain data the runner
    makes) are written by the fast emitter: through PyYAML's representer they would cost more than all the
    rest of the record."""
    parts, group, emitter = ["---\n"], {}, Emitter()
    fast = False
    for key, value in record.items():
        if (key in _FAST) != fast and group:
            parts.append(emitter.dump(group) if fast else dump(group))
            group = {}
        fast = key in _FAST
        group[key] = value
    if group:
        parts.append(emitter.dump(group) if fast else dump(group))
    return "".join(parts)


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any], lock: FileLock | None = None,
                  then: str = "") -> None:
    """Append one record as a YAML document, in a single write under the log's lock (OutputError if it fails)."""
    append_locked(path, render_record(record), lock=lock, then=then)


class RecordLog:
    """Appends records to their YamlLogs, with one lock object per log for the whole run."""

    def __init__(self, timeout: float = LOCK_TIMEOUT) -> None:
        self.timeout = timeout
        self.locks: dict[str, FileLock] = {}

    def append(self, path: str, record: Mapping[str, Any], *, queue_id: str | None = None, then: str = "") -> None:
        """Append `record`; an experiment from a queue file gets QUEUE_ID as its last key, so that recovery can
        take a record that ends with it as proof that the experiment finished."""
        if queue_id is not None:
            record = {**{k: v for k, v in record.items() if k != "QUEUE_ID"}, "QUEUE_ID": queue_id}
        target = os.path.abspath(path)  # a module may change the working folder: the lock follows the file
        lock = self.locks.get(target)
        if lock is None:
            lock = self.locks[target] = file_lock(target, self.timeout)
        append_record(path, record, lock, then)


def describe_results(record: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    """`ACC=0.93 LOSS=0.2`: the keys the module added, short values only."""
    parts = []
    for key, value in record.items():
        if key in inputs or key in RUNNER_KEYS:
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
