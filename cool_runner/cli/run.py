"""`run.py` / `cool-run`: argument parsing for running a study."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..console import Console
from ..errors import UsageError
from . import Parser, entry

DEFAULT_EXPERIMENT_FILE = "experiment.yaml"


def parse_pick(values: Sequence[str] | None) -> list[int] | None:
    """`--pick 0,1,3` or `--pick 0 1 3` into a list of indices (checked against the study by `select`)."""
    if values is None:
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


def positive(text: str) -> int:
    """A whole number of at least 1, for --workers and --per-gpu."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def run_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="run.py", allow_abbrev=False,
        description="Expand an experiment file and run every experiment with its Module. "
                    "+key.path=value arguments change the default config; other arguments are passed on to the "
                    "Module in sys.argv, except near-misses of run.py's own options (--dyr), which are refused. "
                    "Everything after -- is passed on as it is.")
    parser.add_argument("--exp", default=None, metavar="FILE",
                        help=f"experiment file (default: {DEFAULT_EXPERIMENT_FILE} in the current folder)")
    parser.add_argument("--dry", action="store_true", help="parse and print the experiments; run nothing")
    parser.add_argument("--pick", "--cherrypick-experiments", nargs="+", metavar="INDEX",
                        help="run only these indices of the expanded list, e.g. 0,1,3 or 0 1 3")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed experiment")
    parser.add_argument("--seed", type=int, default=None, help="seed for the RND_IDX values (default: random)")
    parser.add_argument("--skip-done", action="store_true",
                        help="leave out experiments whose definition already has a done record in its YamlLog")
    parser.add_argument("--retry", metavar="LOG",
                        help="run again the experiments whose latest record in LOG is failed or interrupted "
                             "(or has a --status you give), appending to LOG; the experiment file is not read")
    slots = parser.add_argument_group("slots", "experiments run in worker processes, N at a time "
                                               "(defaults from Global.workers, gpus, per_gpu, isolate)")
    slots.add_argument("--workers", type=positive, metavar="N",
                       help="run N experiments at once (default 1); with --launcher slurm and a queue, the number "
                            "of worker jobs")
    slots.add_argument("--gpus", metavar="IDS", help="one slot per GPU, e.g. 0,1,2,3 or all (what nvidia-smi -L "
                                                     "lists); each slot's CUDA_VISIBLE_DEVICES names its GPU")
    slots.add_argument("--per-gpu", type=positive, metavar="N", help="slots per GPU with --gpus (default 1)")
    slots.add_argument("--isolate", action="store_true", default=None,
                       help="a fresh process for every experiment (default: one long-lived process per slot)")
    slots.add_argument("--in-process", action="store_true",
                       help="run every experiment inside run.py, one after another (for debuggers)")
    queue = parser.add_argument_group("queue", "with Global.queue (or --queue), experiments wait in an editable file")
    queue.add_argument("--queue", metavar="FILE", help="queue file (default: Global.queue of the experiment file)")
    mode = queue.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="work on the existing queue without reading the experiment file; also puts back the "
                           "experiments of workers that died")
    mode.add_argument("--fresh", action="store_true", help="replace the pending experiments of an existing queue")
    mode.add_argument("--status", nargs="?", const=True, metavar="STATUSES",
                      help="print the queue's pending, running and finished counts; with --retry, the statuses "
                           "to run again, e.g. failed,interrupted")
    mode.add_argument("--add", metavar="YAML", help="append the documents of this file to the queue and exit")
    mode.add_argument("--cancel", action="store_true", help="cancel the study's Slurm jobs still pending or running")
    cluster = parser.add_argument_group("cluster", "submit the study to Slurm instead of running it here")
    cluster.add_argument("--launcher", choices=("local", "slurm"), default=None,
                         help="where experiments run (default: Global.launcher, else local)")
    return parser


