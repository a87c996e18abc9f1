"""Command-line entry points: the only place that parses arguments and turns errors into exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Callable

from .console import Console
from .errors import CoolRunnerError, UsageError
from .expand import Expander, Experiment, load_study
from .imports import find_module, importable, search_paths
from .runner import MemorySource, Runner
from .yamlio import dump, to_plain

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
    parser = argparse.ArgumentParser(
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
    picked = parse_pick(args.pick)
    study = load_study(args.exp, overrides)
    expander = Expander(study, rng=random.Random(args.seed))
    experiments = select(expander.expand(), picked)
    paths = search_paths(args.exp)
    if args.dry:
        return dry_run(experiments, paths, console)
    runner = Runner(console, paths=paths, fail_fast=args.fail_fast)
    with module_argv(extra):
        runner.preload(experiments)
        summary = runner.run(MemorySource(experiments))
    return summary.exit_code


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
