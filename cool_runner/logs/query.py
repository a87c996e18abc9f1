"""filter: select, sort, trim and group log records with Python lambdas."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UsageError
from ..keys import ABSENT, lookup_dotted
from ..study.mapping import FrozenView
from ..yamlio import to_plain
from .formats import is_number
from .reader import read_documents

MISSING = (KeyError, AttributeError, IndexError)


def compile_lambda(text: str, option: str) -> Callable[[Any], Any]:
    """Compile a user's `lambda exp: ...`; anything that is not a one-argument callable is a usage error."""
    try:
        function = eval(compile(text.strip(), option, "eval"), {"__builtins__": __builtins__})
    except SyntaxError as exc:
        raise UsageError(f"{text!r} is not valid Python: {exc.msg}", option=option,
                         hint="write a lambda such as \"lambda e: e.ACC > 0.9\"") from exc
    except Exception as exc:
        raise UsageError(f"{text!r} failed: {type(exc).__name__}: {exc}", option=option) from exc
    if not callable(function):
        raise UsageError(f"{text!r} is not a function", option=option,
                         hint="write a lambda such as \"lambda e: e.ACC > 0.9\"")
    return function


def load_records(paths: Sequence[str]) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Every mapping document of the given log files (safe loader), and each one's source text by id()."""
    records: list[dict[str, Any]] = []
    texts: dict[int, str] = {}
    for path in paths:
        for doc, text in read_documents(path):
            if isinstance(doc, dict):
                records.append(doc)
                texts[id(doc)] = text
    return records, texts


@dataclass
class Query:
    """Filters that must all hold, sorts applied in order (so the last is the primary key), kept keys."""

    filters: list[Callable[[Any], Any]] = field(default_factory=list)
    sorts: list[Callable[[Any], Any]] = field(default_factory=list)
    reverse: bool = False
    keep: list[str] | None = None
    missing_filter: int = 0
    missing_sort: int = 0

    def apply(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = []
        for record in records:
            view = FrozenView(record)
            try:
                if all(check(view) for check in self.filters):
                    kept.append(record)
            except MISSING:
                self.missing_filter += 1
        for key in self.sorts:
            kept = self._sort(kept, key)
        if self.keep:
            kept = [select_keys(record, self.keep) for record in kept]
        return kept

    def _sort(self, records: list[dict[str, Any]], key: Callable[[Any], Any]) -> list[dict[str, Any]]:
        keyed, missing = [], []
        for record in records:
            try:
                keyed.append((key(FrozenView(record)), record))
            except MISSING:
                missing.append(record)
        self.missing_sort += len(missing)
        try:
            keyed.sort(key=lambda pair: pair[0], reverse=self.reverse)
        except TypeError as exc:
            raise UsageError(f"the sort keys cannot be compared: {exc}", option="--sort",
                             hint="make the lambda return values of one type, e.g. float(e.ACC)") from exc
        return [record for _, record in keyed] + missing  # records without the key go last


def select_keys(record: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Only these keys (dotted paths allowed), in this order; absent ones are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        value = lookup_dotted(record, key)
        if value is not ABSENT:
            out[key] = value
    return out


def aggregate(records: Sequence[Mapping[str, Any]], group_by: Sequence[str],
              agg: Sequence[str]) -> list[dict[str, Any]]:
    """Per group (in order of first appearance): count, and mean/std/min/max of each aggregated key.

    std is the sample standard deviation (n - 1), 0 for a single value; values that are not numbers are not
    counted in `KEY.n`.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for record in records:
        values = tuple(_hashable(lookup_dotted(record, key)) for key in group_by)
        groups.setdefault(values, []).append(record)
    rows = []
    for values, members in groups.items():
        row: dict[str, Any] = {key: (None if value is ABSENT else value) for key, value in zip(group_by, values)}
        row["count"] = len(members)
        for key in agg:
            numbers = [float(v) for v in (lookup_dotted(m, key) for m in members) if is_number(v)]
            row.update(_stats(key, numbers))
        rows.append(row)
    return rows


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(to_plain(value), sort_keys=True)
    return value


def _stats(key: str, numbers: list[float]) -> dict[str, Any]:
    if not numbers:
        return {f"{key}.n": 0, f"{key}.mean": None, f"{key}.std": None, f"{key}.min": None, f"{key}.max": None}
    mean = math.fsum(numbers) / len(numbers)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / (len(numbers) - 1)) if len(numbers) > 1 else 0.0
    return {f"{key}.n": len(numbers), f"{key}.mean": mean, f"{key}.std": std, f"{key}.min": min(numbers),
            f"{key}.max": max(numbers)}


