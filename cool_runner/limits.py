"""Safety limits on values and YAML documents: nesting depth, alias expansion, integer size, values that
contain themselves.

Hostile or mistaken input (a 484-byte "billion laughs" file, lists nested thousands deep, `parse 10**10**7`)
must end in one clear error, never in a hang, a crash of the C parser or a RecursionError far away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from .keys import format_key

#: Lists and mappings may be nested this many levels deep (the experiment or record itself is level 1).
MAX_DEPTH = 100
#: Aliases (`*name`) in one YAML document may add at most this many values to it once expanded.
MAX_ALIAS_VALUES = 1_000_000
#: A `parse` result may hold at most this many values (lists and mappings count their items).
MAX_VALUES = 1_000_000
#: Integers may have at most this many bits (about 3,000 decimal digits).
MAX_INT_BITS = 10_000
#: A string, list or tuple built by `*` in an expression may hold at most this many items.
MAX_REPEAT = 10_000_000

DEPTH_HINT = f"cool-runner reads at most {MAX_DEPTH} levels of lists and mappings; flatten the structure"
INT_HINT = f"integers may have at most {MAX_INT_BITS:,} bits, about {int(MAX_INT_BITS * math.log10(2)):,} digits"

LIMIT_HINTS = {
    "depth": DEPTH_HINT,
    "integer": INT_HINT,
    "cycle": "a value that contains itself can never be written out; build a copy instead",
    "size": f"a parse result may hold at most {MAX_VALUES:,} values",
}


class ValueProblem(Exception):
    """What is wrong with a value and where inside it (a key path relative to the value)."""

    def __init__(self, what: str, limit: str, path: tuple[Any, ...] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.limit = limit
        self.path = path


def int_problem(value: int) -> str | None:
    """Why an integer is too large to keep, or None."""
    bits = value.bit_length()
    if bits > MAX_INT_BITS:
        return f"an integer of {bits:,} bits is too large"
    return None


def _path(link: tuple[Any, Any] | None) -> tuple[Any, ...]:
    parts = []
    while link is not None:
        link, key = link
        parts.append(key)
    return tuple(reversed(parts))


def describe_path(path: tuple[Any, ...]) -> str:
    """Where inside a value a problem is, short enough for a one-line message."""
    if not path:
        return ""
    return f" (at {format_key(path)} inside it)" if len(path) <= 8 else f" ({len(path)} levels inside it)"


_CONTAINERS = (Mapping, list, tuple, set, frozenset)


def check_value(value: Any, depth: int = 0, budget: int = MAX_VALUES) -> None:
    """Raise ValueProblem when `value` (found `depth` levels deep) nests too deeply, contains itself, holds an
    integer that is too large or more than `budget` values. Other objects are not looked into.
    """
    kind = value.__class__
    if kind is float or kind is str or kind is bool or value is None:  # the common case first: a scalar result
        return
    if isinstance(value, int):
        problem = int_problem(value)
        if problem:
            raise ValueProblem(problem, "integer")
        return
    if not isinstance(value, _CONTAINERS):
        return
    active: set[int] = set()  # containers on the current path: meeting one again means a cycle
    count = 0
    # (container, link to its key path, level); a None container marks leaving the container whose id is in link.
    stack: list[tuple[Any, Any, int]] = [(value, None, depth + 1)]
    while stack:
        item, link, level = stack.pop()
        if item is None:
            active.discard(link)
            continue
        if id(item) in active:
            raise ValueProblem(f"a {type(item).__name__} that contains itself cannot be stored", "cycle", _path(link))
        if level > MAX_DEPTH:
            raise ValueProblem(f"it is nested more than {MAX_DEPTH} levels deep", "depth", _path(link))
        count += len(item)
        if count > budget:
            raise ValueProblem(f"it holds more than {budget:,} values", "size")
        active.add(id(item))
        stack.append((None, id(item), 0))
        for key, child in (item.items() if isinstance(item, Mapping) else enumerate(item)):
            if isinstance(child, int):
                problem = int_problem(child)
                if problem:
                    raise ValueProblem(problem, "integer", _path((link, key)))
            elif isinstance(child, _CONTAINERS):
                stack.append((child, (link, key), level + 1))


# --- YAML documents: checked while loading, before anything is built from them ---------------------------


class LimitExceeded(yaml.MarkedYAMLError):
    """A YAML document beyond a limit, raised inside the loaders; `yaml_error` makes it a LimitError."""

    def __init__(self, problem: str, mark: Any, hint: str, limit: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint
        self.limit = limit


def too_deep(mark: Any) -> LimitExceeded:
    """The error for a collection nested deeper than MAX_DEPTH, starting at `mark`."""
    return LimitExceeded(f"lists and mappings are nested more than {MAX_DEPTH} levels deep here", mark, DEPTH_HINT,
                         "depth")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def check_depth(root: yaml.Node) -> None:
    """No collection of a document without aliases (a tree) is nested deeper than MAX_DEPTH."""
    level = [root]
    for _ in range(MAX_DEPTH):
        below = [child for node in level for child in _children(node) if not isinstance(child, yaml.ScalarNode)]
        if not below:
            return
        level = below
    raise too_deep(level[0].start_mark)


def check_aliases(root: yaml.Node) -> None:
    """A document with anchors: no alias may lead back into itself, aliases must not expand it too far, and the
    depth counts what aliases bring in (the composer counts only what is written out)."""
    sizes: dict[int, int] = {}  # values below a node once every alias is replaced by what it names
    heights: dict[int, int] = {}
    active: set[int] = set()  # nodes whose children are being visited: meeting one again is a cycle
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            active.discard(key)
            children = _children(node)
            nested = [child for child in children if not isinstance(child, yaml.ScalarNode)]
            sizes[key] = 1 + len(children) - len(nested) + sum(sizes[id(child)] for child in nested)
            heights[key] = 1 + max((heights[id(child)] for child in nested), default=0)
            continue
        if key in sizes:
            continue
        if key in active:
            raise LimitExceeded("an alias here refers to a value that contains it, which would never end",
                                node.start_mark, "an alias may only name a value defined before and outside it",
                                "cycle")
        active.add(key)
        nested = [child for child in _children(node) if not isinstance(child, yaml.ScalarNode)]
        distinct += 1 + len(node.value) * (2 if isinstance(node, yaml.MappingNode) else 1) - len(nested)
        stack.append((node, True))
        stack.extend((child, False) for child in nested if id(child) not in sizes)
    if heights.get(id(root), 0) > MAX_DEPTH:
        node = root
        for _ in range(MAX_DEPTH):
            node = max((c for c in _children(node) if not isinstance(c, yaml.ScalarNode)), key=lambda c: heights[id(c)])
        raise too_deep(node.start_mark)
    if sizes.get(id(root), 1) - distinct > MAX_ALIAS_VALUES:
        node = root  # blame the smallest value that is too large on its own
        while True:
            larger = [c for c in _children(node) if sizes.get(id(c), 1) > MAX_ALIAS_VALUES]
            if not larger:
                break
            node = max(larger, key=lambda c: sizes[id(c)])
        raise LimitExceeded(f"aliases expand this value to {sizes[id(node)]:,} values", node.start_mark,
                            f"aliases may add at most {MAX_ALIAS_VALUES:,} values to a document; "
                            "write the data out instead of nesting aliases", "aliases")
