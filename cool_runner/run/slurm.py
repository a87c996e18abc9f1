"""The Slurm launcher: a study submitted through submitit, as job arrays with Slurm dependencies."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..console import Console
from ..errors import ConfigError, UsageError
from ..files import atomic_write
from ..study.expand import Experiment
from .slurm_job import ExperimentJob, JobSpec, QueueWorkerJob, SummaryJob, read_statuses

if TYPE_CHECKING:
    import submitit

#: Global.slurm keys that submitit's AutoExecutor takes as they are; the others get its `slurm_` prefix.
GENERIC = ("timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "nodes", "tasks_per_node", "name",
           "stderr_to_stdout")
SLURM_ONLY = ("partition", "array_parallelism", "account", "qos", "constraint", "setup", "teardown",
              "additional_parameters", "comment", "exclude", "gres", "mail_type", "mail_user", "nodelist",
              "exclusive", "mem_per_gpu", "mem_per_cpu", "cpus_per_gpu", "gpus_per_task", "signal_delay_s",
              "wckey", "srun_args", "use_srun")
#: cool-runner's own: where submitit and the launcher keep their files.
OWN = ("folder",)
#: submitit's default of five minutes would requeue a training run forever; an hour is a saner start.
DEFAULT_TIMEOUT_MIN = 60
MANIFEST = "manifest.json"


@dataclass
class Group:
    """Experiments submitted together (one job array when there are several) after the same experiments."""

    indices: list[int]
    after: list[int] = field(default_factory=list)


def dependencies_of(experiments: Sequence[Experiment]) -> dict[int, list[int]]:
    """What each experiment waits for (`E` reads and `After`), among the experiments submitted."""
    submitted = {e.index for e in experiments if not e.skipped}
    return {e.index: [i for i in e.after if i in submitted] for e in experiments if not e.skipped}


def plan(experiments: Sequence[Experiment], depends: Mapping[int, list[int]]) -> list[Group]:
    """Independent experiments in one array first, then one group per distinct set of dependencies."""
    groups: dict[tuple[int, ...], Group] = {(): Group([])}
    for experiment in experiments:
        if experiment.skipped:
            continue
        key = tuple(depends.get(experiment.index, ()))
        groups.setdefault(key, Group([], list(key))).indices.append(experiment.index)
    # A group's dependencies all come before its first member, so this order submits them first.
    return sorted((g for g in groups.values() if g.indices), key=lambda g: g.indices[0] if g.after else -1)


def settings_of(raw: Any, file: str) -> dict[str, Any]:
    """Check Global.slurm and fill in the defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("slurm must be a mapping of submitit settings", file=file, key=("Global", "slurm"),
                          hint="e.g. slurm: {partition: gpu, timeout_min: 120, gpus_per_node: 1}")
    known = (*GENERIC, *SLURM_ONLY, *OWN)
    for key in raw:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}?" if close else "Global.slurm knows " + ", ".join(known)
            raise ConfigError(f"unknown setting {key!r}", file=file, key=("Global", "slurm", key), hint=hint)
    return {"timeout_min": DEFAULT_TIMEOUT_MIN, **raw}


def folder_of(settings: Mapping[str, Any], study_path: str) -> Path:
    """Where the study's Slurm files go: `Global.slurm.folder`, else `slurm/<experiment file's stem>`."""
    return Path(settings.get("folder") or Path("slurm") / Path(study_path).stem).absolute()


def require_slurm() -> None:
    """submitit installed and sbatch on PATH, or a one-line error that says what to do."""
    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        raise UsageError("the Slurm launcher needs submitit, which is not installed", option="--launcher",
                         hint="pip install -e '.[slurm]'") from exc
    if shutil.which("sbatch") is None:
        raise UsageError("sbatch is not on PATH: this machine cannot submit Slurm jobs", option="--launcher",
                         hint="run on the cluster's login node, or drop --launcher slurm to run here")


