"""Command-line entry points: the only place that parses arguments and turns errors into exit codes.

Each tool has its own module, imported only when that tool runs, so that `run.py --help` stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Callable, NoReturn

from ..console import Console
from ..errors import CoolRunnerError, UsageError

#: Each tool's script name, and the command pip installs for it.
COMMANDS = {"run.py": "cool-run", "collect.py": "cool-collect", "filter.py": "cool-filter"}


def program_name(script: str, argv0: str | None = None) -> str:
    """The name the tool was started by (`cool-run` or `run.py`), for usage lines and error messages."""
    invoked = os.path.basename(sys.argv[0] if argv0 is None and sys.argv else argv0 or "")
    for suffix in (".exe", "-script.py"):  # the wrappers pip writes on Windows
        if invoked.endswith(suffix) and invoked[: -len(suffix)] == COMMANDS.get(script):
            invoked = invoked[: -len(suffix)]
    # Called from Python (pytest, a notebook), sys.argv[0] is someone else's name: keep the script's.
    return invoked if invoked in (script, COMMANDS.get(script)) else script


def setup_logging(stream: object = None) -> None:
    import logging

    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    log = logging.getLogger("cool_runner")
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    log.propagate = False


def entry(script: str, command: Callable[[list[str], Console], int], argv: Sequence[str] | None) -> int:
    """Run a command; user errors become one line on stderr and their exit code, bugs keep the traceback."""
    prog = program_name(script)
    console = Console()
    try:
        setup_logging(console.err)
        args = list(sys.argv[1:] if argv is None else argv)
        return command(args, console)
    except CoolRunnerError as exc:
        if os.environ.get("COOL_RUNNER_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=console.err, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        # Also while modules are still importing or the study is expanding: nothing ran yet, so no traceback.
        print(f"{prog}: stopped", file=console.err, flush=True)
        return 130
    except BrokenPipeError:
        # The reader went away (`run.py --dry | head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is a one-line UsageError (exit 2) like every other input error.

    `prog` is the tool's script name (`run.py`); the name it was started by (`cool-run`) is shown instead.
    """

    def __init__(self, *args: object, prog: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, prog=program_name(prog) if prog else None, **kwargs)  # type: ignore[arg-type]

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
