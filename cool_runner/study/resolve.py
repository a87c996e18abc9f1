"""Resolving one experiment's `parse` values on demand: any key, in any order, at any level; cycles reported.

The merged definition is copied once into the experiment's mappings, with a `Pending` placeholder where a
`parse` value goes. Every placeholder is then evaluated in file order, and an expression that names a key
whose value is still pending evaluates that one first. Each value is evaluated exactly once, so resolving an
experiment stays linear in its size whatever order its keys reference each other in.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from functools import partial
from itertools import chain
from typing import Any, Callable

from ..errors import EvalFailure, ExpressionError
from .expressions import _GLOBALS, PARSE, SOLVE, Compiler, Scope, check_result, evaluate
from .mapping import Exp, History, View, missing_key

_WAITING, _BUSY, _DONE = 0, 1, 2
_SCALARS = frozenset({int, float, bool, type(None)})
_SKIP = len(PARSE)
_EMPTY: Mapping[Any, Any] = {}

Path = tuple[Any, ...]


class Pending:
    """A `parse` value not evaluated yet, and where its result goes."""

    __slots__ = ("container", "key", "levels", "path", "source", "state")

    def __init__(self, source: str, container: Any, key: Any, path: Path,
                 levels: tuple[Mapping[Any, Any], ...]) -> None:
        self.source = source
        self.container = container  # the mapping or list holding it
        self.key = key
        self.path = path
        self.levels = levels  # the mappings from the experiment down to it: the scopes the expression sees
        self.state = _WAITING


class LiveView(View):
    """A mapping of the experiment being resolved, as an expression sees it: its pending values resolve on access."""

    __slots__ = ("_data", "_resolution")

    def __init__(self, data: Mapping[Any, Any], resolution: Resolution) -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_resolution", resolution)

    def __getitem__(self, key: Any) -> Any:
        return self._resolution.reveal(self._data[key])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = self._data[name]
        except KeyError:
            raise missing_key(self._data, name) from None
        return self._resolution.reveal(value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("a mapping cannot be changed from a parse expression")

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self.thaw())

    def thaw(self) -> Any:
        """The mapping itself, every value in it resolved."""
        self._resolution.materialize(self._data)
        return self._data


class LiveScope(Scope):
    """The names one `parse` expression sees: keys of its own mapping and every enclosing one (deepest first,
    resolved on demand), then the runner's values (REP, RND_IDX, ...), then `E`, then Python's built-ins.

    A key never sees itself: `lr: parse lr * 2` inside `optimizer` reads the `lr` of an enclosing level.
    """

    __slots__ = ("key", "own", "pending", "resolution")

    def __init__(self, resolution: Resolution, pending: Pending) -> None:
        dict.__init__(self, _GLOBALS)
        self.layers = pending.levels  # type: ignore[assignment]
        self.history = resolution.history
        self.resolution = resolution
        self.pending = pending
        self.own = pending.container
        self.key = pending.key

    def explain(self, name: str) -> str | None:
        return self.resolution.explain(name, self.pending)

    def __getitem__(self, name: str) -> Any:
        own, key = self.own, self.key
        for layer in reversed(self.layers):
            if name in layer and (layer is not own or name != key):
                value = layer[name]
                kind = value.__class__
                if kind is Pending or kind is Exp or kind is list:
                    return self.resolution.reveal(value)
                return value
        runner = self.resolution.runner
        if name in runner:
            return runner[name]
        if name == "E" and self.history is not None:
            return self.history
        return self.missing(name)


class Resolution:
    """The `parse` values of one experiment and the state of resolving them."""

    def __init__(self, compiler: Compiler, history: History, runner: Mapping[str, Any], solves: list[Path],
                 fail: Callable[[Exp, Pending, EvalFailure | None, list[Pending]], ExpressionError]) -> None:
        self.compiler = compiler
        self.codes = compiler.cache
        self.history = history
        self.runner = runner
        self.solves = solves
        self.fail = fail  # builds the error for a failed value (or for a cycle, given the keys in it)
        self.pending: list[Pending] = []
        self.busy: list[Pending] = []
        self.remaining = 0  # values still pending: while there are any, mappings are shown as live views
        self.root = Exp()

    # --- building -------------------------------------------------------------------------------------------

    def build(self, own: Mapping[str, Any], defaults: Mapping[str, Any], leave: Any = None) -> Exp:
        """The experiment's mappings, with placeholders for `parse` values: `own` deep-merged over `defaults`
        (its keys first, in its order; then the defaults it does not set), top-level key `leave` left out."""
        root = self.root = Exp()
        self._merge(root, own, defaults, (), (root,), leave)
        self.remaining = len(self.pending)
        return root

    def _merge(self, out: Exp, own: Mapping[Any, Any], base: Mapping[Any, Any], path: Path,
               levels: tuple[Mapping[Any, Any], ...], leave: Any = None) -> None:
        items: Any = own.items()
        if base:
            items = chain(items, [(key, value) for key, value in base.items() if key not in own])
        for key, value in items:
            if key == leave:
                continue
            kind = value.__class__
            if kind is str:
                if value.startswith(PARSE):
                    value = Pending(value[_SKIP:], out, key, (*path, key), levels)
                    self.pending.append(value)
                elif value.startswith(SOLVE):
                    self.solves.append((*path, key))
            elif kind not in _SCALARS:
                under = base.get(key) if base else None
                if under is not value and isinstance(value, dict) and isinstance(under, dict):
                    child = Exp()
                    self._merge(child, value, under, (*path, key), (*levels, child))
                    value = child
                else:
                    value = self._node(value, out, key, path, levels)
            out[key] = value

    def _node(self, value: Any, container: Any, key: Any, path: Path, levels: tuple[Mapping[Any, Any], ...]) -> Any:
        """A value inside a list, or a mapping or list of its own (not merged with anything)."""
        if isinstance(value, str):
            if value.startswith(PARSE):
                pending = Pending(value[_SKIP:], container, key, (*path, key), levels)
                self.pending.append(pending)
                return pending
            if value.startswith(SOLVE):
                self.solves.append((*path, key))
            return value
        if isinstance(value, dict):
            child = Exp()
            self._merge(child, value, _EMPTY, (*path, key), (*levels, child))
            return child
        if isinstance(value, list):
            items: list[Any] = []
            inner = (*path, key)
            for index, item in enumerate(value):
                items.append(item if item.__class__ in _SCALARS else self._node(item, items, index, inner, levels))
            return items
        return value

    # --- resolving ------------------------------------------------------------------------------------------

    def resolve_all(self) -> None:
        """Evaluate every placeholder, in file order; those needed earlier are already done."""
        for pending in self.pending:
            if pending.state == _WAITING:
                self.force(pending)

    def force(self, pending: Pending) -> Any:
        """Evaluate one placeholder (and, through its expression, whatever it needs) and put its value in place."""
        if pending.state == _DONE:
            return pending.container[pending.key]
        if pending.state == _BUSY:
            cycle = self.busy[self.busy.index(pending):]
            raise self.fail(self.root, cycle[0], None, [*cycle, pending])
        pending.state = _BUSY
        self.busy.append(pending)
        try:
            code = self.codes.get(pending.source) or self.compiler.compile(pending.source)
            scope = LiveScope(self, pending)
            value = evaluate(code, scope, scope.explain, partial(check_result, depth=len(pending.path)))
        except EvalFailure as exc:
            raise self.fail(self.root, pending, exc, []) from exc
        pending.container[pending.key] = value
        pending.state = _DONE
        self.busy.pop()
        self.remaining -= 1
        return value

    def reveal(self, value: Any) -> Any:
        """A value as an expression sees it: pending ones resolved, mappings with pending values as live views."""
        kind = type(value)
        if kind is Pending:
            return self.force(value)
        if self.remaining:
            if kind is Exp:
                return LiveView(value, self)
            if kind is list:
                self.materialize(value)
        return value

    def materialize(self, node: Any) -> None:
        """Resolve every pending value inside a mapping or list of this experiment."""
        if not self.remaining:
            return
        for _key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if type(value) is Pending:
                self.force(value)
            elif isinstance(value, (dict, list)):
                self.materialize(value)

    def explain(self, name: str, pending: Pending) -> str | None:
        """Advice for a name that is no key at any level the expression sees."""
        if name == pending.key:
            return f"a value cannot use itself: no enclosing level has a key {name!r}"
        known: set[str] = {key for level in pending.levels for key in level if isinstance(key, str)}
        known.update(self.runner)
        close = difflib.get_close_matches(name, sorted(known), n=3)
        if close:
            return "did you mean " + " or ".join(close) + "?"
        return None
