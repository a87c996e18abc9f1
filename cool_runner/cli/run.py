"""`run.py` / `cool-run`: argument parsing for running a study."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..console import Console
from ..errors import UsageError
from ..run.session import RunOptions, add_to_queue, queue_of, resume_queue, run_study, status_lines
from . import Parser, entry


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
                    "+key.path=value arguments change the default config; other unknown arguments are passed "
                    "on to the Module in sys.argv.")
    parser.add_argument("--exp", default="experiment.yaml", help="experiment file (default: experiment.yaml)")
    parser.add_argument("--dry", action="store_true", help="parse and print the experiments; run nothing")
    parser.add_argument("--pick", "--cherrypick-experiments", nargs="+", metavar="INDEX",
                        help="run only these indices of the expanded list, e.g. 0,1,3 or 0 1 3")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed experiment")
    parser.add_argument("--seed", type=int, default=None, help="seed for the RND_IDX values (default: random)")
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
    mode.add_argument("--status", action="store_true", help="print the queue's pending, running and finished counts")
    mode.add_argument("--add", metavar="YAML", help="append the documents of this file to the queue and exit")
    mode.add_argument("--cancel", action="store_true", help="cancel the study's Slurm jobs still pending or running")
    cluster = parser.add_argument_group("cluster", "submit the study to Slurm instead of running it here")
    cluster.add_argument("--launcher", choices=("local", "slurm"), default=None,
                         help="where experiments run (default: Global.launcher, else local)")
    return parser


def run_command(argv: list[str], console: Console) -> int:
    overrides = [a for a in argv if a.startswith("+")]
    rest = [a for a in argv if not a.startswith("+")]
    args, extra = run_parser().parse_known_args(rest)
    options = RunOptions(overrides=overrides, pick=parse_pick(args.pick), dry=args.dry, seed=args.seed,
                         fail_fast=args.fail_fast, queue=args.queue, fresh=args.fresh, argv=extra,
                         workers=args.workers, gpus=args.gpus, per_gpu=args.per_gpu, isolate=args.isolate,
                         in_process=args.in_process, launcher=args.launcher)
    if args.cancel or (args.status and not args.queue):
        from ..run.launch import slurm_folder

        folder = slurm_folder(args.exp, overrides)
        if folder is not None:
            return slurm_command(folder, cancel=args.cancel, console=console)
        if args.cancel:
            raise UsageError(f"{args.exp} was not submitted to Slurm", option="--cancel",
                             hint="--cancel stops the jobs of a study run with --launcher slurm")
    if args.resume or args.status or args.add:
        queue = args.queue or queue_of(args.exp, overrides)
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
    return run_study(args.exp, options, console)


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
