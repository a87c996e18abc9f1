"""A whole run as the CLI starts it, as a Python API: expand, pick, dry run, memory or queue, signals, Slack."""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..console import Console
from ..emitter import Emitter
from ..errors import ConfigError, Terminated, UsageError
from ..files import read_regular, write_problem
from ..keys import host_name
from ..study.expand import Expander, Experiment
from ..study.load import load_study, require_experiments
from .deps import dependency_lines
from .importing import find_module, importable, search_paths

if TYPE_CHECKING:
    from ..queue.filequeue import FileQueue
    from .runner import Listener, Runner

log = logging.getLogger("cool_runner")


@dataclass
class RunOptions:
    """What a run is asked to do besides the experiment file (the options of `run.py`)."""

    overrides: Sequence[str] = ()
    pick: Sequence[int] | None = None
    dry: bool = False
    seed: int | None = None
    fail_fast: bool = False
    queue: str | None = None
    fresh: bool = False
    argv: Sequence[str] = ()
    #: `slurm` submits the study instead of running it (None: Global.launcher).
    launcher: str | None = None
    #: Keys added to every experiment before it runs (SLURM_JOB_ID in a cluster job).
    stamp: dict[str, Any] = field(default_factory=dict)
    #: Show a failure's whole traceback, cool-runner's own frames included (COOL_RUNNER_DEBUG=1).
    debug: bool = False
    listeners: list[Listener] = field(default_factory=list)
    #: Slots and isolation; None takes the experiment file's Global setting.
    workers: int | None = None
    gpus: str | None = None
    per_gpu: int | None = None
    isolate: bool | None = None
    #: Run experiments inside this process, one after another, as before the engine (for debuggers).
    in_process: bool = False
    #: Leave out experiments whose definition already has a `done` record in its YamlLog (--skip-done).
    skip_done: bool = False
    #: With `retry_study`: the statuses whose experiments run again (--retry LOG --status ...).
    retry_status: Sequence[str] = ("failed", "interrupted")


def select(experiments: list[Experiment], picked: Sequence[int] | None) -> list[Experiment]:
    """The experiments at these indices of the expanded list, in the order given; each index once."""
    if picked is None:
        return experiments
    if not picked:
        raise UsageError("no index given", option="--pick", hint="give indices of the expanded list, e.g. "
                                                                 "--pick 0,1,3; without --pick every experiment runs")
    seen: set[int] = set()
    for index in picked:
        if index in seen:
            raise UsageError(f"index {index} is given more than once", option="--pick",
                             hint="list each index once; to run an experiment several times, use Repeat or "
                                  "Global.repeat")
        seen.add(index)
        if not 0 <= index < len(experiments):
            raise UsageError(f"index {index} is out of range: the file expands to {len(experiments)} "
                             f"experiment(s), numbered 0 to {len(experiments) - 1}", option="--pick",
                             hint="see them with --dry")
    return [experiments[index] for index in picked]


