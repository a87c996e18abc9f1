"""The exception hierarchy: every error a user can cause is a CoolRunnerError; internal signals follow."""

from __future__ import annotations

from collections.abc import Sequence

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
    """An output file that cannot be written: a folder or a bad path (exit 2), or a failed write (exit 1)."""

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
    """SIGTERM (a cluster preempting the job, a system shutdown): stop now, leave the experiment queued."""


class EvalFailure(Exception):
    """An expression failed; carries the one-line error and advice, if any."""

    def __init__(self, error: str, hint: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.hint = hint
