"""Options that take a list of words, and the positional arguments such an option can swallow.

`collect.py --exclude tmp data` gives `data` to `--exclude`, since argparse cannot know where the list ends.
The commands parse their positionals as optional (`nargs="*"`), then ask here whether a missing or suspicious
positional was taken by a list option, to say so in one line with the fix (`--exclude=tmp data`).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from typing import Any, Callable

from ..errors import UsageError


class ListAction(argparse.Action):
    """`--opt a b` and `--opt=a --opt=b` both give [a, b]; every use is remembered in order for the checks."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        words = list(values or [])
        setattr(namespace, self.dest, list(getattr(namespace, self.dest, None) or []) + words)
        calls = list(getattr(namespace, "_list_calls", []))
        calls.append((option_string or self.dest, words))
        namespace._list_calls = calls


class Formatter(argparse.HelpFormatter):
    """Shows a positional the command requires itself (`nargs="*"`) as `PATH [PATH ...]`."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if not action.option_strings and action.nargs == "*":
            metavar = self._metavar_formatter(action, default_metavar)(1)[0]
            return f"{metavar} [{metavar} ...]"
        return super()._format_args(action, default_metavar)


def list_calls(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """Each use of a list option, in command-line order: (option, the words it took)."""
    return list(getattr(args, "_list_calls", []))


def require_positionals(args: argparse.Namespace, dest: str, metavar: str, looks_positional: Callable[[str], bool],
                        hint: str) -> None:
    """A UsageError when `dest` got no words; it names the list option that took them, if one did."""
    if getattr(args, dest):
        return
    calls = list_calls(args)
    if calls:
        option, words = calls[-1]
        if len(words) > 1 or (words and looks_positional(words[-1])):
            raise swallowed(option, words, metavar, looks_positional, f"{metavar} is missing")
    raise UsageError(f"{metavar} is missing", hint=hint)


def swallowed(option: str, words: Sequence[str], metavar: str, looks_positional: Callable[[str], bool],
              what: str) -> UsageError:
    """The error for a list option that took words meant as positionals; the hint spells out the fix."""
    tail = 0
    while tail < len(words) and looks_positional(words[len(words) - 1 - tail]):
        tail += 1
    if tail == 0 or (tail == len(words) and tail > 1):
        tail = max(tail - 1, 1)  # at least the last word was meant as a positional; the option keeps one
    kept, moved = list(words[:len(words) - tail]), list(words[len(words) - tail:])
    first = f"give the {metavar}s before {option}"
    if kept:
        fix = " ".join([f"{option}={shlex.quote(w)}" for w in kept] + [shlex.quote(w) for w in moved])
        hint = f"end the list with '=': {fix}; or {first}"
    else:
        hint = first
    return UsageError(f"{what}: {option} took {_listing(words)} as its values", hint=hint)


def _listing(words: Sequence[str]) -> str:
    quoted = [repr(w) for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
