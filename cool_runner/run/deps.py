"""Dependencies at run time: which taken experiments may start, which must wait, which cannot run at all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..keys import Status
from ..study.expand import Experiment

WAIT = "wait"
READY = "ready"
ENDED_WORDS = {Status.FAILED: "failed", Status.INTERRUPTED: "was interrupted", Status.SKIPPED: "was skipped"}


@dataclass
class Verdict:
    """Whether an experiment may start now, must wait, or is skipped because a dependency did not finish."""

    kind: str
    reason: str | None = None


class Plan:
    """The experiments taken and not yet started, and how those that ended, ended.

    A dependency this run never took (not picked, run by another worker of a queue, or finished before)
    does not hold anything back: only experiments of this run are waited for.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, Experiment] = {}  # by id(): two queue documents may be alike
        self.active: Counter[int] = Counter()  # taken, not ended yet (waiting or running), by INDEX
        self.ended: dict[int, tuple[str, Any]] = {}

    def waiting(self) -> Iterator[Experiment]:
        """Taken and not started, in the order they were taken (stop iterating before changing the plan)."""
        return iter(self._waiting.values())

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, experiment: Experiment) -> None:
        self._waiting[id(experiment)] = experiment
        if not experiment.skipped:
            self.active[experiment.index] += 1

    def start(self, experiment: Experiment) -> None:
        self._waiting.pop(id(experiment), None)

    def end(self, experiment: Experiment, status: str) -> None:
        """Remember how it ended (`Name: skip` experiments never count as ended: nothing waits for them)."""
        self._waiting.pop(id(experiment), None)
        if experiment.skipped:
            return
        self.active[experiment.index] -= 1
        if self.active[experiment.index] <= 0:
            del self.active[experiment.index]
        self.ended[experiment.index] = (str(status), experiment.name)

    def verdict(self, experiment: Experiment) -> Verdict:
        if experiment.skipped:
            return Verdict(READY)
        wait = False
        for index in experiment.after:
            if index in self.ended and index not in self.active:
                status, name = self.ended[index]
                if status != Status.DONE:
                    label = f"{index} ({name})" if name is not None else str(index)
                    return Verdict(Status.SKIPPED, f"dependency {label} {ENDED_WORDS.get(status, status)}")
            elif index in self.active:
                wait = True
        return Verdict(WAIT if wait else READY)


def waves(experiments: Sequence[Experiment]) -> dict[int, int]:
    """For `--dry`: a possible order, as the wave (1, 2, ...) in which each experiment could start.

    Experiments of the same wave can run side by side; each waits only for experiments of earlier waves.
    Dependencies outside the list (not picked) do not count.
    """
    listed = {e.index for e in experiments if not e.skipped}
    wave: dict[int, int] = {}
    for experiment in sorted((e for e in experiments if not e.skipped), key=lambda e: e.index):
        before = [wave[i] for i in experiment.after if i in listed and i in wave]
        wave[experiment.index] = 1 + max(before, default=0)
    return wave


def dependency_lines(experiments: Sequence[Experiment]) -> list[str]:
    """The `--dry` summary: each experiment's dependencies and a possible order, wave by wave."""
    order = waves(experiments)
    if not order:
        return []
    lines = ["possible order (experiments of one wave can run side by side; each waits for those it reads):"]
    by_wave: dict[int, list[Experiment]] = {}
    for experiment in experiments:
        if experiment.index in order:
            by_wave.setdefault(order[experiment.index], []).append(experiment)
    for number in sorted(by_wave):
        parts = []
        for experiment in by_wave[number]:
            name = experiment.name if experiment.name is not None else "(unnamed)"
            after = f" after {', '.join(str(i) for i in experiment.after)}" if experiment.after else ""
            parts.append(f"{experiment.index} {name}{after}")
        lines.append(f"  wave {number}: " + "; ".join(parts))
    return lines
