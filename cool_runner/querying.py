"""filter: select, sort, trim, group and export log records with Python lambdas."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from .errors import ConfigError, UsageError
from .mapping import FrozenView
from .yamlio import dump, load_with_text, to_plain, yaml_error

MISSING = (KeyError, AttributeError, IndexError)
_ABSENT = object()


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
        try:
            with open(path, "rb") as handle:
                pairs = load_with_text(handle.read().decode("utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("file not found", file=path, hint="give the path of a .yaml log") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", file=path) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text: {exc.reason}", file=path) from exc
        except yaml.YAMLError as exc:
            raise yaml_error(exc, path) from exc
        for doc, text in pairs:
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


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """`a.b.c` inside nested mappings; a key that itself contains dots is found too."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def select_keys(record: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Only these keys (dotted paths allowed), in this order; absent ones are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        value = get_path(record, key)
        if value is not _ABSENT:
            out[key] = value
    return out


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become `a.b` columns; lists stay whole (written as YAML flow text in CSV)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _cell(value: Any) -> str:
    if value is None or value is _ABSENT:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return yaml.dump(to_plain(value), default_flow_style=True, width=10**9).strip()
    return str(value)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def to_csv(records: Sequence[Mapping[str, Any]]) -> str:
    rows = [flatten(record) for record in records]
    columns = columns_of(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def to_json(records: Sequence[Any]) -> str:
    return json.dumps(to_plain(list(records)), indent=1, ensure_ascii=False, default=str) + "\n"


def to_yaml(records: Sequence[Any]) -> str:
    return "".join(dump(record, explicit_start=True) for record in records)


def to_table(records: Sequence[Mapping[str, Any]], width: int = 32) -> str:
    """An aligned text table of flattened records, long cells cut to `width` characters."""
    rows = [flatten(record) for record in records]
    columns = columns_of(rows)
    if not columns:
        return "(no records)\n"
    cells = [[_short(_display(row.get(c)), width) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(row.get(c)) for row in rows if row.get(c) is not None) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out) + "\n"


def _display(value: Any) -> str:
    """A cell for people: floats to 4 significant digits (CSV and JSON keep full precision)."""
    return f"{value:.4g}" if isinstance(value, float) else _cell(value)


def _short(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def aggregate(records: Sequence[Mapping[str, Any]], group_by: Sequence[str],
              agg: Sequence[str]) -> list[dict[str, Any]]:
    """Per group (in order of first appearance): count, and mean/std/min/max of each aggregated key.

    std is the sample standard deviation (n - 1), 0 for a single value; values that are not numbers are not
    counted in `KEY.n`.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for record in records:
        values = tuple(_hashable(get_path(record, key)) for key in group_by)
        groups.setdefault(values, []).append(record)
    rows = []
    for values, members in groups.items():
        row: dict[str, Any] = {key: (None if value is _ABSENT else value) for key, value in zip(group_by, values)}
        row["count"] = len(members)
        for key in agg:
            numbers = [float(v) for v in (get_path(m, key) for m in members) if _is_number(v)]
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


FORMATS: dict[str, Callable[[Sequence[Any]], str]] = {"yaml": to_yaml, "json": to_json, "csv": to_csv,
                                                       "table": to_table}
SUFFIXES = {"yaml": ".yaml", "json": ".json", "csv": ".csv", "table": ".txt"}
