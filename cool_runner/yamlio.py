"""YAML reading and writing: safe C-accelerated loaders and plain-value dumping."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import yaml

from .errors import ConfigError, LimitError
from .files import read_regular
from .keys import format_key
from .limits import (
    DEPTH_HINT,
    INT_HINT,
    MAX_DEPTH,
    MAX_INT_BITS,
    LimitExceeded,
    check_aliases,
    check_depth,
    describe_path,
    int_problem,
    too_deep,
)

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

log = logging.getLogger("cool_runner")


class Loader(_SafeLoader):
    """Safe loader that reads YAML 1.2 floats such as `1e-3` as numbers and refuses input beyond the limits:
    nesting deeper than MAX_DEPTH, aliases that expand too far or into themselves, and huge integers.
    """

    def __init__(self, stream: Any) -> None:
        if not isinstance(stream, (str, bytes)):
            stream = stream.read()
        super().__init__(stream)
        # Without an anchor (`&`) there can be no alias, so the document is a tree and composing it checked it all.
        self.anchored = ("&" if isinstance(stream, str) else b"&") in stream
        self.nodes: list[Any] = []  # the parents of the node being composed
        self.ascend_resolver = self.nodes.pop  # called after every node: a C call, no Python frame
        self.at_limit = False

    # The composer (libyaml's, in C, as well as PyYAML's) calls these two around every node it builds, scalars
    # included. Counting there stops a deeply nested text at the limit, before the composer's recursion can
    # crash the process (libyaml's does so at some tens of thousands of levels) and at almost no cost.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        nodes = self.nodes
        nodes.append(current_node)
        if len(nodes) > MAX_DEPTH:
            self.at_limit = True  # something sits at the last level: construct_document looks closer
            if len(nodes) > MAX_DEPTH + 1:  # a node this deep sits in a collection beyond the limit
                raise too_deep(current_node.start_mark)

    def construct_document(self, node: yaml.Node) -> Any:
        at_limit, self.at_limit = self.at_limit, False
        if self.anchored and not isinstance(node, yaml.ScalarNode):
            check_aliases(node)
        elif at_limit:  # only a scalar may sit at the last level
            check_depth(node)
        return super().construct_document(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = node.value
        if len(text) < 19 and text.isdecimal() and (text[0] != "0" or text == "0"):  # most integers, quickly
            return int(text)
        if len(text) > MAX_INT_BITS + 100:
            problem = f"an integer written with {len(text):,} characters is too large"
        else:
            try:
                value = super().construct_yaml_int(node)
            except ValueError:  # Python refuses to convert more than 4,300 decimal digits
                problem = f"an integer written with {len(text):,} characters is too large"
            else:
                problem = int_problem(value)
        if problem:
            raise LimitExceeded(problem, node.start_mark, INT_HINT, "integer")
        return value


Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


class LineDict(dict):
    """A mapping from a YAML file that remembers the line of each key (1-based)."""

    __slots__ = ("line", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.lines: dict[object, int] = {}


class LocatingLoader(Loader):
    """Loader for experiment files: mappings keep their key lines, duplicate keys are an error."""

    def __init__(self, stream: Any, *, filename: str = "") -> None:
        self.filename = filename
        super().__init__(stream)


def _construct_located_map(loader: LocatingLoader, node: yaml.MappingNode) -> LineDict:
    data = LineDict()
    data.line = node.start_mark.line + 1
    own = node.value
    loader.flatten_mapping(node)  # drops `<<` pairs from `own` and puts the merged pairs before it
    merged = len(node.value) - len(own)  # those may be overridden by the mapping's own keys: not duplicates
    lines = data.lines
    written: dict[object, yaml.Node] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        try:
            first = written.get(key) if index >= merged else None
            lines[key] = line
        except TypeError:  # a list or mapping as a key
            raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                    "found unhashable key", key_node.start_mark) from None
        if index >= merged:
            if first is not None:
                raise _same_key(loader.filename, first, key_node, line)
            written[key] = key_node
        # Deep: the value is complete when stored. The recursion is bounded, the loader having refused anything
        # nested more than MAX_DEPTH levels before construction starts.
        data[key] = loader.construct_object(value_node, deep=True)
    return data


def _same_key(file: str, first: yaml.Node, second: yaml.Node, line: int) -> ConfigError:
    first_line = first.start_mark.line + 1
    if first.tag == second.tag:
        what = (f"key {second.value!r} appears twice in one mapping (first on line {first_line})"
                if first.value == second.value else
                f"key {second.value!r} is the same key as {first.value!r} on line {first_line}")
        return ConfigError(what, file=file, line=line, hint="delete or rename one of them")
    # `1:` and `true:` are different YAML keys, but Python's dict sees one key (1 == True): one value would vanish.
    return ConfigError(f"keys {first.value!r} (line {first_line}) and {second.value!r} are different in YAML but "
                       "the same key in Python, so one mapping cannot hold both", file=file, line=line,
                       hint=f"quote one of them to make it a string, e.g. '{second.value}'")


LocatingLoader.add_constructor("tag:yaml.org,2002:map", _construct_located_map)


class Dumper(_SafeDumper):
    """Safe dumper; records are plain data by the time they get here (see `to_plain`).

    Multi-line strings (tracebacks, notes) are written as literal blocks (`|`), which read like the text itself,
    whenever a block gives back exactly the same string; otherwise as one double-quoted line with escapes.
    """


# What a literal block cannot hold exactly: characters YAML escapes or treats as line breaks (tab, CR, NEL, LS,
# PS, BOM, controls), spaces at the end of a line (a line of spaces included), and more than one final newline
# (that needs `|+` and a document end marker, which copying a record's text would lose).
_NOT_LITERAL = re.compile(r"[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
                          r"| (?:\n|\Z)|\n\n\Z")


def literal_fits(text: str) -> bool:
    """True when `text` is multi-line and a literal block represents it exactly."""
    return "\n" in text and text.strip("\n") != "" and _NOT_LITERAL.search(text) is None


def _represent_str(dumper: yaml.BaseDumper, text: str) -> yaml.ScalarNode:
    if "\n" in text:  # otherwise a one-line double-quoted string with escapes, not a multi-line quoted one
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if literal_fits(text) else '"')
    return dumper.represent_str(text)


Dumper.add_representer(str, _represent_str)


# PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent; researchers write 1e-3. The dumper
# learns the same rule so that it quotes a string such as "1e5", which would otherwise come back as a number.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for _cls in (Loader, Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def yaml_error(exc: yaml.YAMLError, file: str) -> ConfigError:
    """Turn a PyYAML error into a ConfigError with the file and line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, LimitExceeded):
        return LimitError(problem, limit=exc.limit, file=file, line=line, hint=exc.hint)
    if isinstance(exc, yaml.constructor.ConstructorError) and problem == "found unhashable key":
        return ConfigError("a list or mapping cannot be a mapping key", file=file, line=line,
                           hint="quote it to make it a string key")
    if isinstance(exc, yaml.constructor.ConstructorError):
        return ConfigError(f"refused: {problem}", file=file, line=line,
                           hint="only plain YAML data is read; tags that build Python objects are never executed")
    context = getattr(exc, "context", None)
    what = f"invalid YAML: {context} {problem}" if context else f"invalid YAML: {problem}"
    return ConfigError(what, file=file, line=line, hint="fix the syntax at that line")


