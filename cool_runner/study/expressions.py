"""Expressions: `parse` and `solve` code compiled once and evaluated in nested scopes with `E`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Callable

from ..errors import CoolRunnerError, EvalFailure
from .mapping import History, thaw

PARSE = "parse "
SOLVE = "solve "
_BUILTINS = vars(builtins)


class Scope(dict):
    """Names visible to an expression: resolved keys of every enclosing level (deepest first), then `E`.

    It is used as the globals of `eval`, so names inside comprehensions and lambdas resolve too. Layers are
    the live mappings being built, so nothing is copied per value.
    """

    __slots__ = ("history", "layers")

    def __init__(self, layers: list[Mapping[Any, Any]], history: History | None) -> None:
        super().__init__(__builtins__=_BUILTINS)
        self.layers = layers
        self.history = history

    def __getitem__(self, name: str) -> Any:
        for layer in reversed(self.layers):
            if name in layer:
                return layer[name]
        if name == "E" and self.history is not None:
            return self.history
        return self.missing(name)

    def missing(self, name: str) -> Any:
        return dict.__getitem__(self, name)


@dataclass
class Compiler:
    """Compiles expressions once; a study repeats the same few expressions thousands of times."""

    cache: dict[str, CodeType] = field(default_factory=dict)

    def compile(self, source: str) -> CodeType:
        code = self.cache.get(source)
        if code is None:
            try:
                code = compile(source.strip(), "<expression>", "eval")
            except SyntaxError as exc:
                raise EvalFailure(f"SyntaxError: {exc.msg}", "check the Python syntax of the expression") from exc
            self.cache[source] = code
        return code


def describe(exc: BaseException) -> str:
    """`Type: message` on one line."""
    message = str(exc).strip().splitlines()
    if isinstance(exc, KeyError) and exc.args:
        message = [str(exc.args[0])]
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def evaluate(code: CodeType, scope: Scope, explain_name: Callable[[str], str | None]) -> Any:
    """Evaluate compiled code; a failure becomes EvalFailure, with advice for names not yet resolved."""
    try:
        return thaw(eval(code, scope))
    except CoolRunnerError:
        raise  # a key this expression needed failed on its own: that error names the key
    except NameError as exc:
        name = getattr(exc, "name", None)
        hint = explain_name(name) if name else None
        raise EvalFailure(describe(exc), hint) from exc
    except Exception as exc:
        raise EvalFailure(describe(exc)) from exc
