"""`solve` recipes: built right before an experiment runs, importing dotted module names on demand."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import EvalFailure, ExpressionError, describe
from ..keys import lookup, walk

if TYPE_CHECKING:
    from ..study.expand import Experiment
    from ..study.mapping import Exp

from ..study.expressions import _BUILTINS, SOLVE, Compiler, Scope, evaluate


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


def recipes_of(experiment: Experiment) -> dict[tuple[Any, ...], str]:
    """The `solve` recipes of an experiment, by key path, as written."""
    return {path: lookup(experiment.values, path) for path in experiment.solves}


def solve_all(experiment: Experiment, exp: Exp, recipes: Mapping[tuple[Any, ...], str], compiler: Compiler) -> None:
    """Replace every `solve` recipe in `exp` by the object it builds."""
    for path, recipe in recipes.items():
        nodes = list(walk(exp, path[:-1]))
        layers = [node for node in nodes if isinstance(node, Mapping)]
        source = recipe[len(SOLVE):]
        try:
            value = solve(source, layers, compiler)
        except EvalFailure as exc:
            raise ExpressionError.failed("solve", source, exc, experiment=experiment.index, name=experiment.name,
                                         key=path) from exc
        nodes[-1][path[-1]] = value
