"""What runs inside a Slurm job: one experiment, a queue worker, or the closing Slack summary."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..console import Console
from ..files import atomic_write
from ..keys import Status
from ..study.expand import Experiment
from .metadata import Metadata
from .records import append_record, build_record
from .runner import MemorySource, Outcome, Runner, Summary

try:  # the job classes must exist without submitit too, so that planning and --dry can import this module
    from submitit.helpers import Checkpointable
except ImportError:  # pragma: no cover - exercised only without the slurm extra
    Checkpointable = object  # type: ignore[assignment,misc]


@dataclass
class JobSpec:
    """Everything a job needs besides the cluster: where the study's files are and how to import modules."""

    study: str
    folder: Path
    paths: list[str]
    argv: list[str]
    cwd: str
    experiment: Experiment | None = None
    after: list[int] = field(default_factory=list)
    names: dict[int, Any] = field(default_factory=dict)
    #: Global.metadata: what ran goes into every record.
    metadata: bool = True

    def with_experiment(self, experiment: Experiment, after: Sequence[int], names: Mapping[int, Any]) -> JobSpec:
        return replace(self, experiment=experiment, after=list(after), names={i: names[i] for i in after})


def status_path(folder: Path, index: int) -> Path:
    return folder / "status" / f"{index}.json"


def read_statuses(folder: Path) -> dict[int, dict[str, Any]]:
    """The finished experiments of a submitted study, by index (a job writes its file after the record)."""
    found: dict[int, dict[str, Any]] = {}
    for path in (folder / "status").glob("*.json"):
        try:
            found[int(path.stem)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now, or not ours
    return found


def _job_env() -> tuple[str, str]:
    """This job's id (`123_4` in an array) and the file submitit sends its output to."""
    import submitit

    env = submitit.JobEnvironment()
    return str(env.job_id), str(env.paths.stdout)


def _logged(log: str, job_id: str) -> bool:
    """Whether this job already appended its record (it was requeued after writing it)."""
    from ..logs.reader import read_documents

    try:
        return any(isinstance(doc, dict) and str(doc.get("SLURM_JOB_ID")) == job_id for doc, _ in read_documents(log))
    except Exception:  # no log yet, or one that cannot be read: nothing of ours is in it
        return False


def run_experiment(spec: JobSpec) -> str:
    """Run one experiment in this job, unless it already ran (a requeue) or a dependency did not end `done`."""
    experiment = spec.experiment
    assert experiment is not None
    os.chdir(spec.cwd)
    job_id, output = _job_env()
    done_file = status_path(spec.folder, experiment.index)
    if done_file.exists():
        return str(json.loads(done_file.read_text(encoding="utf-8"))["status"])
    values = experiment.values
    values["HOST"] = socket.gethostname()
    if _logged(values["YamlLog"], job_id):
        return _finish(done_file, Outcome(experiment.index, experiment.name, Status.DONE), job_id)
    statuses = read_statuses(spec.folder)
    for index in spec.after:
        status = statuses.get(index, {}).get("status", "did not finish")
        if status != Status.DONE:
            error = f"dependency {index} ({spec.names.get(index)}) {status}"
            record = build_record({**values, **_stamp(job_id, output)}, {}, status=Status.SKIPPED, elapsed=0.0,
                                  error=error)
            if spec.metadata:
                record = Metadata(spec.paths, spec.argv).complete(record, values, file=experiment.file,
                                                                  line=experiment.line)
            append_record(values["YamlLog"], record)
            print(f"[{experiment.index}] {experiment.name} skipped: {error}", flush=True)
            return _finish(done_file, Outcome(experiment.index, experiment.name, Status.SKIPPED, error=error), job_id)
    from .session import module_argv

    runner = Runner(Console(), paths=spec.paths, stamp=_stamp(job_id, output), metadata=spec.metadata)
    with module_argv(spec.argv):
        summary = runner.run(MemorySource([experiment]))
    outcome = summary.outcomes[0] if summary.outcomes else Outcome(experiment.index, experiment.name,
                                                                    Status.INTERRUPTED)
    return _finish(done_file, outcome, job_id)


def _stamp(job_id: str, output: str) -> dict[str, str]:
    """What every record made in a Slurm job carries: the job, and where its output went."""
    return {"SLURM_JOB_ID": job_id, "SLURM_OUTPUT": output}


def _finish(path: Path, outcome: Outcome, job_id: str) -> str:
    atomic_write(path, json.dumps({"status": str(outcome.status), "name": outcome.name, "job": job_id,
                                   "elapsed": outcome.elapsed, "error": outcome.error}, default=str))
    return str(outcome.status)


class ExperimentJob(Checkpointable):
    """One experiment; when Slurm preempts it or its time runs out, submitit requeues it to run again."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec

    def __call__(self) -> str:
        return run_experiment(self.spec)


class QueueWorkerJob(Checkpointable):
    """A worker that takes experiments from the study's file queue until it is empty."""

    def __init__(self, spec: JobSpec, queue: str) -> None:
        self.spec = spec
        self.queue = queue

    def __call__(self) -> int:
        from ..queue.filequeue import FileQueue
        from .session import RunOptions, resume_queue

        os.chdir(self.spec.cwd)
        if not FileQueue(self.queue).exists():
            print(f"{self.queue}: there is no queue; nothing for this worker", flush=True)
            return 0
        options = RunOptions(argv=self.spec.argv, stamp=_stamp(*_job_env()))
        return resume_queue(self.queue, options, Console(), experiment_file=self.spec.study)


class SummaryJob:
    """Posts the study's summary to Slack once every experiment job has ended."""

    def __init__(self, spec: JobSpec, slack: Mapping[str, Any], names: Mapping[int, Any]) -> None:
        self.spec = spec
        self.slack = dict(slack)
        self.names = dict(names)

    def __call__(self) -> str:
        from .notify import SlackNotifier, slack_settings

        statuses = read_statuses(self.spec.folder)
        summary = Summary([Outcome(i, self.names.get(i), statuses.get(i, {}).get("status", "did not finish"),
                                   statuses.get(i, {}).get("elapsed") or 0.0) for i in sorted(self.names)])
        settings = slack_settings(self.slack, self.spec.study)
        if settings is None:
            return "slack is off"
        console = Console()
        notifier = SlackNotifier(settings, host=f"Slurm ({socket.gethostname()})", warn=console.warn)
        notifier.ended(summary)
        return summary.counts()
