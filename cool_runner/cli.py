"""Command-line entry points: the only place that parses arguments and turns errors into exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NoReturn

from .collecting import CACHE_NAME, MARK, Cache, collect, write_documents, write_new
from .console import Console, Progress
from .errors import CoolRunnerError, UsageError
from .expand import Expander, Experiment, load_study
from .imports import find_module, importable, search_paths
from .jobqueue import FileQueue
from .notify import SlackNotifier, slack_settings
from .querying import FORMATS, SUFFIXES, Query, aggregate, compile_lambda, load_records
from .runner import MemorySource, Runner, Terminated
from .yamlio import atomic_write, dump, to_plain

log = logging.getLogger("cool_runner")


def _setup_logging(stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False


def _entry(prog: str, command: Callable[[list[str], Console], int], argv: Sequence[str] | None) -> int:
    """Run a command; user errors become one line on stderr and their exit code, bugs keep the traceback."""
    console = Console()
    _setup_logging(console.err)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return command(args, console)
    except CoolRunnerError as exc:
        if os.environ.get("COOL_RUNNER_DEBUG"):
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=console.err, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: stopped", file=console.err, flush=True)
        return 130
    except BrokenPipeError:
        # The reader went away (`run.py --dry | head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is a one-line UsageError (exit 2) like every other input error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, hint=f"see {self.prog} --help")


def parse_pick(values: Sequence[str] | None) -> list[int] | None:
    """`--pick 0,1,3` or `--pick 0 1 3` into a list of indices."""
    if not values:
        return None
    picked = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                picked.append(int(part))
            except ValueError:
                raise UsageError(f"{part!r} is not an experiment index", option="--pick",
                                 hint="give indices of the expanded list, e.g. --pick 0,1,3") from None
    return picked


def select(experiments: list[Experiment], picked: list[int] | None) -> list[Experiment]:
    if picked is None:
        return experiments
    for index in picked:
        if not 0 <= index < len(experiments):
            raise UsageError(f"index {index} is out of range: the file expands to {len(experiments)} "
                             f"experiment(s), numbered 0 to {len(experiments) - 1}", option="--pick",
                             hint="see them with --dry")
    return [experiments[index] for index in picked]


def run_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="run.py", allow_abbrev=False,
        description="Expand an experiment file and run every experiment with its Module. "
                    "+key.path=value arguments change the default config; other unknown arguments are passed "
                    "on to the Module in sys.argv.")
    parser.add_argument("--exp", default="experiment.yaml", help="experiment file (default: experiment.yaml)")
    parser.add_argument("--dry", action="store_true", help="parse and print the experiments; run nothing")
    parser.add_argument("--pick", "--cherrypick-experiments", nargs="+", metavar="INDEX",
                        help="run only these indices of the expanded list, e.g. 0,1,3 or 0 1 3")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed experiment")
    parser.add_argument("--seed", type=int, default=None, help="seed for the RND_IDX values (default: random)")
    queue = parser.add_argument_group("queue", "with Global.queue (or --queue), experiments wait in an editable file")
    queue.add_argument("--queue", metavar="FILE", help="queue file (default: Global.queue of the experiment file)")
    mode = queue.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="work on the existing queue without reading the experiment file; also puts back the "
                           "experiments of workers that died")
    mode.add_argument("--fresh", action="store_true", help="replace the pending experiments of an existing queue")
    mode.add_argument("--status", action="store_true", help="print the queue's pending, running and finished counts")
    mode.add_argument("--add", metavar="YAML", help="append the documents of this file to the queue and exit")
    return parser


@contextmanager
def module_argv(extra: list[str]) -> Iterator[None]:
    """Leave the arguments run.py did not use in sys.argv for the module's own parser."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "run.py", *extra]
    try:
        yield
    finally:
        sys.argv = saved


def run_command(argv: list[str], console: Console) -> int:
    overrides = [a for a in argv if a.startswith("+")]
    rest = [a for a in argv if not a.startswith("+")]
    args, extra = run_parser().parse_known_args(rest)
    paths = search_paths(args.exp)
    if args.resume or args.status or args.add:
        queue = FileQueue(args.queue or _queue_of(args.exp, overrides))
        if args.status:
            print_status(queue.status(), console)
            return 0
        if args.add:
            return add_to_queue(queue, args.add, console)
        config = queue.config()
        runner = make_runner(console, paths, args, config.get("settings") or {}, config.get("defaults") or {},
                             str(queue.path))
        return run_queue(runner, queue, extra, console)
    picked = parse_pick(args.pick)
    study = load_study(args.exp, overrides)
    expander = Expander(study, rng=random.Random(args.seed))
    experiments = select(expander.expand(), picked)
    if args.dry:
        return dry_run(experiments, paths, console)
    runner = make_runner(console, paths, args, study.settings, study.defaults, study.path)
    queue_path = args.queue or study.settings["queue"]
    with module_argv(extra):
        runner.preload(experiments)
    if queue_path:
        queue = FileQueue(queue_path)
        queue.fill(experiments, study, fresh=args.fresh)
        return run_queue(runner, queue, extra, console)
    with module_argv(extra):
        return runner.run(MemorySource(experiments)).exit_code


