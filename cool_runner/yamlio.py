"""YAML reading and writing: safe C-accelerated loaders and plain-value dumping."""

from __future__ import annotations

import functools
import json
import logging
import math
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


# --- a fast block-YAML writer for showing plain data (run.py --dry) ------------------------------------------

# A string is written plain only when YAML can only read it back as that same string: it starts with a letter
# or `_` (so no number, date, `.inf`, `~` or indicator), has no `:`, `#`, comma or bracket, single spaces only
# between words, and is not one of YAML 1.1's words for true, false and null.
_PLAIN = re.compile(r"[A-Za-z_][\w./+=-]*(?: [\w./+=-]+)*\Z")
_WORDS = frozenset(
    word for base in ("yes", "no", "true", "false", "on", "off", "null") for word in (base, base.title(), base.upper())
)
# Characters YAML does not allow in a stream, and those it reads as line breaks (NEL, LS, PS): a string with
# any of them is written with \u escapes.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@functools.lru_cache(maxsize=4096)  # keys, names, paths and versions repeat in every experiment
def _string(text: str) -> str:
    if _PLAIN.match(text) and text not in _WORDS:
        return text
    # JSON's double-quoted strings are valid YAML double-quoted scalars.
    return json.dumps(text, ensure_ascii=_UNPRINTABLE.search(text) is not None)


def _float(value: float) -> str:
    if value != value:
        return ".nan"
    if value in (math.inf, -math.inf):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:  # as PyYAML writes it: 1e-05 becomes 1.0e-05
        text = text.replace("e", ".0e", 1)
    return text


def _scalar(value: Any) -> str | None:
    """The YAML text of a plain scalar, or None for anything else."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return str(value)
    if kind is float:
        return _float(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


class Emitter:
    """Writes plain data as block YAML, much faster than PyYAML's pure-Python representer.

    Mappings and lists of mappings are block style, lists of scalars flow style (`[1, 2]`); anything that is not
    plain data goes through `to_plain` first. The result reads back with the safe loader as the same data.
    """

    def dump(self, data: Mapping[Any, Any], indent: str = "") -> str:
        """`data` as block YAML, every line prefixed with `indent`."""
        lines: list[str] = []
        self._mapping(data, indent, lines)
        return "\n".join(lines) + "\n" if lines else indent + "{}\n"

    @staticmethod
    def _key(key: Any) -> str:
        text = _scalar(key) if type(key) in (str, int, float, bool) else None
        return f"{json.dumps(str(key)) if text is None else text}:"

    def _mapping(self, data: Mapping[Any, Any], indent: str, lines: list[str]) -> None:
        for key, value in data.items():
            head = indent + self._key(key)
            text = _scalar(value)
            if text is not None:
                lines.append(f"{head} {text}")
            else:
                self._nested(value, head, indent, lines)

    def _nested(self, value: Any, head: str, indent: str, lines: list[str]) -> None:
        """A value that is not a plain scalar, after `head` (a key, or `-` for an item of a list)."""
        if isinstance(value, Mapping):
            if value:
                lines.append(head)
                self._mapping(value, indent + "  ", lines)
            else:
                lines.append(f"{head} {{}}")
        elif isinstance(value, list):
            texts = [_scalar(item) for item in value]
            if None not in texts:
                lines.append(f"{head} [{', '.join(texts)}]")  # type: ignore[arg-type]
            else:
                lines.append(head)
                self._items(value, texts, indent, lines)
        else:
            plain = to_plain(value)
            text = _scalar(plain)
            if text is None:
                self._nested(plain, head, indent, lines)
            else:
                lines.append(f"{head} {text}")

    def _items(self, items: list[Any], texts: list[str | None], indent: str, lines: list[str]) -> None:
        """The items of a block list, `- item` at `indent`; a nested block starts on its item's line."""
        inner = indent + "  "
        for item, text in zip(items, texts):
            if text is not None:
                lines.append(f"{indent}- {text}")
                continue
            block: list[str] = []
            if isinstance(item, Mapping) and item:
                self._mapping(item, inner, block)
            elif isinstance(item, list) and item and None in (subtexts := [_scalar(sub) for sub in item]):
                self._items(item, subtexts, inner, block)
            else:  # {}, a flow list, or something to make plain first
                self._nested(item, f"{indent}-", indent, lines)
                continue
            lines.append(f"{indent}- {block[0][len(inner):]}")
            lines.extend(block[1:])
