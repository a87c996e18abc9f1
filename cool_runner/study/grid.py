"""`Grid`: one copy of a definition per combination of values, made before parsing."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..keys import format_key
from .expressions import PARSE

GRID = "Grid"
#: More copies than this from one definition is almost certainly a mistake (and would exhaust memory).
MAX_POINTS = 100_000
#: Keys a Grid cannot set: they are read before the grid is applied.
_UNSETTABLE = frozenset({"Grid", "Global"})


@dataclass(frozen=True)
class Axis:
    """One key path of a Grid and the values it takes."""

    label: str
    path: tuple[Any, ...]
    values: list[Any]


@dataclass(frozen=True)
class Point:
    """A definition with one combination of Grid values set in it; `values` is None without a Grid."""

    definition: Mapping[str, Any]
    values: dict[str, Any] | None = None


def axes(grid: Any, file: str | None, line: int | None) -> list[Axis]:
    """The axes of a Grid mapping, checked: key paths to non-empty lists; nested mappings are paths too."""

    def fail(what: str, node: Any = None, key: Any = None, label: str | None = None,
             hint: str | None = None) -> ConfigError:
        where = getattr(node, "lines", {}).get(key) if node is not None else None
        path = (GRID,) if label is None else (GRID, label)
        return ConfigError(what, file=file, line=where or line, key=path, hint=hint)

    example = "e.g. Grid: {lr: [0.1, 0.01], optimizer.momentum: [0, 0.9]}"
    if isinstance(grid, str) and grid.startswith(PARSE):
        raise fail("cannot be a parse expression", hint="Grid is read before parsing; write the lists out")
    if not isinstance(grid, dict):
        raise fail(f"must map key paths to lists of values, not {grid!r}", hint=example)
    found: list[Axis] = []

    def visit(node: Mapping[Any, Any], prefix: tuple[Any, ...]) -> None:
        for key, values in node.items():
            parts = tuple(key.split(".")) if isinstance(key, str) else (key,)
            path = (*prefix, *parts)
            label = ".".join(str(part) for part in path)
            if any(part == "" for part in parts):
                raise fail(f"{label!r} is not a key path", node, key, label, "write dotted keys such as optimizer.lr")
            if isinstance(values, dict):
                visit(values, path)
                continue
            if not isinstance(values, list):
                raise fail(f"give a list of values, not {values!r}", node, key, label, f"e.g. {label}: [{values!r}]")
            if not values:
                raise fail("the list is empty, so this definition would run nothing", node, key, label,
                           "give at least one value, or remove the key")
            if path[0] in _UNSETTABLE:
                raise fail(f"cannot set {label}", node, key, label, f"{path[0]} is read before the Grid")
            found.append(Axis(label, path, values))

    visit(grid, ())
    for one, other in itertools.combinations(found, 2):
        shorter, longer = sorted((one.path, other.path), key=len)
        if longer[: len(shorter)] == shorter:
            what = (f"Grid sets {format_key(shorter)} twice" if shorter == longer else
                    f"Grid sets both {format_key(shorter)} and {format_key(longer)}, which is inside it")
            raise fail(what, hint="keep one of them")
    size = 1
    for axis in found:
        size *= len(axis.values)
    if size > MAX_POINTS:
        raise fail(f"Grid makes {size:,} combinations; at most {MAX_POINTS:,} are allowed per definition",
                   hint="split the sweep into several definitions")
    return found


def points(definition: Mapping[str, Any], grid: Any, file: str | None = None, line: int | None = None) -> list[Point]:
    """`definition` once per combination of `grid` (the last key varies fastest), with the Grid key removed."""
    base = _without(definition, GRID)
    if grid is None:
        return [Point(base)]
    found = axes(grid, file, line)
    if not found:
        return [Point(base)]
    out = []
    for combination in itertools.product(*(axis.values for axis in found)):
        copy = base
        for axis, value in zip(found, combination):
            copy = _with_value(copy, axis.path, value, file, line, axis.label)
        out.append(Point(copy, {axis.label: value for axis, value in zip(found, combination)}))
    return out


def _copy(node: Mapping[Any, Any]) -> dict[Any, Any]:
    """A shallow copy that keeps the line numbers of a located mapping."""
    copy = type(node)() if hasattr(node, "lines") else {}
    copy.update(node)
    if hasattr(node, "lines"):
        copy.line, copy.lines = node.line, node.lines  # type: ignore[attr-defined]
    return copy


def _without(node: Mapping[Any, Any], key: Any) -> dict[Any, Any]:
    copy = _copy(node)
    copy.pop(key, None)
    return copy


def _with_value(node: Mapping[Any, Any], path: tuple[Any, ...], value: Any, file: str | None, line: int | None,
                label: str) -> dict[Any, Any]:
    """A copy of `node` with `value` at `path`, as if written there; only the mappings on the path are copied."""
    copy = _copy(node)
    head, rest = path[0], path[1:]
    if not rest:
        copy[head] = value
        return copy
    child = node.get(head)
    if child is None and head not in node:
        child = {}
    if not isinstance(child, dict):
        raise ConfigError(f"{head} is {child!r} in this experiment, not a mapping", file=file, line=line,
                          key=(GRID, label), hint=f"remove {head} from the experiment or this Grid key")
    copy[head] = _with_value(child, rest, value, file, line, label)
    return copy