def executor(folder: Path, settings: Mapping[str, Any], *, after: Sequence[str] = ()) -> submitit.AutoExecutor:
    """A submitit executor with the study's settings and, if any, a dependency on these job ids."""
    import submitit

    parameters: dict[str, Any] = {}
    for key, value in settings.items():
        if key in GENERIC:
            parameters[key] = value
        elif key in SLURM_ONLY:
            parameters[f"slurm_{key}"] = value
    if after:
        parameters["slurm_dependency"] = "afterany:" + ":".join(after)
    ex = submitit.AutoExecutor(folder=folder / "jobs" / "%j", cluster="slurm")
    ex.update_parameters(**parameters)
    return ex


def submit(ex: submitit.AutoExecutor, jobs: Sequence[Any]) -> list[str]:
    """Submit callables (several as one array); Slurm's own complaint becomes a one-line error."""
    import contextlib
    import io

    chatter = io.StringIO()  # submitit echoes sbatch's stderr; it belongs in the one-line error instead
    try:
        with contextlib.redirect_stderr(chatter):
            if len(jobs) == 1:
                return [ex.submit(jobs[0]).job_id]
            with ex.batch():
                submitted = [ex.submit(job) for job in jobs]
            return [job.job_id for job in submitted]
    except Exception as exc:
        if type(exc).__name__ not in ("FailedJobError", "CalledProcessError", "FileNotFoundError"):
            raise
        lines = [line.strip() for line in f"{chatter.getvalue()}\n{exc}".splitlines()]
        said = [line.split("error:", 1)[1].strip() for line in lines if line.startswith("sbatch: error:")]
        reason = said[0] if said else " ".join(" ".join(lines).split())
        raise UsageError(f"Slurm refused the submission: {reason}", option="--launcher slurm",
                         hint="check Global.slurm (partition, account, qos) against sinfo and sacctmgr") from exc


@dataclass
class Launch:
    """What was submitted, as written to the manifest."""

    folder: Path
    jobs: dict[int, str] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)
    summary: str | None = None
    queue: str | None = None

    def ids(self) -> list[str]:
        return [*self.jobs.values(), *self.workers, *([self.summary] if self.summary else [])]


def launch_study(experiments: Sequence[Experiment], depends: Mapping[int, list[int]], settings: Mapping[str, Any],
                 spec: JobSpec, slack: Mapping[str, Any] | None, console: Console) -> Launch:
    """Submit every experiment as its own job: arrays of independent ones, Slurm dependencies for the rest."""
    launch = Launch(spec.folder)
    names = {e.index: e.name for e in experiments}
    for group in plan(experiments, depends):
        by_index = {e.index: e for e in experiments}
        jobs = [ExperimentJob(spec.with_experiment(by_index[i], group.after, names)) for i in group.indices]
        ids = submit(executor(spec.folder, settings, after=[launch.jobs[i] for i in group.after]), jobs)
        launch.jobs.update(zip(group.indices, ids))
    if slack is not None and launch.jobs:
        launch.summary = submit(executor(spec.folder, {**settings, "timeout_min": 10}, after=launch.ids()),
                                [SummaryJob(spec, slack, dict(names))])[0]
    write_manifest(launch, spec, {e.index: e for e in experiments})
    return launch


def launch_workers(count: int, settings: Mapping[str, Any], spec: JobSpec, queue: str) -> Launch:
    """Submit `count` queue workers as one array; they take experiments from the queue on the shared disk."""
    launch = Launch(spec.folder, queue=queue)
    launch.workers = submit(executor(spec.folder, settings), [QueueWorkerJob(spec, queue) for _ in range(count)])
    write_manifest(launch, spec, {})
    return launch


def write_manifest(launch: Launch, spec: JobSpec, experiments: Mapping[int, Experiment]) -> None:
    entries = [{"index": i, "name": experiments[i].name, "job": job, "log": experiments[i].values.get("YamlLog")}
               for i, job in launch.jobs.items()]
    atomic_write(launch.folder / MANIFEST, json.dumps({
        "study": spec.study, "experiments": entries, "workers": launch.workers, "summary": launch.summary,
        "queue": launch.queue,
    }, indent=1, default=str))


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"nothing was submitted to Slurm from here ({folder / MANIFEST} is missing)",
                         option="--status/--cancel", hint="submit the study with --launcher slurm first") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {folder / MANIFEST}: {exc}", option="--status/--cancel") from exc