def make_runner(console: Console, paths: list[str], args: argparse.Namespace, settings: dict, defaults: dict,
                file: str) -> Runner:
    """The runner, with Slack notifications when Global.slack is on (checked before anything runs)."""
    listeners = []
    slack = slack_settings(settings, file)
    if slack is not None:
        listeners.append(SlackNotifier(slack, host=socket.gethostname(), desc=defaults.get("Desc"), warn=console.warn))
    return Runner(console, paths=paths, fail_fast=args.fail_fast, listeners=listeners)


def _queue_of(experiment_file: str, overrides: list[str]) -> str:
    """The queue named by the experiment file's Global.queue (or a +Global.queue override)."""
    study = load_study(experiment_file, overrides)
    if not study.settings["queue"]:
        raise UsageError(f"{experiment_file} sets no Global.queue", option="--resume/--status",
                         hint="name the queue file with --queue FILE")
    return study.settings["queue"]


def add_to_queue(queue: FileQueue, path: str, console: Console) -> int:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", option="--add") from exc
    count = queue.append(text, path)
    console.print(f"added {count} experiment(s) to {queue.path}")
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def run_queue(runner: Runner, queue: FileQueue, extra: list[str], console: Console) -> int:
    for name in queue.open():
        console.print(f"put back in the queue: {name}")
    previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    try:
        with module_argv(extra):
            return runner.run(queue).exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        queue.close()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def print_status(status: dict, console: Console) -> None:
    if not status["exists"] and not status["pending"]:
        console.print(f"{status['queue']}: no queue (finished, or never started)")
        return
    counts = status["counts"]
    parts = [f"{status['pending']} pending", f"{len(status['running'])} running"]
    parts += [f"{counts.get(key, 0)} {key}" for key in ("done", "failed", "interrupted", "skipped", "rejected")]
    console.print(f"{status['queue']}: " + ", ".join(parts))
    for entry in status["running"]:
        note = "" if entry["alive"] else "  (worker gone: --resume puts it back)"
        console.print(f"  running {entry['name']} on {entry['host']} pid {entry['pid']} since {entry['since']}{note}")
    if status["rejected"]:
        console.print(f"  rejected documents are in {status['rejected']}")


def dry_run(experiments: list[Experiment], paths: list[str], console: Console) -> int:
    """Print every experiment as it would run; import nothing, solve nothing, write nothing."""
    with importable(paths):
        for module in sorted({e.values["Module"] for e in experiments if not e.skipped}):
            find_module(module)
    for experiment in experiments:
        title = f"[{experiment.index}] {experiment.name if experiment.name is not None else '(unnamed)'}"
        if experiment.skipped:
            title += " (skipped: Name is skip)"
        console.print(console.paint(title, "bold"))
        text = dump(to_plain(experiment.values))
        console.print("".join(f"    {line}\n" for line in text.splitlines()).rstrip("\n"))
    console.print(f"{len(experiments)} experiment(s); nothing was run (--dry)")
    return 0


def run_main(argv: Sequence[str] | None = None) -> int:
    """`run.py` / `cool-run`."""
    return _entry("run.py", run_command, argv)


def collect_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="collect.py", description="Gather the records of every .yaml/.yml log under PATHs into one new file.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders (searched recursively) or log files")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="NAME",
                        help="skip files or folders by name, glob (e.g. '*_tmp') or path")
    parser.add_argument("--dest", default="collected", help="folder of the new file (default: collected)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every folder visited with its count")
    parser.add_argument("--follow-links", action="store_true", help="follow symlinked folders (loops are safe)")
    parser.add_argument("--no-cache", action="store_true", help="read every file again instead of using the cache")
    parser.add_argument("--jobs", type=int, default=None, help="parallel readers (default: one per core)")
    return parser


