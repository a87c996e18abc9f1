"""Expressions: `parse` and `solve` code compiled once and evaluated in nested scopes with `E`."""

from __future__ import annotations

import ast
import builtins
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Callable

from ..errors import CoolRunnerError, EvalFailure, describe
from ..limits import INT_HINT, LIMIT_HINTS, MAX_INT_BITS, MAX_REPEAT, ValueProblem, check_value, describe_path
from .mapping import History, thaw

PARSE = "parse "
SOLVE = "solve "


# --- arithmetic that cannot run for hours ---------------------------------------------------------------
# `10**10**10` or `[0] * 10**12` would hold the expansion inside one C call, deaf even to Ctrl-C. Expressions
# are compiled with `**`, `<<` and `*` routed through these checks (and `pow` replaced), which refuse results
# beyond the limits before computing them. Loops over huge ranges or calls into other modules are not covered.


def _too_large(what: str) -> OverflowError:
    return OverflowError(f"{what}; {INT_HINT}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(number: int, spec: str = "") -> str:
    """A number for a message: written out when short, by its size otherwise."""
    return format(number, spec) if number.bit_length() <= 64 else f"a {number.bit_length():,}-bit number"


def _power(base: Any, exponent: Any, modulus: Any = None) -> Any:
    if modulus is None and _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise _too_large(f"the result of {_show(base)} ** {_show(exponent)} would have about {bits:,.0f} bits")
    return pow(base, exponent) if modulus is None else pow(base, exponent, modulus)


def _shift(value: Any, count: Any) -> Any:
    if _is_int(value) and _is_int(count) and value and count > 0 and value.bit_length() + count > MAX_INT_BITS:
        bits = value.bit_length() + count
        raise _too_large(f"the result of {_show(value)} << {_show(count)} would have {bits:,} bits")
    return value << count


def _times(left: Any, right: Any) -> Any:
    if left.__class__ is float or right.__class__ is float:  # the common case: nothing to check
        return left * right
    if _is_int(left) and _is_int(right):
        if left and right and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _too_large(f"the product would have about {left.bit_length() + right.bit_length():,} bits")
    elif (isinstance(left, (str, bytes, list, tuple)) and _is_int(right)) or \
            (isinstance(right, (str, bytes, list, tuple)) and _is_int(left)):
        sequence, count = (left, right) if _is_int(right) else (right, left)
        if len(sequence) * count > MAX_REPEAT:
            times = _show(count, ",")
            raise MemoryError(f"repeating a {type(sequence).__name__} of length {len(sequence):,} {times} times "
                              f"would hold more than {MAX_REPEAT:,} items")
    return left * right


_GUARDS = {ast.Pow: "__cool_power__", ast.LShift: "__cool_shift__", ast.Mult: "__cool_times__"}
_BUILTINS = {**vars(builtins), "pow": _power}
_GLOBALS = {"__builtins__": _BUILTINS, "__cool_power__": _power, "__cool_shift__": _shift, "__cool_times__": _times}


class _Guard(ast.NodeTransformer):
    """Routes `a ** b`, `a << b` and `a * b` through the checks above."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _GUARDS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(id=guard, ctx=ast.Load()), args=[node.left, node.right], keywords=[])
        return ast.copy_location(call, node)


class Scope(dict):
    """Names visible to an expression: resolved keys of every enclosing level (deepest first), then `E`.

    It is used as the globals of `eval`, so names inside comprehensions and lambdas resolve too. Layers are
    the live mappings being built, so nothing is copied per value.
    """

    __slots__ = ("history", "layers")

    def __init__(self, layers: list[Mapping[Any, Any]], history: History | None) -> None:
        super().__init__(_GLOBALS)
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
                tree = ast.parse(source.strip(), "<expression>", "eval")
            except SyntaxError as exc:
                raise EvalFailure(f"SyntaxError: {exc.msg}", "check the Python syntax of the expression") from exc
            code = compile(ast.fix_missing_locations(_Guard().visit(tree)), "<expression>", "eval")
            self.cache[source] = code
        return code


def evaluate(code: CodeType, scope: Scope, explain_name: Callable[[str], str | None],
             check: Callable[[Any], None] | None = None) -> Any:
    """Evaluate compiled code; a failure becomes EvalFailure, with advice for names not yet resolved.

    `check` sees the raw result first (it raises EvalFailure for one that cannot be kept), before `thaw` walks it.
    """
    try:
        value = eval(code, scope)
    except CoolRunnerError:
        raise  # a key this expression needed failed on its own: that error names the key
    except NameError as exc:
        name = getattr(exc, "name", None)
        hint = explain_name(name) if name else None
        raise EvalFailure(describe(exc), hint) from exc
    except Exception as exc:
        raise EvalFailure(describe(exc)) from exc
    if check is not None:
        check(value)
    try:
        return thaw(value)
    except Exception as exc:
        raise EvalFailure(describe(exc)) from exc


def check_result(value: Any, depth: int) -> None:
    """Refuse a `parse` result found `depth` levels deep that nests too deeply, contains itself, holds a huge
    integer or too many values: an EvalFailure naming where inside it."""
    try:
        check_value(value, depth=depth)
    except ValueProblem as problem:
        raise EvalFailure(f"the result cannot be kept: {problem.what}{describe_path(problem.path)}",
                          LIMIT_HINTS[problem.limit]) from problem
