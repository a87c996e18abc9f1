"""filter: select, sort, trim and group log records with Python lambdas."""

from __future__ import annotations

import ast
import builtins
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UsageError
from ..keys import ABSENT, lookup_dotted
from ..study.mapping import FrozenView
from ..yamlio import to_plain
from .formats import is_number
from .reader import read_documents
from .stats import describe

#: What a lambda raises on a record that lacks a key it uses: documented as "lacked a key", not as an error.
MISSING = (KeyError, AttributeError, IndexError)
LAMBDA_HINT = "write a lambda of one argument, the record, such as \"lambda e: e.ACC > 0.9\""


@dataclass(frozen=True)
class UserLambda:
    """A user's `lambda e: ...`, with the option and text it came from for messages."""

    option: str
    text: str
    function: Callable[[Any], Any]

    def __call__(self, record: Any) -> Any:
        return self.function(record)


def compile_lambda(text: str, option: str) -> UserLambda:
    """Compile a user's `lambda e: ...`; anything but a lambda of exactly one plain argument is a UsageError.

    The text is checked with ast before it is evaluated, so nothing of a wrong argument runs.
    """
    source = text.strip()
    try:
        tree = ast.parse(source, filename=option, mode="eval")
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise UsageError(f"{text!r} is not valid Python: {reason}", option=option, hint=LAMBDA_HINT) from exc
    except (RecursionError, MemoryError) as exc:
        raise UsageError(f"{text!r} is nested too deeply", option=option, hint=LAMBDA_HINT) from exc
    node = tree.body
    if not isinstance(node, ast.Lambda):
        raise UsageError(f"{text!r} is not a lambda", option=option, hint=LAMBDA_HINT)
    spec = node.args
    if (len(spec.posonlyargs) + len(spec.args) != 1 or spec.vararg or spec.kwarg or spec.kwonlyargs
            or spec.defaults):
        params = ast.unparse(spec) or "no argument"
        raise UsageError(f"{text!r} takes ({params}); it must take exactly one argument, the record",
                         option=option, hint=LAMBDA_HINT)
    try:
        function = eval(compile(tree, option, "eval"), {"__builtins__": builtins})
    except (RecursionError, MemoryError) as exc:
        raise UsageError(f"{text!r} is nested too deeply", option=option, hint=LAMBDA_HINT) from exc
    return UserLambda(option, source, function)


def as_lambda(function: Callable[[Any], Any], option: str) -> UserLambda:
    """A callable given through the Python API, labelled like a compiled lambda."""
    if isinstance(function, UserLambda):
        return function
    return UserLambda(option, getattr(function, "__qualname__", None) or repr(function), function)


@dataclass
class LambdaFailure:
    """The first exception (other than a missing key) that a lambda raised, and on which record."""

    function: UserLambda
    index: int
    name: Any
    error: Exception

    def __str__(self) -> str:
        where = f"record {self.index}" + ("" if self.name is None else f" (Name {_short(repr(self.name))})")
        return f"{self.function.option} {self.function.text!r} on {where}: {_describe(self.error)}"


def _describe(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # an exception whose __str__ raises
        text = "<unprintable>"
    return _short(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def _short(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


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
    """Filters that must all hold, sorts applied in order (so the last is the primary key), kept keys.

    A record on which a lambda raises does not match a filter and goes last in a sort. Such records are counted
    apart: `missing_*` when a key was missing (KeyError, AttributeError, IndexError), `failed_*` for any other
    exception, whose first occurrence per option is kept in `first_failures`.
    """

    filters: list[Callable[[Any], Any]] = field(default_factory=list)
    sorts: list[Callable[[Any], Any]] = field(default_factory=list)
    reverse: bool = False
    keep: list[str] | None = None
    missing_filter: int = 0
    missing_sort: int = 0
    failed_filter: int = 0
    failed_sort: int = 0
    first_failures: dict[str, LambdaFailure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.filters = [as_lambda(f, "--filter") for f in self.filters]
        self.sorts = [as_lambda(f, "--sort") for f in self.sorts]

    def apply(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        kept: list[tuple[int, dict[str, Any]]] = []
        for index, record in enumerate(records):
            view = FrozenView(record)
            check = None
            try:
                for check in self.filters:
                    if not check(view):
                        break
                else:
                    kept.append((index, record))
            except MISSING:
                self.missing_filter += 1
            except Exception as exc:
                self.failed_filter += 1
                self._note(check, index, record, exc)
        missing: set[int] = set()
        failed: set[int] = set()
        for key in self.sorts:
            kept = self._sort(kept, key, missing, failed)
        self.missing_sort += len(missing)
        self.failed_sort += len(failed)
        records_kept = [record for _, record in kept]
        if self.keep:
            records_kept = [select_keys(record, self.keep) for record in records_kept]
        return records_kept

    def _sort(self, records: list[tuple[int, dict[str, Any]]], key: UserLambda, missing: set[int],
              failed: set[int]) -> list[tuple[int, dict[str, Any]]]:
        keyed, last = [], []
        for pair in records:
            index, record = pair
            try:
                keyed.append((key(FrozenView(record)), pair))
            except MISSING:
                missing.add(index)
                last.append(pair)
            except Exception as exc:
                failed.add(index)
                self._note(key, index, record, exc)
                last.append(pair)
        try:
            keyed.sort(key=lambda item: item[0], reverse=self.reverse)
        except TypeError as exc:
            raise UsageError(f"{key.text!r}: the sort keys cannot be compared: {exc}", option=key.option,
                             hint="make the lambda return values of one type, e.g. float(e.ACC)") from exc
        return [pair for _, pair in keyed] + last  # records the lambda could not rank go last

    def _note(self, function: Any, index: int, record: Any, error: Exception) -> None:
        if isinstance(function, UserLambda) and function.option not in self.first_failures:
            name = record.get("Name") if isinstance(record, Mapping) else None
            self.first_failures[function.option] = LambdaFailure(function, index, name, error)

    def notes(self) -> list[str]:
        """One line per kind of record a lambda could not judge, for the summary; empty when all went well."""
        lines = []
        if self.missing_filter:
            lines.append(f"{self.missing_filter} record(s) lacked a key a --filter uses: treated as not matching")
        if self.failed_filter:
            lines.append(f"{self.failed_filter} record(s) made a --filter raise an error: treated as not matching; "
                         f"the first: {self.first_failures['--filter']}")
        if self.missing_sort:
            lines.append(f"{self.missing_sort} record(s) lacked a key a --sort uses: put last")
        if self.failed_sort:
            lines.append(f"{self.failed_sort} record(s) made a --sort raise an error: put last; "
                         f"the first: {self.first_failures['--sort']}")
        return lines


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
    """Per group (in order of first appearance): count, and n/mean/std/min/max of each aggregated key.

    std is the sample standard deviation (n - 1), None for a single value; values that are not numbers are not
    counted in `KEY.n`. See `stats.describe` for huge and non-finite values.
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
            numbers = [v for v in (lookup_dotted(m, key) for m in members) if is_number(v)]
            row.update({f"{key}.{stat}": value for stat, value in describe(numbers).items()})
        rows.append(row)
    return rows


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(to_plain(value), sort_keys=True)
    return value
