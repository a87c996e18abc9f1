"""Output formats for records: YAML, JSON, CSV and an aligned text table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Callable

import yaml

from ..keys import ABSENT
from ..yamlio import dump, to_plain


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
    if value is None or value is ABSENT:
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
    numeric = [all(is_number(row.get(c)) for row in rows if row.get(c) is not None) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out) + "\n"


def _display(value: Any) -> str:
    """A cell for people: floats, and integers too long to read, to 4 significant digits (CSV and JSON keep all)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if is_number(value) and abs(value) >= 10**16:  # format(int, "g") would go through float and overflow
        mantissa, exponent = format(Decimal(value), ".4g").split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return _cell(value)


def _short(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


FORMATS: dict[str, Callable[[Sequence[Any]], str]] = {"yaml": to_yaml, "json": to_json, "csv": to_csv,
                                                       "table": to_table}
SUFFIXES = {"yaml": ".yaml", "json": ".json", "csv": ".csv", "table": ".txt"}
