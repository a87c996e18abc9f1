"""What earlier runs left in the logs: experiments already done (`--skip-done`) and ones to run again (`--retry`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import UsageError
from ..keys import ADDED_KEYS, METADATA_KEYS, RESULT_KEYS, Status
from ..logs.reader import read_documents
from ..study.expand import Experiment
from ..study.expressions import SOLVE
from ..study.identity import IDENTITY
from ..study.mapping import Exp

#: Statuses a record can have (`skipped`: an experiment it waited for did not end `done`).
LOGGED = (Status.DONE, Status.FAILED, Status.INTERRUPTED, Status.SKIPPED)
#: Keys a retried experiment keeps from its record besides its configuration: they say which copy it is.
_KEPT = frozenset(ADDED_KEYS) - {"HOST"}


def records(path: str) -> list[dict[str, Any]]:
    """The records of one log, or none when the file does not exist yet."""
    if not os.path.exists(path):
        return []
    return [doc for doc, _text in read_documents(path) if isinstance(doc, dict)]


def done_in_logs(experiments: Iterable[Experiment]) -> dict[int, str]:
    """The experiments (by index) whose IDENTITY has a `done` record in their own YamlLog, and that log."""
    wanted: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        if not experiment.skipped and experiment.values.get(IDENTITY) is not None:
            wanted.setdefault(str(experiment.values["YamlLog"]), []).append(experiment)
    found: dict[int, str] = {}
    for log, group in wanted.items():
        done = {record.get(IDENTITY) for record in records(log) if record.get("STATUS") == Status.DONE}
        done.discard(None)
        found.update((experiment.index, log) for experiment in group if experiment.values[IDENTITY] in done)
    return found


def parse_statuses(text: str | Sequence[str]) -> list[str]:
    """`failed,interrupted` as a checked list of statuses."""
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    statuses = []
    for part in parts:
        if part not in LOGGED:
            raise UsageError(f"{part!r} is not a status a record can have", option="--status",
                             hint="use done, failed, interrupted or skipped, e.g. --status failed,interrupted")
        statuses.append(str(part))
    if not statuses:
        raise UsageError("no status given", option="--status", hint="e.g. --status failed,interrupted")
    return statuses


def _key(record: Mapping[str, Any]) -> Any:
    """Which experiment a record belongs to: its IDENTITY, or for older records its Name and copy."""
    if record.get(IDENTITY) is not None:
        return record[IDENTITY]
    return tuple(repr(record.get(key)) for key in ("Name", "RND_IDX", "REP", "GLOBAL_REP"))


def configuration(record: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment a record ran: its values without results, run facts and metadata.

    By the naming convention, UPPERCASE keys are written by the runner or the module, so they are left out,
    except those that say which copy this is (REP, GLOBAL_REP, RND_IDX, GRID, IDENTITY).
    """
    dropped = frozenset(RESULT_KEYS) | frozenset(METADATA_KEYS)
    return {key: value for key, value in record.items()
            if key not in dropped and (key in _KEPT or not (isinstance(key, str) and key.isupper()))}


def _solves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Key paths of the `solve` recipes in a record's values."""
    if isinstance(node, str):
        return [path] if node.startswith(SOLVE) else []
    if isinstance(node, Mapping):
        return [found for key, value in node.items() for found in _solves(value, (*path, key))]
    if isinstance(node, list):
        return [found for index, value in enumerate(node) for found in _solves(value, (*path, index))]
    return []


def to_retry(log: str, statuses: Sequence[str]) -> list[Experiment]:
    """The experiments whose latest record in `log` has one of `statuses`, in the order they first ran.

    Each is rebuilt from its record (solve recipes included), keeps its INDEX, RND_IDX and copy, and writes its
    new record to `log`. One that waited for another (`After`) waits for it again if that one is retried too.
    """
    if not os.path.exists(log):
        raise UsageError(f"{log}: no such log", option="--retry", hint="give the path of a YamlLog")
    latest: dict[Any, dict[str, Any]] = {}
    for record in records(log):
        latest[_key(record)] = record  # a dict keeps the position of the first record and the latest value
    experiments = []
    for record in latest.values():
        if record.get("STATUS") not in statuses:
            continue
        values = Exp.wrap(configuration(record))
        target = values.get("YamlLog")
        if not isinstance(target, str) or os.path.abspath(target) != os.path.abspath(log):
            values["YamlLog"] = log
        index = values.get("INDEX")
        after = values.get("After")
        experiments.append(Experiment(
            values=values, index=index if isinstance(index, int) and not isinstance(index, bool) else len(experiments),
            solves=_solves(values), after=[i for i in after if isinstance(i, int)] if isinstance(after, list) else [],
            file=record.get("FILE") if isinstance(record.get("FILE"), str) else None,
            line=record.get("LINE") if isinstance(record.get("LINE"), int) else None))
    return experiments


def pick(experiments: list[Experiment], picked: Sequence[int] | None) -> list[Experiment]:
    """The experiments with these indices (as --dry shows them), in the order given."""
    if picked is None:
        return experiments
    by_index = {experiment.index: experiment for experiment in experiments}
    for index in picked:
        if index not in by_index:
            raise UsageError(f"no experiment to retry has index {index}", option="--pick",
                             hint="see them with --dry: " + ", ".join(str(i) for i in sorted(by_index)))
    return [by_index[index] for index in picked]