@contextmanager
def module_argv(extra: Sequence[str]) -> Iterator[None]:
    """Leave the arguments run.py did not use in sys.argv for the module's own parser."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "run.py", *extra]
    try:
        yield
    finally:
        sys.argv = saved


def run_study(path: str, options: RunOptions | None = None, console: Console | None = None) -> int:
    """Expand an experiment file and run it (in memory, or through `Global.queue`); returns the exit code."""
    options = options or RunOptions()
    console = console or Console()
    study = load_study(path, options.overrides)
    require_experiments(study)
    expander = Expander(study, rng=random.Random(options.seed))
    experiments = expander.expand()
    if options.skip_done or not options.dry:
        expander.identify(experiments)  # before picking: identical definitions are counted in file order
    experiments = select(experiments, options.pick)
    paths = search_paths(path)
    slurm = (options.launcher or study.settings["launcher"]) == "slurm"
    done: dict[int, str] = {}
    if options.skip_done:
        from .previous import done_in_logs

        done = done_in_logs(experiments)
    if options.dry and not slurm:
        return dry_run(experiments, paths, console, done)
    if done:
        console.print(skipped_line(done, len(experiments)))
        experiments = [experiment for experiment in experiments if experiment.index not in done]
    if slurm:
        from .launch import submit_to_slurm

        return submit_to_slurm(study, experiments, paths, options, console)
    from .runner import MemorySource  # not before: --dry needs none of the running machinery

    if options.queue:
        check_queue_path(options.queue)
    runner = make_runner(console, paths, options, study.settings, study.defaults, study.path)
    queue_path = options.queue or study.settings["queue"]
    try:
        with module_argv(options.argv):
            runner.preload(experiments)
        if queue_path:
            from ..queue.filequeue import FileQueue

            queue = FileQueue(queue_path)
            queue.fill(experiments, study, fresh=options.fresh, paths=paths)
            return serve_queue(runner, queue, options.argv, console)
        with module_argv(options.argv):
            return runner.run(MemorySource(experiments)).exit_code
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()


def skipped_line(done: dict[int, str], total: int) -> str:
    """`--skip-done: 3 of 5 experiment(s) already done in logs/a.yaml ...`."""
    logs = ", ".join(sorted(set(done.values())))
    return (f"--skip-done: {len(done)} of {total} experiment(s) already have a done record in {logs} "
            "(same definition, REP and GLOBAL_REP); they are not run again")


def retry_study(log: str, options: RunOptions | None = None, console: Console | None = None) -> int:
    """Run again the experiments whose latest record in `log` has one of `options.retry_status`; their new
    records are appended to `log`. Returns the exit code."""
    options = options or RunOptions()
    console = console or Console()
    if options.queue:
        raise UsageError("--retry runs in memory, not through a queue", option="--retry",
                         hint="leave out --queue")
    from .previous import parse_statuses, pick, to_retry
    from .runner import MemorySource

    statuses = parse_statuses(options.retry_status)
    experiments = to_retry(log, statuses)
    if not experiments:
        console.print(f"nothing to retry: no experiment's latest record in {log} is {' or '.join(statuses)}")
        return 0
    experiments = pick(experiments, options.pick)
    files = sorted({experiment.file for experiment in experiments if experiment.file})
    paths = [path for file in [*files, log] for path in search_paths(file)]
    if options.dry:
        return dry_run(experiments, list(dict.fromkeys(paths)), console)
    console.print(f"retrying {len(experiments)} experiment(s) from {log} ({', '.join(statuses)})")
    runner = make_runner(console, list(dict.fromkeys(paths)), options, {}, {}, log)
    try:
        with module_argv(options.argv):
            runner.preload(experiments)
            return runner.run(MemorySource(experiments)).exit_code
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()


def resume_queue(queue_path: str, options: RunOptions | None = None, console: Console | None = None,
                 experiment_file: str | None = None) -> int:
    """Work on an existing queue without reading an experiment file; returns the exit code."""
    from ..queue.filequeue import FileQueue

    options = options or RunOptions()
    console = console or Console()
    check_queue_path(queue_path)
    queue = FileQueue(queue_path)
    config = queue.config()
    # Where the worker that filled the queue found modules first (a module beside the experiment file), then here.
    paths = list(dict.fromkeys([*queue.module_paths(), *search_paths(experiment_file)]))
    runner = make_runner(console, paths, options, config.get("settings") or {}, config.get("defaults") or {},
                         str(queue.path))
    return serve_queue(runner, queue, options.argv, console)


def check_queue_path(queue_path: str) -> None:
    """Refuse a queue that could not be written (a folder, a path under /proc, ...) before anything runs."""
    problem = write_problem(queue_path)
    if problem:
        raise UsageError(f"{queue_path} {problem}", option="--queue",
                         hint="give the path of a file in a folder you can write to")


def queue_of(experiment_file: str, overrides: Sequence[str] = ()) -> str:
    """The queue named by the experiment file's Global.queue (or a +Global.queue override)."""
    study = load_study(experiment_file, overrides)
    if not study.settings["queue"]:
        raise UsageError(f"{experiment_file} sets no Global.queue", option="--resume/--status",
                         hint="name the queue file with --queue FILE")
    return study.settings["queue"]


def add_to_queue(queue_path: str, yaml_path: str) -> int:
    """Append the documents of a YAML file to a queue under its lock; returns how many were added."""
    from ..queue.filequeue import FileQueue

    check_queue_path(queue_path)
    try:
        text = read_regular(yaml_path).decode("utf-8")
    except ConfigError as exc:
        raise UsageError(f"cannot read {yaml_path}: {exc.what}", option="--add") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read {yaml_path}: not UTF-8 text ({exc.reason})", option="--add") from exc
    return FileQueue(queue_path).append(text, yaml_path)


