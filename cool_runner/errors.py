"""The exception hierarchy: every error a user can cause is a CoolRunnerError; internal signals follow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from .keys import format_key


class CoolRunnerError(Exception):
    """Root of the errors a user can cause; the CLI turns them into one line and exit code 2."""

    exit_code = 2

    def __init__(self, what: str, *, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint

    def where(self) -> str:
        return ""

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.what}" if where else self.what
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(CoolRunnerError):
    """A bad command-line argument."""

    def __init__(self, what: str, *, option: str | None = None, hint: str | None = None) -> None:
        super().__init__(what, hint=hint)
        self.option = option

    def where(self) -> str:
        return self.option or ""


class ConfigError(CoolRunnerError):
    """Something wrong in an experiment file, a queue file or a log file, located as well as we can."""

    def __init__(
        self,
        what: str,
        *,
        file: str | None = None,
        line: int | None = None,
        experiment: int | None = None,
        name: object = None,
        key: Sequence[object] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(what, hint=hint)
        self.file = file
        self.line = line
        self.experiment = experiment
        self.name = name
        self.key = tuple(key)

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.experiment is not None:
            label = f"experiment {self.experiment}"
            if self.name is not None:
                label += f" ({self.name})"
            parts.append(label)
        if self.key:
            parts.append(format_key(self.key))
        return ": ".join(parts)


class LimitError(ConfigError):
    """Input beyond one of cool-runner's safety limits (nesting, aliases, integer size, a value containing itself).

    `limit` names which one: "depth", "aliases", "cycle", "integer" or "size".
    """

    def __init__(self, what: str, *, limit: str, **where: object) -> None:
        super().__init__(what, **where)  # type: ignore[arg-type]
        self.limit = limit


class ExpressionError(ConfigError):
    """A `parse` or `solve` expression that could not be evaluated."""

    def __init__(self, kind: str, expression: str, error: str, **where: object) -> None:
        hint = where.pop("hint", None)
        super().__init__(f"{kind} {expression}: {error}", hint=hint, **where)  # type: ignore[arg-type]
        self.kind = kind
        self.expression = expression
        self.error = error

    @classmethod
    def failed(cls, kind: str, source: str, failure: EvalFailure, **where: object) -> ExpressionError:
        """The error for an expression whose evaluation raised `failure`."""
        return cls(kind, source.strip(), failure.error, hint=failure.hint, **where)


class CycleError(ExpressionError):
    """`parse` values that need each other (`a: parse b`, `b: parse a`); `cycle` is the key paths, `a -> b -> a`."""

    def __init__(self, expression: str, cycle: Sequence[Sequence[object]], lines: Sequence[int | None],
                 **where: object) -> None:
        chain = " -> ".join(format_key(path) for path in cycle)
        located = ", ".join(f"{format_key(path)} on line {line}" for path, line in zip(cycle[:-1], lines) if line)
        hint = (f"{located}; " if located else "") + "give one of them a value that does not need the others"
        super().__init__("parse", expression, f"circular reference {chain}", hint=hint, **where)
        self.cycle = tuple(tuple(path) for path in cycle)


class ModuleLoadError(CoolRunnerError):
    """An experiment module that is missing, broken, or has no main()."""

    def __init__(self, module: str, what: str, *, details: str | None = None, hint: str | None = None):
        super().__init__(what, hint=hint)
        self.module = module
        self.details = details

    def where(self) -> str:
        return f"Module {self.module}"

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.details.rstrip()}" if self.details else text


class QueueError(CoolRunnerError):
    """A queue file that cannot be used as asked."""

    def __init__(self, what: str, *, file: str, hint: str | None = None) -> None:
        super().__init__(what, hint=hint)
        self.file = file

    def where(self) -> str:
        return self.file


class OutputError(CoolRunnerError):
    """A file cool-runner writes (a tool's output, a log, a queue) that cannot be written: a folder or a bad path
    given as output (exit 2), or a write that failed: a full disk, an I/O error, a lock that stayed taken (exit 1)."""

    def __init__(self, what: str, *, file: str, exit_code: int = 2, hint: str | None = None) -> None:
        super().__init__(what, hint=hint)
        self.file = file
        self.exit_code = exit_code

    def where(self) -> str:
        return self.file


class MissingPackage(CoolRunnerError):
    """An optional package that a feature needs is not installed."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(f"{feature} needs {package}, which is not installed",
                         hint=f"pip install -e '.[{extra}]' in the cool-runner folder, or pip install {package}")
        self.feature = feature
        self.package = package
        self.extra = extra


class Interrupted(CoolRunnerError):
    """The user stopped the run with a second Ctrl-C."""

    exit_code = 130


# --- internal signals: never shown to a user as such --------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM or SIGHUP (a cluster preempting the job, a closed terminal): stop now, leave the experiment queued."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class EvalFailure(Exception):
    """An expression failed; carries the one-line error and advice, if any."""

    def __init__(self, error: str, hint: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint


# --- describing exceptions raised by the user's code ------------------------------------------------------

_PACKAGE = str(Path(__file__).resolve().parent)


def message_of(exc: BaseException) -> str:
    """`str(exc)`, or "<unprintable>" when the exception's own `__str__` fails."""
    try:
        return str(exc)
    except Exception:
        return "<unprintable>"


def describe(exc: BaseException) -> str:
    """`Type: message` on one line; a KeyError shows its key as written, not quoted twice."""
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        try:
            text = str(exc.args[0])
        except Exception:
            text = "<unprintable>"
    else:
        text = message_of(exc)
    lines = text.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _ours(filename: str) -> bool:
    return filename.startswith(_PACKAGE)


def _importlib(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or "importlib" in Path(filename).parts[-2:-1]


def user_traceback(exc: BaseException, *, hidden: Callable[[str], bool] = _ours) -> str:
    """The traceback of `exc` and its causes, from the user's code down.

    Leading frames in files `hidden` picks (by default cool-runner's own, which called the user's code) are
    left out, importlib's frames are left out everywhere, and so are internal EvalFailure links in a chain.
    """
    import traceback

    top = traceback.TracebackException.from_exception(exc)
    pending, seen = [top], set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        while item.__cause__ is not None and item.__cause__.exc_type is EvalFailure:
            item.__cause__ = item.__cause__.__cause__
        frames = list(item.stack)
        start = 0
        while start < len(frames) and (hidden(frames[start].filename) or _importlib(frames[start].filename)):
            start += 1
        item.stack = traceback.StackSummary.from_list([f for f in frames[start:] if not _importlib(f.filename)])
        pending.extend(link for link in (item.__cause__, item.__context__) if link is not None)
    return "".join(top.format())