def load_all(text: str, file: str = "<string>") -> list[Any]:
    """Load every document of a YAML text with the safe loader."""
    try:
        return list(yaml.load_all(text, Loader=Loader))
    except yaml.YAMLError as exc:
        raise yaml_error(exc, file) from exc


class _SpanLoader(Loader):
    """Records where each document's top node starts and ends, so its text can be copied, not dumped again."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.spans: list[tuple[int, int, int]] = []

    def construct_document(self, node: yaml.Node) -> Any:
        self.spans.append((node.start_mark.index, node.end_mark.index, node.start_mark.column))
        return super().construct_document(node)


def load_with_text(text: str) -> list[tuple[Any, str]]:
    """Every document of a YAML text with its own source text (safe loader; YAML errors propagate)."""
    loader = _SpanLoader(text)
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
    finally:
        loader.dispose()
    # Marks count characters; a block mapping indented under its `---` gets its indentation back.
    return [(doc, " " * column + text[start:end].rstrip() + "\n")
            for doc, (start, end, column) in zip(docs, loader.spans)]


def load_located(path: str | os.PathLike[str]) -> list[Any]:
    """Load an experiment file; mappings are LineDicts so errors can name the line."""
    name = str(path)
    data = read_regular(name, hint="check the path given to --exp")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=name) from exc
    try:
        loader = LocatingLoader(text, filename=name)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, name) from exc
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    except yaml.YAMLError as exc:
        raise yaml_error(exc, name) from exc
    finally:
        loader.dispose()


def load_scalar(text: str) -> Any:
    """Read a command-line value as YAML (`0.5`, `[1,2]`, `queue.yaml`); never executes anything."""
    try:
        return yaml.load(text, Loader=Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise yaml_error(exc, "<argument>") from exc


def to_plain(value: Any, path: Sequence[Any] = (), *, problems: list[LimitError] | None = None) -> Any:
    """Convert a value to data YAML can hold: numpy/torch values, tuples, sets and paths become plain.

    A value beyond the limits (nested too deeply, containing itself, a huge integer) raises LimitError, or, with
    `problems`, is replaced by a short note and its error appended there.
    """
    return _Plain(problems).convert(value, tuple(path), 1)


def text_of(value: Any) -> str:
    """`str(value)`, or a placeholder naming its type when its `__str__` fails."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class _Plain:
    """One conversion: the containers on the current path (to notice a value that contains itself)."""

    def __init__(self, problems: list[LimitError] | None) -> None:
        self.problems = problems
        self.active: set[int] = set()

    def fail(self, what: str, limit: str, path: tuple[Any, ...], hint: str) -> str:
        if len(path) > 8:  # name the top-level key and how far down, not a hundred `[0]`s
            path, what = path[:1], f"{what}{describe_path(path[1:])}"
        error = LimitError(what, limit=limit, key=path, hint=hint)
        if self.problems is None:
            raise error
        self.problems.append(error)
        return f"<not saved: {what}>"

    def convert(self, value: Any, path: tuple[Any, ...], depth: int) -> Any:
        kind = type(value)
        if value is None or kind is str or kind is float or kind is bool:
            return value
        if kind is int:
            problem = int_problem(value)
            return value if problem is None else self.fail(problem, "integer", path, INT_HINT)
        if isinstance(value, (bool, int, float, str)):  # subclasses (enums, numpy.str_) become the plain type
            base = next(t for t in (bool, int, float, str) if isinstance(value, t))
            return self.convert(str.__str__(value) if base is str else base(value), path, depth)
        if isinstance(value, (Mapping, list, tuple, set, frozenset)):
            if id(value) in self.active:
                return self.fail(f"a {kind.__name__} that contains itself cannot be written", "cycle", path,
                                 "store a copy, or only the parts you need")
            if depth > MAX_DEPTH:
                return self.fail(f"nested more than {MAX_DEPTH} levels deep", "depth", path, DEPTH_HINT)
            self.active.add(id(value))
            try:
                return self.container(value, path, depth)
            finally:
                self.active.discard(id(value))
        if isinstance(value, PurePath):
            return str(value)
        tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, torch tensors
        if callable(tolist):
            try:
                listed = tolist()
            except Exception:  # a foreign object whose tolist() is not what we hope
                pass
            else:
                return self.convert(listed, path, depth)
        log.warning("%s: %s cannot be written to YAML; saving its text instead", format_key(path) or "value",
                    kind.__name__)
        return text_of(value)

    def container(self, value: Any, path: tuple[Any, ...], depth: int) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                plain_key = key if type(key) in (str, int, float, bool) else text_of(key)
                out[plain_key] = self.convert(item, (*path, key), depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return [self.convert(item, (*path, index), depth + 1) for index, item in enumerate(value)]
        items = [self.convert(item, path, depth + 1) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items


def dump(data: Any, *, explicit_start: bool = False) -> str:
    """Dump plain data as block-style YAML, keeping key order."""
    return yaml.dump(
        data,
        Dumper=Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        explicit_start=explicit_start,
        width=120,
    )


def dump_all(docs: list[Any]) -> str:
    """Dump several documents, each starting with `---`."""
    return "".join(dump(doc, explicit_start=True) for doc in docs)
