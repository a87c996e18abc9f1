"""A fast block-YAML writer for plain data: `run.py --dry` listings and the runner's own keys in log records.

PyYAML's representer is pure Python and takes several times as long as parsing; this writes the same data,
readable by the safe loader, for a fraction of the cost.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .yamlio import literal_fits, to_plain

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
    """The YAML text of a plain scalar, or None for anything else (a multi-line string is a literal block)."""
    kind = type(value)
    if kind is str:
        return None if "\n" in value and literal_fits(value) else _string(value)
    if kind is int:
        return str(value)
    if kind is float:
        return _float(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


def _literal(text: str, head: str, indent: str, lines: list[str]) -> None:
    """A multi-line string as a literal block after `head`, its lines two spaces deeper than `indent`.

    The indentation is stated (`|2`), so a first line that starts with spaces stays as it is; an empty line is
    written as `indent` alone, which a block reads as an empty line.
    """
    body, chomp = (text[:-1], "") if text.endswith("\n") else (text, "-")
    lines.append(f"{head} |2{chomp}")
    pad = indent + "  "
    lines.extend(pad + line if line else indent for line in body.split("\n"))


class Emitter:
    """Writes plain data as block YAML, much faster than PyYAML's pure-Python representer.

    Mappings and lists of mappings are block style, lists of scalars flow style (`[1, 2]`); anything that is not
    plain data goes through `to_plain` first. The result reads back with the safe loader as the same data.
    """

    def __init__(self) -> None:
        # (indent, type, key) -> "indent key:", the same in every experiment (the type keeps 1 and true apart)
        self.heads: dict[tuple[str, type, Any], str] = {}

    def dump(self, data: Mapping[Any, Any], indent: str = "") -> str:
        """`data` as block YAML, every line prefixed with `indent`."""
        lines: list[str] = []
        self._mapping(data, indent, lines)
        return "\n".join(lines) + "\n" if lines else indent + "{}\n"

    def _head(self, indent: str, key: Any) -> str:
        text = _scalar(key) if type(key) in (str, int, float, bool) else None
        head = self.heads[indent, key.__class__, key] = f"{indent}{json.dumps(str(key)) if text is None else text}:"
        return head

    def _mapping(self, data: Mapping[Any, Any], indent: str, lines: list[str]) -> None:
        heads, append = self.heads, lines.append
        for key, value in data.items():
            head = heads.get((indent, key.__class__, key)) or self._head(indent, key)
            kind = value.__class__  # the common scalars inline: this loop runs for every value shown
            if kind is str:
                if "\n" in value and literal_fits(value):
                    _literal(value, head, indent, lines)
                else:
                    append(f"{head} {_string(value)}")
            elif kind is int:
                append(f"{head} {value}")
            else:
                text = _scalar(value)
                if text is None:
                    self._nested(value, head, indent, lines)
                else:
                    append(f"{head} {text}")

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
        elif type(value) is str:  # a multi-line string (the others are scalars)
            _literal(value, head, indent, lines)
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
