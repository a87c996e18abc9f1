"""Expansion: definitions merged with the defaults, copied by `Repeat`, and their `parse` values resolved."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, EvalFailure, ExpressionError
from ..keys import ABSENT, ADDED_KEYS, SKIP, host_name, lookup, walk
from .after import dependencies
from .expressions import PARSE, SOLVE, Compiler, Scope, evaluate
from .load import StudyFile
from .mapping import Exp, History


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

    @property
    def name(self) -> Any:
        return self.values.get("Name")

    @property
    def skipped(self) -> bool:
        return self.values.get("Name") == SKIP


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


def _pending_at(levels: Sequence[Mapping[str, Any]], path: Sequence[Any], name: str) -> int | None:
    """The depth of the deepest level where `name` is a key still to resolve (the key being resolved excluded)."""
    for depth in range(len(levels) - 1, -1, -1):
        if name in levels[depth] and not (depth == len(path) - 1 and path[-1] == name):
            return depth
    return None


class Expander:
    """Resolves definitions into experiments; one instance per run, so the compile cache is shared."""

    def __init__(self, study: StudyFile, rng: random.Random | None = None, host: str | None = None) -> None:
        self.study = study
        self.rng = rng or random.Random()
        self.host = host or host_name()
        self.compiler = Compiler()

    def new_rnd_idx(self) -> int:
        return self.rng.randint(100000, 999999)

    def expand(self) -> list[Experiment]:
        """Every experiment of the file in run order: global repeats 1,2,1,2, Repeat copies 1,1,2,2."""
        return list(self.iter_expand())

    def iter_expand(self) -> Iterator[Experiment]:
        index = 0
        for _ in range(self.study.settings["repeat"]):
            history = History()
            for definition in self.study.definitions:
                copies = self.copies(definition)
                rnd_idx = definition.get("RND_IDX", self.study.defaults.get("RND_IDX"))
                if rnd_idx is None:
                    rnd_idx = self.new_rnd_idx()
                for rep in range(copies):
                    experiment = self.resolve(definition, history, index, rep=rep, rnd_idx=rnd_idx)
                    history.append(experiment.values)
                    yield experiment
                    index += 1

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
                rnd_idx: Any = None) -> Experiment:
        """Merge one definition with the defaults and resolve its `parse` values top to bottom."""
        merged = merge(definition, self.study.defaults)
        runner = {"INDEX": index, "REP": rep, "RND_IDX": merged.get("RND_IDX", rnd_idx), "HOST": self.host}
        if runner["RND_IDX"] is None:
            runner["RND_IDX"] = self.new_rnd_idx()
        experiment = Experiment(values=Exp(), index=index, line=getattr(definition, "line", None))
        resolver = _Resolution(self, definition, experiment, history, runner)
        history.take_reads()  # forget reads of an earlier resolution that failed
        resolver.mapping(merged, experiment.values, ())
        for key in ADDED_KEYS:
            if key not in experiment.values:
                experiment.values[key] = runner[key]
        experiment.values["INDEX"] = index
        after = dependencies(experiment.values, index, history.take_reads(), history.items(), file=self.study.path,
                             line=line_of(definition, ["After"]) or experiment.line)
        if after is not None:
            experiment.values["After"] = experiment.after = after
        self.check(experiment, definition)
        return experiment

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


class _Resolution:
    """The state of resolving one experiment: its definition (for error messages) and where it is."""

    def __init__(self, expander: Expander, definition: Mapping[str, Any], experiment: Experiment,
                 history: History, runner: Mapping[str, Any]) -> None:
        self.expander = expander
        self.definition = definition
        self.experiment = experiment
        self.history = history
        self.raw_levels: list[Mapping[str, Any]] = []
        # INDEX, REP, RND_IDX and HOST are visible from the first key on, below every level of the experiment.
        self.layers: list[Mapping[str, Any]] = [runner]

    def mapping(self, raw: Mapping[str, Any], out: Exp, path: tuple[Any, ...]) -> Exp:
        self.layers.append(out)
        self.raw_levels.append(raw)
        try:
            for key, value in raw.items():
                out[key] = self.value(value, (*path, key))
        finally:
            self.layers.pop()
            self.raw_levels.pop()
        return out

    def value(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            if value.startswith(PARSE):
                return self.parse(value[len(PARSE):], path)
            if value.startswith(SOLVE):
                self.experiment.solves.append(path)
            return value
        if isinstance(value, dict):
            return self.mapping(value, Exp(), path)
        if isinstance(value, list):
            return [self.value(item, (*path, i)) for i, item in enumerate(value)]
        return value

    def parse(self, source: str, path: tuple[Any, ...]) -> Any:
        try:
            code = self.expander.compiler.compile(source)
            return evaluate(code, Scope(self.layers, self.history), lambda name: self.explain(name, path))
        except EvalFailure as exc:
            raise self.error("parse", source, exc, path) from exc

    def explain(self, name: str, path: tuple[Any, ...]) -> str | None:
        """Why `name` is not known yet, and what to do about it."""
        depth = _pending_at(self.raw_levels, path, name)
        if depth is None:
            return None
        node: Any = self.definition
        for part in path[:depth]:
            node = node.get(part) if isinstance(node, Mapping) else None
        in_experiment = isinstance(node, Mapping) and name in node
        if in_experiment:
            return f"{name} is defined further down; keys resolve top to bottom, so move {name} above this key"
        return (f"{name} is only set in the default config, which is resolved after the experiment's own keys; "
                f"redefine {name} in this experiment")

    def error(self, kind: str, source: str, exc: EvalFailure, path: tuple[Any, ...]) -> ExpressionError:
        study = self.expander.study
        in_defaults = not _has_path(self.definition, path) and _has_path(study.defaults, path)
        line = line_of(study.defaults if in_defaults else self.definition, path)
        name = self.experiment.values.get("Name", self.definition.get("Name", study.defaults.get("Name")))
        return ExpressionError.failed(kind, source, exc, file=study.path, line=line,
                                      experiment=self.experiment.index, name=name, key=path)


def _has_path(doc: Any, path: Sequence[Any]) -> bool:
    return lookup(doc, path) is not ABSENT
