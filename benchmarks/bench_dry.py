#!/usr/bin/env python3
"""Time `run.py --dry` on the parse benchmark's file against reading that file with PyYAML's C loader."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml
from bench_parse import write_file

from cool_runner.console import Console
from cool_runner.run.session import RunOptions, run_study


def median_time(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the file (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each; the medians are compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "experiment.yaml"
        write_file(path, args.n)
        text = path.read_text(encoding="utf-8")

        def read() -> None:
            list(yaml.load_all(text, Loader=yaml.CSafeLoader))

        with open(os.devnull, "w", encoding="utf-8") as sink:
            console = Console(out=sink, err=sink, colour=False)

            def dry() -> None:
                assert run_study(str(path), RunOptions(dry=True), console) == 0

            # Interleaved, so that a busy machine slows both alike.
            loads, drys = [], []
            for _ in range(args.runs):
                loads.append(median_time(read, 1))
                drys.append(median_time(dry, 1))
    load, shown = statistics.median(loads), statistics.median(drys)
    print(f"PyYAML C loader reading the file ({args.n:,} experiments): median {load:.3f} s over {args.runs} runs")
    print(f"run.py --dry on the same file (load, expand, print): median {shown:.3f} s")
    print(f"ratio --dry / C loader: {shown / load:.2f} (target: at most 3)")


if __name__ == "__main__":
    main()