def collect_command(argv: list[str], console: Console) -> int:
    args = collect_parser().parse_args(argv)
    cache = Cache(None if args.no_cache else Path(args.dest) / CACHE_NAME)
    progress = Progress(0, "reading logs", console.err)
    collection = collect(args.paths, exclude=args.exclude, follow_links=args.follow_links, skip_dirs=[args.dest],
                         cache=cache, jobs=args.jobs, progress=progress)
    progress.close()
    for path, reason in collection.skipped:
        log.warning("skipped %s", reason if reason.startswith(path) else f"{path}: {reason}")
    if args.verbose:
        for folder, count in collection.folders.items():
            console.print(f"{folder}: {count} record(s)")
    output = write_documents(args.dest, "logs", collection.documents,
                             f"collect: {len(collection.documents)} records from {', '.join(args.paths)}")
    cache.save()
    parts = [f"{collection.files} file(s)", f"{collection.duplicates} duplicate(s) dropped",
             f"{len(collection.skipped)} file(s) skipped"]
    if collection.cached:
        parts.append(f"{collection.cached} from the cache")
    console.print(f"collected {len(collection.documents)} record(s) from " + ", ".join(parts))
    console.print(str(output))
    return 0


class _ArgsFileParser(Parser):
    """`%FILE` reads arguments from FILE, one per line; blank lines are ignored."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        line = arg_line.rstrip("\r\n")
        return [line] if line.strip() else []


def filter_parser() -> argparse.ArgumentParser:
    parser = _ArgsFileParser(
        prog="filter.py", fromfile_prefix_chars="%",
        description="Filter, sort, trim, group and export .yaml logs. %%FILE reads arguments from FILE, one per line.")
    parser.add_argument("paths", nargs="+", metavar="LOGFILE", help=".yaml log files (e.g. from collect.py)")
    parser.add_argument("--filter", action="append", default=[], metavar="LAMBDA",
                        help="keep records for which this returns true; several must all hold")
    parser.add_argument("--sort", action="append", default=[], metavar="LAMBDA",
                        help="stable sort by this key; with several, the last one is the primary key")
    parser.add_argument("--reverse", action="store_true", help="reverse every sort")
    parser.add_argument("--keep-keys", nargs="*", default=None, metavar="KEY",
                        help="keep only these keys (a.b for nested ones), in this order; none given keeps all")
    parser.add_argument("--group-by", nargs="+", default=None, metavar="KEY", help="group records by these keys")
    parser.add_argument("--agg", nargs="+", default=[], metavar="KEY",
                        help="with --group-by: count, mean, std, min and max of these keys per group")
    parser.add_argument("--format", choices=sorted(FORMATS), default=None,
                        help="yaml (default), json, csv, or table (printed); --group-by prints a table by default")
    parser.add_argument("--dest", default="filtered", help="folder of the new file (default: filtered)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE", help="write here instead ('-': stdout)")
    return parser


def filter_command(argv: list[str], console: Console) -> int:
    args = filter_parser().parse_args(argv)
    if args.agg and not args.group_by:
        raise UsageError("--agg needs --group-by", option="--agg", hint="e.g. --group-by Name --agg ACC")
    query = Query(filters=[compile_lambda(t, "--filter") for t in args.filter],
                  sorts=[compile_lambda(t, "--sort") for t in args.sort], reverse=args.reverse,
                  keep=args.keep_keys or None)
    records, sources = load_records(args.paths)
    kept = query.apply(records)
    rows = aggregate(kept, args.group_by, args.agg) if args.group_by else kept
    fmt = args.format or ("table" if args.group_by else "yaml")
    if fmt == "yaml" and not args.group_by and not query.keep:
        text = "".join(f"---\n{sources[id(record)]}" for record in kept)  # each record's own text, as written
    else:
        text = FORMATS[fmt](rows)
    if args.output == "-" or (args.output is None and fmt == "table"):
        console.out.write(text)
        console.out.flush()
    elif args.output:
        atomic_write(args.output, _marked(text, fmt))
        console.print(args.output)
    else:
        console.print(str(write_new(args.dest, "filtered", SUFFIXES[fmt], _marked(text, fmt))))
    summary = f"loaded {len(records)} record(s), kept {len(kept)}"
    if args.group_by:
        summary += f" in {len(rows)} group(s)"
    print(summary, file=console.err)
    if query.missing_filter:
        print(f"{query.missing_filter} record(s) lacked a key a --filter uses: treated as not matching",
              file=console.err)
    if query.missing_sort:
        print(f"{query.missing_sort} record(s) lacked a key a --sort uses: put last", file=console.err)
    return 0


def _marked(text: str, fmt: str) -> str:
    """YAML output starts with the tools' mark (a comment), so collect never gathers it again."""
    return f"{MARK}filter\n{text}" if fmt == "yaml" else text


def collect_main(argv: Sequence[str] | None = None) -> int:
    """`collect.py` / `cool-collect`."""
    return _entry("collect.py", collect_command, argv)


def filter_main(argv: Sequence[str] | None = None) -> int:
    """`filter.py` / `cool-filter`."""
    return _entry("filter.py", filter_command, argv)
