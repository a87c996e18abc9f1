"""YAML reading and writing: safe C-accelerated loaders and plain-value dumping."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import yaml

from .errors import ConfigError

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

log = logging.getLogger("cool_runner")


class Loader(_SafeLoader):
    """Safe loader that also reads YAML 1.2 floats such as `1e-3` and `5E+2` as numbers."""


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
        super().__init__(stream)
        self.filename = filename


def _construct_located_map(loader: LocatingLoader, node: yaml.MappingNode) -> LineDict:
    data = LineDict()
    data.line = node.start_mark.line + 1
    lines = data.lines
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in lines:
            raise ConfigError(f"key {key!r} appears twice in one mapping (first on line {lines[key]})",
                              file=loader.filename, line=line, hint="delete or rename one of them")
        lines[key] = line
        data[key] = loader.construct_object(value_node, deep=True)
    return data


LocatingLoader.add_constructor("tag:yaml.org,2002:map", _construct_located_map)


class Dumper(_SafeDumper):
    """Safe dumper; records are plain data by the time they get here (see `to_plain`)."""


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=name, hint="check the path given to --exp") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=name) from exc
    loader = LocatingLoader(text, filename=name)
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


def to_plain(value: Any, path: str = "") -> Any:
    """Convert a value to data YAML can hold: numpy/torch values, tuples, sets and paths become plain."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, (str, int, float, bool)) else str(k): to_plain(v, f"{path}.{k}" if path else str(k))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_plain(v, path) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, PurePath):
        return str(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        try:
            return to_plain(tolist(), path)
        except Exception:  # a foreign object whose tolist() is not what we hope
            pass
    log.warning("%s: %s cannot be written to YAML; saving its text instead", path or "value", type(value).__name__)
    return str(value)


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
