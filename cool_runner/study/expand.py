"""Expansion: definitions merged with the defaults, copied by `Grid` and `Repeat`, and their `parse` values resolved."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from ..errors import ConfigError, CycleError, EvalFailure, ExpressionError
from ..files import write_problem
from ..keys import ABSENT, SKIP, host_name, lookup, walk
from .after import dependencies
from .expressions import Compiler
from .grid import GRID, points
from .identity import IDENTITY, digest, identity
from .load import StudyFile
from .mapping import Exp, History
from .resolve import Pending, Resolution


@dataclass
class Experiment:
    """One expanded experiment, ready to run."""

    values: Exp
    index: int = 0
    solves: list[tuple[Any, ...]] = field(default_factory=list)
    line: int | None = None
    ticket: str | None = None
    #: Indices of the experiments it waits for (what its `parse` values read through `E`, and `After`).
    after: list[int] = field(default_factory=list)
    file: str | None = None
    #: The definition (one copy of it) before merging and parsing, for its IDENTITY.
    definition: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> Any:
        return self.values.get("Name")

    @property
    def skipped(self) -> bool:
        return self.values.get("Name") == SKIP


class Variant(NamedTuple):
    """One copy of a definition: a Grid point (or the definition itself) and a Repeat index."""

    definition: Mapping[str, Any]
    rep: int
    rnd_idx: Any
    grid: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """The copy as a definition that is not copied again (for a queue file)."""
        doc = dict(self.definition)
        if self.grid is not None:
            doc["GRID"] = self.grid
        doc["REP"] = self.rep
        doc["RND_IDX"] = self.rnd_idx
        return doc


def merge(experiment: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge: the experiment's keys first (its values win), then the defaults it did not set."""
    merged: dict[str, Any] = {}
    for key, value in experiment.items():
        base = defaults.get(key)
        merged[key] = merge(value, base) if isinstance(value, dict) and isinstance(base, dict) else value
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
    return merged


def line_of(doc: Any, path: Sequence[Any]) -> int | None:
    """The line of `path` inside a located document, or of the deepest mapping that holds part of it."""
    line = getattr(doc, "line", None)
    for node, part in zip(walk(doc, path), path):
        line = getattr(node, "lines", {}).get(part, line)
    return line


