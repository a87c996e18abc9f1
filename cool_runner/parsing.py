"""Fancy parsing: `parse` expressions evaluated in nested scopes with `E`, and `solve` recipes."""

from __future__ import annotations

import ast
import builtins
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Callable

from .mapping import Exp, History, thaw

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


class SolveScope(Scope):
    """A scope in which a name that is not a key is imported as a module on demand."""

    __slots__ = ()

    def missing(self, name: str) -> Any:
        if name in _BUILTINS or name.startswith("__"):
            return dict.__getitem__(self, name)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            raise KeyError(name) from None


class EvalFailure(Exception):
    """An expression raised; `error` is the one-line description and `hint` a suggestion, if any."""

    def __init__(self, error: str, hint: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint


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
    except NameError as exc:
        name = getattr(exc, "name", None)
        hint = explain_name(name) if name else None
        raise EvalFailure(describe(exc), hint) from exc
    except Exception as exc:
        raise EvalFailure(describe(exc)) from exc


def dotted_chains(tree: ast.AST) -> list[list[str]]:
    """Every `a.b.c` chain of plain names and attributes in an expression, outermost only."""
    chains: list[list[str]] = []

    def visit(node: ast.AST) -> None:
        parts: list[str] = []
        cursor = node
        while isinstance(cursor, ast.Attribute):
            parts.append(cursor.attr)
            cursor = cursor.value
        if isinstance(cursor, ast.Name) and parts:
            chains.append([cursor.id, *reversed(parts)])
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return chains


def import_chains(source: str, scope: Scope) -> None:
    """Import the longest module prefix of each dotted chain whose root is not a key in scope."""
    for chain in dotted_chains(ast.parse(source.strip(), mode="eval")):
        root = chain[0]
        if any(root in layer for layer in scope.layers) or root in _BUILTINS:
            continue
        for size in range(len(chain), 0, -1):
            name = ".".join(chain[:size])
            try:
                importlib.import_module(name)
                break
            except ModuleNotFoundError as exc:
                # Only "this very name does not exist" means try a shorter prefix; anything else is real.
                if exc.name is None or not name.startswith(exc.name):
                    raise


def solve(source: str, layers: list[Mapping[Any, Any]], compiler: Compiler) -> Any:
    """Evaluate a `solve` recipe (without its prefix), importing dotted module names on demand."""
    code = compiler.compile(source)
    scope = SolveScope(layers, None)
    try:
        import_chains(source, scope)
    except Exception as exc:
        raise EvalFailure(describe(exc), "check that the module is installed and imports cleanly") from exc
    return evaluate(code, scope, lambda name: f"{name} is neither a key of the experiment nor an importable module")


def walk_to(root: Exp, path: tuple[Any, ...]) -> tuple[list[Mapping[Any, Any]], Any]:
    """The chain of mappings enclosing the value at `path`, and the container holding it."""
    layers: list[Mapping[Any, Any]] = [root]
    container: Any = root
    for part in path[:-1]:
        container = container[part]
        if isinstance(container, Mapping):
            layers.append(container)
    return layers, container
