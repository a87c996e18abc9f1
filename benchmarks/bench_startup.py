#!/usr/bin/env python3
"""Time run.py's start-up against bare Python: `--help`, `--dry` on experiment.yaml and a one-experiment run.

The run is timed twice: as run.py starts it by default (the experiment in a worker process, which is a second
Python interpreter), and with --in-process (inside run.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = str(ROOT / "run.py")
BARE = "python -c pass"

# A module that does nothing, so the one-experiment figure is the runner's own cost (import, expand, log).
NOOP = "def main(exp):\n    exp.OK = 1\n"
STUDY = "Module: noop\nYamlLog: log.yaml\nx: 1\n---\nName: one\nx: 2\n"


def time_once(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of `command`."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("COOL_RUNNER_DEBUG", None)
    # Bytecode is cached, as for any installed copy; without the cache every run would compile cool-runner again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=40, help="runs of each command (default 40)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "noop.py").write_text(NOOP, encoding="utf-8")
        (work / "experiment.yaml").write_text(STUDY, encoding="utf-8")
        commands = {
            BARE: ([sys.executable, "-c", "pass"], work),
            "run.py --help": ([sys.executable, RUN, "--help"], ROOT),
            "run.py --dry (experiment.yaml)": ([sys.executable, RUN, "--dry"], ROOT),
            "run.py, one experiment": ([sys.executable, RUN], work),
            "run.py --in-process, one exp.": ([sys.executable, RUN, "--in-process"], work),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for command, cwd in commands.values():  # warm the file cache and write the bytecode
            time_once(command, cwd)
        # Round-robin, so that a change in the machine's load hits every command alike.
        for _ in range(args.repeats):
            for name, (command, cwd) in commands.items():
                times[name].append(time_once(command, cwd))
    wall = {name: statistics.median(t[0] for t in values) for name, values in times.items()}
    cpu = {name: statistics.median(t[1] for t in values) for name, values in times.items()}
    print(f"{args.repeats} runs each, medians (Python {sys.version.split()[0]}, load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  {'command':31s} {'wall-clock':>10s} {'above bare':>11s} {'CPU time':>10s} {'above bare':>11s}")
    for name in commands:
        above = "" if name == BARE else f"{1000 * (wall[name] - wall[BARE]):+8.1f} ms"
        above_cpu = "" if name == BARE else f"{1000 * (cpu[name] - cpu[BARE]):+8.1f} ms"
        print(f"  {name:31s} {1000 * wall[name]:7.1f} ms {above:>11s} {1000 * cpu[name]:7.1f} ms {above_cpu:>11s}")
    print("CPU time (user + system) depends much less than wall-clock time on what else the machine runs.")


if __name__ == "__main__":
    main()