class Expander:
    """Resolves definitions into experiments; one instance per run, so the compile cache is shared."""

    def __init__(self, study: StudyFile, rng: random.Random | None = None, host: str | None = None) -> None:
        self.study = study
        self.rng = rng or random.Random()
        self.host = host or host_name()
        self.compiler = Compiler()
        self.log_problems: dict[str, str | None] = {}  # YamlLog path -> why it cannot be written (checked once)

    def new_rnd_idx(self) -> int:
        return self.rng.randint(100000, 999999)

    def expand(self) -> list[Experiment]:
        """Every experiment of the file in run order: global repeats 1,2,1,2; per definition its Grid points in
        order, each point's Repeat copies together (point 1 copy 1, point 1 copy 2, point 2 copy 1, ...)."""
        return list(self.iter_expand())

    def iter_expand(self) -> Iterator[Experiment]:
        index = 0
        gridded = GRID in self.study.defaults
        for global_rep in range(self.study.settings["repeat"]):
            history = History()
            for definition in self.study.definitions:
                if gridded or GRID in definition:
                    copies = self.variants(definition)
                else:  # the common case, without the Variant objects
                    count, rnd_idx = self.copies(definition), self.rnd_idx(definition)
                    copies = [(definition, rep, rnd_idx, None) for rep in range(count)]  # type: ignore[misc]
                for copy, rep, rnd_idx, grid in copies:
                    experiment = self.resolve(copy, history, index, rep=rep, rnd_idx=rnd_idx, global_rep=global_rep,
                                              grid=grid)
                    history.append(experiment.values)
                    yield experiment
                    index += 1

    def variants(self, definition: Mapping[str, Any], line: int | None = None) -> list[Variant]:
        """The copies of one definition, before parsing: its Grid points, and `Repeat` copies of each."""
        line = line or getattr(definition, "line", None)
        doc = definition if GRID in definition else self.study.defaults
        out = []
        for point in points(definition, self.grid(definition), self.study.path, line_of(doc, [GRID]) or line):
            copies, rnd_idx = self.copies(point.definition, line), self.rnd_idx(point.definition)
            out += [Variant(point.definition, rep, rnd_idx, point.values) for rep in range(copies)]
        return out

    def rnd_idx(self, definition: Mapping[str, Any]) -> Any:
        """The RND_IDX the copies of a definition share: the one written, else a new one."""
        rnd_idx = definition.get("RND_IDX", self.study.defaults.get("RND_IDX"))
        return self.new_rnd_idx() if rnd_idx is None else rnd_idx

    def grid(self, definition: Mapping[str, Any]) -> Any:
        """The Grid that applies: the definition's merged over the default config's; `Grid: null` turns it off."""
        own, base = definition.get(GRID), self.study.defaults.get(GRID)
        if GRID not in definition:
            return base
        if isinstance(own, dict) and isinstance(base, dict):
            return merge(own, base)
        return own

    def copies(self, definition: Mapping[str, Any], line: int | None = None) -> int:
        """How many copies `Repeat` asks for (the definition's, else the default config's; 0 runs none)."""
        value = definition.get("Repeat", self.study.defaults.get("Repeat", 1))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            doc = definition if "Repeat" in definition else self.study.defaults
            raise ConfigError(f"Repeat must be a whole number, not {value!r}", file=self.study.path,
                              line=line_of(doc, ["Repeat"]) or line, key=("Repeat",),
                              hint="Repeat is read before parsing, so it cannot be an expression")
        return value

    def resolve(self, definition: Mapping[str, Any], history: History, index: int, *, rep: int = 0,
                rnd_idx: Any = None, global_rep: int = 0, grid: Mapping[str, Any] | None = None) -> Experiment:
        """Merge one copy of a definition with the defaults and resolve its `parse` values, each when needed."""
        defaults = self.study.defaults
        rnd_idx = definition.get("RND_IDX", defaults.get("RND_IDX", rnd_idx))
        if rnd_idx is None:
            rnd_idx = self.new_rnd_idx()
        runner = {"INDEX": index, "REP": rep, "GLOBAL_REP": global_rep, "RND_IDX": rnd_idx, "HOST": self.host}
        if grid is not None:
            runner = {"INDEX": index, "GRID": Exp.wrap(grid), **runner}
        experiment = Experiment(values=Exp(), index=index, line=getattr(definition, "line", None),
                                file=self.study.path, definition=definition)
        resolution = Resolution(self.compiler, history, runner, experiment.solves,
                                partial(self.error, definition, experiment))
        history.take_reads()  # forget reads of an earlier resolution that failed
        experiment.values = resolution.build(definition, defaults, leave=GRID)
        resolution.resolve_all()
        values = experiment.values
        for key, value in runner.items():
            if key not in values:
                values[key] = value
        values["INDEX"] = index
        # The history is copied only to check an After: copying it for every experiment made expansion quadratic.
        earlier = history.items() if values.get("After") is not None else ()
        after = dependencies(values, index, history.take_reads(), earlier, file=self.study.path,
                             line=line_of(definition, ["After"]) or experiment.line)
        if after is not None:
            values["After"] = experiment.after = after
        self.check(experiment, definition)
        return experiment

    def identify(self, experiments: Iterable[Experiment]) -> None:
        """Give each experiment its IDENTITY (see identity.py), in file order; one that has one keeps it.

        Pass every experiment of the file, in order, before picking some: identical definitions are told apart
        by how many came before them.
        """
        seen: dict[tuple[Any, str], int] = {}
        known: dict[tuple[int, Any], tuple[str, int]] = {}
        for experiment in experiments:
            values, source = experiment.values, experiment.definition
            if IDENTITY in values or source is None:
                continue
            global_rep = values.get("GLOBAL_REP", 0)
            mark = (id(source), global_rep)  # Repeat copies share their definition
            if mark not in known:
                text = digest(merge(source, self.study.defaults))
                occurrence = seen.get((global_rep, text), 0)
                seen[global_rep, text] = occurrence + 1
                known[mark] = (text, occurrence)
            text, occurrence = known[mark]
            values[IDENTITY] = identity(text, occurrence, values.get("REP", 0), global_rep)

    def check(self, experiment: Experiment, definition: Mapping[str, Any]) -> None:
        """Runner keys that must be present and well-formed before anything runs."""
        if experiment.skipped:
            return
        for key in ("Module", "YamlLog"):
            value = experiment.values.get(key)
            if not isinstance(value, str) or not value.strip():
                what = f"{key} is missing" if value is None else f"{key} must be a non-empty string, not {value!r}"
                example = "modules.example" if key == "Module" else "logs/log.yaml"
                raise ConfigError(what, file=self.study.path, line=line_of(definition, [key]) or experiment.line,
                                  experiment=experiment.index, name=experiment.name, key=(key,),
                                  hint=f"set it in the default config or in this experiment, e.g. {key}: {example}")
        timeout = experiment.values.get("Timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ConfigError(f"must be a number of seconds above 0, not {timeout!r}", file=self.study.path,
                              line=line_of(definition, ["Timeout"]) or experiment.line, experiment=experiment.index,
                              name=experiment.name, key=("Timeout",), hint="e.g. Timeout: 3600, or null for none")
        log = experiment.values["YamlLog"]
        if log not in self.log_problems:
            self.log_problems[log] = write_problem(log)
        if self.log_problems[log]:
            holder = definition if "YamlLog" in definition else self.study.defaults
            raise ConfigError(f"{log} {self.log_problems[log]}", file=self.study.path,
                              line=line_of(holder, ["YamlLog"]) or experiment.line, experiment=experiment.index,
                              name=experiment.name, key=("YamlLog",),
                              hint="give the path of a file in a folder you can write to")

    def error(self, definition: Mapping[str, Any], experiment: Experiment, values: Exp, pending: Pending,
              exc: EvalFailure | None, cycle: Sequence[Pending]) -> ExpressionError:
        """The error for a `parse` value that failed, or for a cycle of values that need each other."""
        study = self.study
        name = values.get("Name")
        where = {"file": study.path, "experiment": experiment.index, "key": pending.path,
                 "name": None if isinstance(name, Pending) else name,
                 "line": self.line(definition, pending.path)}
        if exc is None:
            return CycleError(pending.source.strip(), [item.path for item in cycle],
                              [self.line(definition, item.path) for item in cycle], **where)  # type: ignore[arg-type]
        return ExpressionError.failed("parse", pending.source, exc, **where)

    def line(self, definition: Mapping[str, Any], path: Sequence[Any]) -> int | None:
        """The line a key path was written on: in the definition, else in the default config."""
        in_defaults = not _has_path(definition, path) and _has_path(self.study.defaults, path)
        return line_of(self.study.defaults if in_defaults else definition, path)


def _has_path(doc: Any, path: Sequence[Any]) -> bool:
    return lookup(doc, path) is not ABSENT