def make_runner(console: Console, paths: list[str], options: RunOptions, settings: dict[str, Any],
                defaults: dict[str, Any], file: str) -> Runner:
    """The engine (or, with `in_process`, the in-process runner), with Slack notifications when Global.slack is
    on; settings are checked before anything runs."""
    from .gpus import layout, parse_gpus
    from .runner import Runner

    def choose(option: Any, key: str) -> Any:
        return option if option is not None else settings.get(key)

    gpus_given = options.gpus if options.gpus is not None else settings.get("gpus")
    gpus = parse_gpus(gpus_given, "--gpus" if options.gpus is not None else "Global.gpus")
    slots = layout(choose(options.workers, "workers"), gpus, choose(options.per_gpu, "per_gpu"))
    isolate = bool(choose(options.isolate, "isolate"))
    if options.in_process and (len(slots) > 1 or gpus or isolate):
        raise UsageError("runs everything inside run.py, one experiment at a time", option="--in-process",
                         hint="leave out --workers, --gpus and --isolate (and their Global settings) with it")
    listeners = list(options.listeners)
    if settings.get("slack"):
        from .notify import SlackNotifier, slack_settings

        slack = slack_settings(settings, file)
        if slack is not None:
            listeners.append(SlackNotifier(slack, host=host_name(), desc=defaults.get("Desc"),
                                           warn=console.warn))
    metadata = settings.get("metadata", True) is not False
    if options.in_process:
        return Runner(console, paths=paths, fail_fast=options.fail_fast, listeners=listeners, stamp=options.stamp,
                      metadata=metadata, debug=options.debug)
    from .engine import Engine  # only here: --in-process needs no worker processes

    return Engine(console, paths=paths, fail_fast=options.fail_fast, listeners=listeners, slots=slots,
                  isolate=isolate, runs_dir=str(settings.get("runs_dir") or "runs"), argv=options.argv,
                  stamp=options.stamp, metadata=metadata, debug=options.debug)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def serve_queue(runner: Runner, queue: FileQueue, argv: Sequence[str], console: Console) -> int:
    """Take experiments from a file queue until it is empty; SIGTERM and SIGHUP put the running one back."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: leave it ignored
                previous[signum] = signal.signal(signum, _terminate)
    try:
        for name in queue.open():
            console.print(f"put back in the queue: {name}")
        with module_argv(argv):
            summary = runner.run(queue)
    except Terminated as stop:  # while opening the queue; the runner handles it once it runs
        console.print(console.paint(f"stopped by {signal.Signals(stop.signum).name}", "yellow"))
        return stop.exit_code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        queue.close()
    if queue.drained:
        console.print(f"{queue.path}: nothing pending; the file stays (empty) for more: add documents and "
                      f"run.py --resume --queue {queue.path}")
    return summary.exit_code


def dry_run(experiments: list[Experiment], paths: list[str], console: Console,
            done: dict[int, str] | None = None) -> int:
    """Print every experiment as it would run; import nothing, solve nothing, write nothing.

    `done` marks the experiments --skip-done leaves out. Output goes in large chunks through a small emitter
    of our own: PyYAML's pure-Python representer would take several times as long as parsing the file.
    """
    done = done or {}
    with importable(paths):
        for module in sorted({e.values["Module"] for e in experiments if not e.skipped}):
            find_module(module)
    emitter = Emitter()
    chunk: list[str] = []
    for experiment in experiments:
        title = f"[{experiment.index}] {experiment.name if experiment.name is not None else '(unnamed)'}"
        grid = experiment.values.get("GRID")
        if isinstance(grid, dict):
            title += "  Grid " + " ".join(f"{key}={value}" for key, value in grid.items())
        if experiment.skipped:
            title += " (skipped: Name is skip)"
        elif experiment.index in done:
            title += f" (skipped by --skip-done: done in {done[experiment.index]})"
        elif experiment.after:
            title += f"  (after {', '.join(str(index) for index in experiment.after)})"
        chunk.append(console.paint(title, "bold"))
        chunk.append(emitter.dump(experiment.values, "    ").rstrip("\n"))
        if len(chunk) >= 1000:
            console.print("\n".join(chunk))
            chunk = []
    if chunk:
        console.print("\n".join(chunk))
    for line in dependency_lines(experiments):
        console.print(line)
    line = f"{len(experiments)} experiment(s); nothing was run (--dry)"
    if done:
        line += f"; --skip-done would leave out {len(done)}"
    console.print(line)
    return 0


def status_lines(status: dict[str, Any]) -> list[str]:
    """A queue's status (from `FileQueue.status`) as lines for people."""
    from ..keys import STATUSES
    from ..queue.state import DROPPED, REJECTED

    if not status["exists"] and not status["pending"]:
        return [f"{status['queue']}: no queue here"]
    counts = status["counts"]
    parts = [f"{status['pending']} pending", f"{len(status['running'])} running"]
    parts += [f"{counts.get(key, 0)} {key}" for key in (*STATUSES, REJECTED, DROPPED)]
    lines = [f"{status['queue']}: " + ", ".join(parts)]
    for entry in status["running"]:
        note = "" if entry["alive"] else "  (worker gone: --resume puts it back)"
        if entry.get("unlogged"):
            note = "  (its record could not be written: --resume puts it back)"
        slot = f" slot {entry['slot']}" if entry.get("slot") is not None else ""
        slot += f" GPU {entry['gpu']}" if entry.get("gpu") is not None else ""
        lines.append(f"  running {entry['name']} on {entry['host']} pid {entry['pid']}{slot} since {entry['since']}"
                     f"{note}")
    if status["rejected"]:
        lines.append(f"  rejected documents are in {status['rejected']}")
    return lines