def _distance(a: str, b: str) -> int:
    """Edit distance in which swapping two neighbouring letters counts as one edit (`dyr` is one from `dry`)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def near_miss(argument: str, parser: argparse.ArgumentParser) -> str | None:
    """The option of run.py that `argument` (one it does not know) was probably meant to be, if any."""
    if not argument.startswith("-") or argument.lstrip("-")[:1].isdigit() or argument.startswith("-."):
        return None  # a value, or a negative number
    name = argument.split("=", 1)[0].lstrip("-").lower().replace("_", "-")
    if len(name) < 2:
        return None  # -q, -v: too short to say anything about
    best, best_distance = None, None
    for action in parser._actions:
        for option in action.option_strings:
            if not option.startswith("--"):
                continue
            target = option[2:]
            distance = _distance(name, target)
            if distance <= (1 if len(target) <= 6 else 2) and (best_distance is None or distance < best_distance):
                best, best_distance = option, distance
    return best


def split_arguments(argv: Sequence[str], parser: argparse.ArgumentParser
                    ) -> tuple[argparse.Namespace, list[str], list[str]]:
    """run.py's options, the `+key=value` overrides, and the arguments left for the module.

    Everything after the first `--` goes to the module as it is. Before it, an unknown argument that is one
    typo away from an option of run.py (`--dyr`, `--pic 0`) is refused rather than handed on, so the
    whole study does not run with the option silently ignored.
    """
    argv = list(argv)
    head, tail = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    overrides = [a for a in head if a.startswith("+")]
    args, extra = parser.parse_known_args([a for a in head if not a.startswith("+")])
    for argument in extra:
        match = near_miss(argument, parser)
        if match is not None:
            raise UsageError(f"not an option of {parser.prog}; did you mean {match}?", option=argument,
                             hint=f"an argument for your module that looks like this goes after --: "
                                  f"{parser.prog} ... -- {argument}")
    return args, overrides, [*extra, *tail]


def experiment_file(given: str | None, prog: str, *, queue_hint: bool = False) -> str:
    """The experiment file to read: --exp, else experiment.yaml of the current folder when there is one."""
    if given is not None:
        return given
    if not os.path.exists(DEFAULT_EXPERIMENT_FILE):
        what = "the queue with --queue FILE or your experiment file" if queue_hint else "your experiment file"
        raise UsageError(f"there is no {DEFAULT_EXPERIMENT_FILE} in the current folder ({os.getcwd()})",
                         hint=f"name {what} with --exp FILE, e.g. {prog} --exp studies/my-study.yaml, or start "
                              f"{prog} in the folder that holds {DEFAULT_EXPERIMENT_FILE}")
    return DEFAULT_EXPERIMENT_FILE


def run_command(argv: list[str], console: Console) -> int:
    parser = run_parser()
    args, overrides, forwarded = split_arguments(argv, parser)
    # Imported only now, so that --help and a bad option answer at once.
    from ..run.session import RunOptions, add_to_queue, queue_of, resume_queue, retry_study, run_study, status_lines

    options = RunOptions(overrides=overrides, pick=parse_pick(args.pick), dry=args.dry, seed=args.seed,
                         fail_fast=args.fail_fast, queue=args.queue, fresh=args.fresh, argv=forwarded,
                         workers=args.workers, gpus=args.gpus, per_gpu=args.per_gpu, isolate=args.isolate,
                         in_process=args.in_process, launcher=args.launcher, skip_done=args.skip_done,
                         debug=bool(os.environ.get("COOL_RUNNER_DEBUG")))
    if args.skip_done and (args.resume or args.status or args.add or args.retry or args.cancel):
        raise UsageError("--skip-done applies when the experiment file is expanded", option="--skip-done",
                         hint="leave it out with --resume, --status, --add, --cancel and --retry")
    if isinstance(args.status, str) and not args.retry:
        raise UsageError("a list of statuses only goes with --retry", option="--status",
                         hint="--status alone shows a queue's state")
    if args.retry:
        if args.resume or args.add or args.fresh or args.status is True:
            raise UsageError("--retry does not go with --resume, --fresh, --add or a bare --status",
                             option="--retry", hint="e.g. --retry logs/log.yaml --status failed,interrupted")
        if isinstance(args.status, str):
            options.retry_status = args.status.replace(",", " ").split()
        return retry_study(args.retry, options, console)
    if args.cancel or (args.status and not args.queue):
        from ..run.launch import slurm_folder

        study_file = experiment_file(args.exp, parser.prog, queue_hint=args.status)
        folder = slurm_folder(study_file, overrides)
        if folder is not None:
            return slurm_command(folder, cancel=args.cancel, console=console)
        if args.cancel:
            raise UsageError(f"{study_file} was not submitted to Slurm", option="--cancel",
                             hint="--cancel stops the jobs of a study run with --launcher slurm")
    if args.resume or args.status or args.add:
        queue = args.queue or queue_of(experiment_file(args.exp, parser.prog, queue_hint=True), overrides)
        if args.status:
            from ..queue.filequeue import FileQueue

            for line in status_lines(FileQueue(queue).status()):
                console.print(line)
            return 0
        if args.add:
            count = add_to_queue(queue, args.add)
            console.print(f"added {count} experiment(s) to {queue}")
            return 0
        return resume_queue(queue, options, console, experiment_file=args.exp)
    return run_study(experiment_file(args.exp, parser.prog), options, console)


def slurm_command(folder: str, *, cancel: bool, console: Console) -> int:
    """`--status` or `--cancel` for a study submitted to Slurm."""
    from pathlib import Path

    from ..run.slurm import cancel as cancel_jobs
    from ..run.slurm import status_lines as slurm_status_lines

    if cancel:
        cancelled = cancel_jobs(Path(folder))
        console.print(f"cancelled {len(cancelled)} job(s)" + (f": {', '.join(cancelled)}" if cancelled else ""))
        return 0
    for line in slurm_status_lines(Path(folder)):
        console.print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`run.py` / `cool-run`."""
    return entry("run.py", run_command, argv)