def _query(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """Each job's Slurm state: squeue for what is queued or running, sacct for the rest (and for REQUEUED)."""
    if not job_ids:
        return {}
    ids = sorted({job.split("_")[0] for job in job_ids})
    states: dict[str, str] = {}
    for line in _query(["sacct", "-n", "-P", "-X", "-D", "-o", "JobID,State", "-j", ",".join(ids)]).splitlines():
        job, _, state = line.partition("|")
        previous = states.get(job)
        state = state.split()[0] if state else ""
        # -D lists every attempt; a requeue shows as REQUEUED or PREEMPTED on the earlier ones.
        states[job] = "REQUEUED" if previous in ("REQUEUED", "PREEMPTED") and state in ("PENDING", "RUNNING") \
            else state
    for line in _query(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(ids)]).splitlines():
        job, _, state = line.strip().partition(" ")
        if states.get(job) not in ("REQUEUED",):
            states[job] = state
    return states


def describe_state(status: Mapping[str, Any] | None, slurm_state: str | None) -> str:
    """One word for people: the record's status when there is one, else what Slurm says."""
    if status is not None:
        return str(status.get("status"))
    state = (slurm_state or "").upper()
    if state == "REQUEUED":
        return "requeued"
    if state in ("PENDING", "CONFIGURING"):
        return "pending"
    if state in ("RUNNING", "COMPLETING"):
        return "running"
    if state:
        return f"job {state.lower()}" if state != "COMPLETED" else "ended without a record"
    return "unknown"


def status_lines(folder: Path) -> list[str]:
    """Every submitted experiment with its state, from the status files and sacct/squeue."""
    manifest = read_manifest(folder)
    entries = manifest["experiments"]
    states = slurm_states([e["job"] for e in entries] + manifest["workers"])
    statuses = read_statuses(folder)
    lines, counts = [], {}
    for entry in entries:
        word = describe_state(statuses.get(entry["index"]), states.get(entry["job"]))
        counts[word] = counts.get(word, 0) + 1
        lines.append(f"  [{entry['index']}] {entry['name']}  job {entry['job']}  {word}")
    for job in manifest["workers"]:
        state = states.get(job, "")
        lines.append(f"  queue worker job {job}  {state.lower() if state else 'unknown'}")
    if manifest.get("queue"):
        from ..queue.filequeue import FileQueue
        from .session import status_lines as queue_status_lines

        return [f"{manifest['study']}: {len(manifest['workers'])} queue worker job(s)", *lines,
                *queue_status_lines(FileQueue(manifest["queue"]).status())]
    head = f"{manifest['study']}: " + ", ".join(f"{n} {word}" for word, n in counts.items())
    return [head, *lines]


def cancel(folder: Path) -> list[str]:
    """scancel every job of the study that is still pending or running; returns their ids."""
    manifest = read_manifest(folder)
    jobs = [e["job"] for e in manifest["experiments"]] + manifest["workers"]
    if manifest.get("summary"):
        jobs.append(manifest["summary"])
    states = slurm_states(jobs)
    live = [job for job in jobs if states.get(job) in ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING")]
    if live:
        subprocess.run(["scancel", *live], capture_output=True, text=True, timeout=60, check=False)
    return live


def describe_plan(experiments: Sequence[Experiment], depends: Mapping[int, list[int]],
                  settings: Mapping[str, Any]) -> list[str]:
    """What `--launcher slurm` would submit, for `--dry`."""
    names = {e.index: e.name for e in experiments}
    resources = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "folder")
    lines = [f"Slurm submission ({resources}):"]
    for number, group in enumerate(plan(experiments, depends)):
        kind = f"array of {len(group.indices)}" if len(group.indices) > 1 else "job"
        members = ", ".join(f"{i} ({names[i]})" for i in group.indices)
        after = f" after {', '.join(map(str, group.after))} (afterany, skipped unless done)" if group.after else ""
        lines.append(f"  group {number}: {kind}: {members}{after}")
    return lines

