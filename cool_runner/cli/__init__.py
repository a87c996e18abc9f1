"""Command-line entry points: the only place that parses arguments and turns errors into exit codes.

Each tool has its own module, imported only when that tool runs, so that `run.py --help` stays quick.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Callable, NoReturn

from ..console import Console
from ..errors import CoolRunnerError, UsageError

log = logging.getLogger("cool_runner")


def setup_logging(stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False


def entry(prog: str, command: Callable[[list[str], Console], int], argv: Sequence[str] | None) -> int:
    """Run a command; user errors become one line on stderr and their exit code, bugs keep the traceback."""
    console = Console()
    setup_logging(console.err)
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


def run_main(argv: Sequence[str] | None = None) -> int:
    """`run.py` / `cool-run`."""
    from .run import main

    return main(argv)


def collect_main(argv: Sequence[str] | None = None) -> int:
    """`collect.py` / `cool-collect`."""
    from .collect import main

    return main(argv)


def filter_main(argv: Sequence[str] | None = None) -> int:
    """`filter.py` / `cool-filter`."""
    from .filter import main

    return main(argv)
