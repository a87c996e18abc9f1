"""The experiment mapping: a dict with attribute access, a read-tracking variant and read-only views."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def missing_key(mapping: Mapping[Any, Any], name: str) -> AttributeError:
    keys = ", ".join(str(k) for k in list(mapping)[:12])
    return AttributeError(f"no key {name!r} (keys: {keys})")


class Exp(dict):
    """A dict whose string keys are also attributes, at every level: `exp.optimizer.lr`."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise missing_key(self, name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise missing_key(self, name) from None

    @classmethod
    def wrap(cls, value: Any) -> Any:
        """Deep-copy plain data, turning every mapping into this class."""
        if isinstance(value, Mapping):
            out = cls()
            for key, item in value.items():
                dict.__setitem__(out, key, cls.wrap(item))
            return out
        if isinstance(value, (list, tuple)):
            return [cls.wrap(item) for item in value]
        return value


class TrackedExp(Exp):
    """An Exp that records which keys were read, to point out parameters a module never used."""

    __slots__ = ("_prefix", "_reads")

    @classmethod
    def track(cls, value: Mapping[Any, Any]) -> TrackedExp:
        """Deep-copy `value` into a tracked tree sharing one set of read key paths."""
        reads: set[tuple[Any, ...]] = set()
        return cls._build(value, (), reads)

    @classmethod
    def _build(cls, value: Any, prefix: tuple[Any, ...], reads: set[tuple[Any, ...]]) -> Any:
        if isinstance(value, Mapping):
            out = cls()
            object.__setattr__(out, "_prefix", prefix)
            object.__setattr__(out, "_reads", reads)
            for key, item in value.items():
                dict.__setitem__(out, key, cls._build(item, (*prefix, key), reads))
            return out
        if isinstance(value, (list, tuple)):
            return [cls._build(item, prefix, reads) for item in value]
        return value

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        self._reads.add((*self._prefix, key))
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return default

    def _read_all(self) -> None:
        # A module that iterates or copies a mapping hands all of it on: count every key as used.
        for key in dict.keys(self):
            self._reads.add((*self._prefix, key))

    def __iter__(self) -> Iterator[Any]:
        self._read_all()
        return dict.__iter__(self)

    def keys(self):  # type: ignore[override]
        self._read_all()
        return dict.keys(self)

    def items(self):  # type: ignore[override]
        self._read_all()
        return dict.items(self)

    def values(self):  # type: ignore[override]
        self._read_all()
        return dict.values(self)

    def unread(self, ignore: Any = lambda key: False) -> list[tuple[Any, ...]]:
        """Key paths never read, below keys that were read (or at the top); `ignore(key)` skips top keys."""
        found: list[tuple[Any, ...]] = []
        self._collect_unread(found, ignore, top=True)
        return found

    def _collect_unread(self, found: list[tuple[Any, ...]], ignore: Any, top: bool) -> None:
        for key, value in dict.items(self):
            if top and ignore(key):
                continue
            path = (*self._prefix, key)
            if path not in self._reads:
                found.append(path)
            elif isinstance(value, TrackedExp):
                value._collect_unread(found, ignore, top=False)


class View(Mapping):
    """A mapping seen by an expression without copying it; `thaw` makes a value the expression can keep."""

    __slots__ = ()

    def thaw(self) -> Any:
        raise NotImplementedError


class FrozenView(View):
    """A read-only view of an experiment for `E`: attribute and item access, no copying."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[Any, Any]) -> None:
        object.__setattr__(self, "_data", data)

    @staticmethod
    def of(value: Any) -> Any:
        if isinstance(value, Mapping):
            return FrozenView(value)
        if isinstance(value, list):
            return tuple(FrozenView.of(item) for item in value)
        return value

    def __getitem__(self, key: Any) -> Any:
        return FrozenView.of(self._data[key])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return FrozenView.of(self._data[name])
        except KeyError:
            raise missing_key(self._data, name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("E is read-only: earlier experiments cannot be changed from a parse expression")

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def thaw(self) -> Any:
        """A mutable deep copy of the viewed data."""
        return Exp.wrap(self._data)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def thaw(value: Any) -> Any:
    """Make an expression's result owned by the current experiment: views become data, deep inside too.

    Containers that hold no view are returned as they are (a tuple stays a tuple); one that does is rebuilt.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, View):
        return value.thaw()
    if kind is list or kind is tuple:
        items = [thaw(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        return items
    if isinstance(value, dict):
        pairs = {key: thaw(item) for key, item in value.items()}
        if all(pairs[key] is item for key, item in value.items()):
            return value
        return Exp(pairs) if isinstance(value, Exp) else pairs
    return value


class History:
    """`E`: the experiments parsed so far in this repetition, by position or by Name; read-only.

    It remembers which experiments an expression read (`take_reads`), so that a run knows what each
    experiment depends on.
    """

    __slots__ = ("_by_name", "_items", "_reads")

    def __init__(self) -> None:
        self._items: list[Mapping[Any, Any]] = []
        self._by_name: dict[Any, int] = {}
        self._reads: set[int] = set()

    def append(self, experiment: Mapping[Any, Any]) -> None:
        name = experiment.get("Name")
        if isinstance(name, (str, int)):
            self._by_name[name] = len(self._items)
        self._items.append(experiment)

    def items(self) -> list[Mapping[Any, Any]]:
        """The experiments so far, oldest first (not a read: nothing depends on them through this)."""
        return list(self._items)

    def take_reads(self) -> list[Mapping[Any, Any]]:
        """The experiments read through `E` since the last call, oldest first; forgets them."""
        read = [self._items[position] for position in sorted(self._reads)]
        self._reads.clear()
        return read

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._by_name:
                raise KeyError(f"no earlier experiment is named {key!r}")
            self._reads.add(self._by_name[key])
            return FrozenView(self._items[self._by_name[key]])
        if isinstance(key, slice):
            positions = range(len(self._items))[key]
            self._reads.update(positions)
            return tuple(FrozenView(self._items[position]) for position in positions)
        if not self._items:
            raise IndexError("E is empty: this is the first experiment, there is nothing before it")
        try:
            item = self._items[key]
        except IndexError:
            raise IndexError(f"E[{key}] is out of range: only {len(self._items)} experiment(s) came before") from None
        self._reads.add(key % len(self._items))
        return FrozenView(item)

    def __iter__(self) -> Iterator[FrozenView]:
        self._reads.update(range(len(self._items)))
        return (FrozenView(item) for item in self._items)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("E is read-only: earlier experiments cannot be changed from a parse expression")

    def __repr__(self) -> str:
        return f"<E: {len(self._items)} earlier experiment(s)>"
