#!/usr/bin/env python3
"""Cost of the metadata in every record (times, git state, argv, versions, file and line) per experiment.

Runs the same study twice in one process, with `Global.metadata` on and off, with a module that does
nothing, inside a git repository with a dirty tree (the most work: the diff is saved), and reports the
difference per experiment. The first experiment pays for what is looked up once per run (git, package
versions); that is reported too.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cool_runner.console import Console
from cool_runner.run.metadata import Metadata, now
from cool_runner.run.records import render_record
from cool_runner.run.session import RunOptions, run_study

MODULE = "import numpy\n\ndef main(exp):\n    exp.ACC = float(numpy.float64(exp.x))\n"


def study(folder: Path, count: int, metadata: bool) -> Path:
    path = folder / f"study-{'on' if metadata else 'off'}.yaml"
    lines = [f"Global: {{metadata: {str(metadata).lower()}}}", "Module: benchmod",
             f"YamlLog: logs/{'on' if metadata else 'off'}.yaml", "x: 1", "optimizer: {lr: 0.1, momentum: 0.9}"]
    lines += [f"---\nName: e{i}\nx: {i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed_run(path: Path) -> float:
    start = time.perf_counter()
    assert run_study(str(path), RunOptions(), Console(out=io.StringIO(), err=io.StringIO(), colour=False)) == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=500, help="experiments per run (default 500)")
    parser.add_argument("--runs", type=int, default=7, help="runs with and without metadata; the best of each are "
                        "compared (on a busy machine the best run is the one least slowed by others)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.chdir(folder)
        sys.path.insert(0, name)
        (folder / "benchmod.py").write_text(MODULE, encoding="utf-8")
        git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.org"]
        for command in (["init", "-q"], ["add", "benchmod.py"], ["commit", "-q", "-m", "bench"]):
            subprocess.run([*git, *command], check=True, capture_output=True)
        (folder / "benchmod.py").write_text(MODULE + "# uncommitted\n", encoding="utf-8")  # a dirty tree
        on, off = study(folder, args.n, True), study(folder, args.n, False)
        timed_run(on)  # warm up imports and the file cache
        timed_run(off)
        with_metadata, without = [], []
        for _ in range(args.runs):
            with_metadata.append(timed_run(on))
            without.append(timed_run(off))
        # The parts on their own: the first experiment of a run, then every other one.
        import benchmod  # noqa: F401  (as the runner has it loaded)

        values = {"Module": "benchmod", "YamlLog": "logs/on.yaml"}
        start = time.perf_counter()
        fresh = Metadata()
        fresh.fields(values, file=str(on), line=3, start=now(), end=now())
        first = time.perf_counter() - start
        def each_of(action, count: int = 1000, blocks: int = 7) -> float:
            """Seconds per call: the best of several blocks of calls."""
            best = float("inf")
            for _ in range(blocks):
                start = time.perf_counter()
                for _ in range(count):
                    action()
                best = min(best, (time.perf_counter() - start) / count)
            return best

        each = each_of(lambda: fresh.fields(values, file=str(on), line=3, start=now(), end=now()))
        facts = fresh.fields(values, file=str(on), line=3, start=now(), end=now())
        record = {"Name": "e1", "x": 1, "Module": "benchmod", "YamlLog": "logs/on.yaml",
                  "optimizer": {"lr": 0.1, "momentum": 0.9}, "REP": 0, "GLOBAL_REP": 0, "RND_IDX": 123456,
                  "HOST": "host", "IDENTITY": "0123456789abcdef", "ACC": 1.0}
        plain = {**record, "TIME_ELAPSED": 0.001, "STATUS": "done"}
        full = {**record, **facts, "TIME_ELAPSED": 0.001, "STATUS": "done"}
        writes = [each_of(lambda data=data: render_record(data), 300) for data in (plain, full)]
    on_best, off_best = min(with_metadata), min(without)
    extra = (on_best - off_best) / args.n
    print(f"{args.n} experiments, dirty git tree, {args.runs} runs each: with metadata {on_best:.3f} s, "
          f"without {off_best:.3f} s (best run; medians {statistics.median(with_metadata):.3f} s and "
          f"{statistics.median(without):.3f} s)")
    print(f"  whole runs: metadata costs {extra * 1e3:.3f} ms per experiment on average (target: at most 1 ms; on a "
          "busy machine this difference is mostly noise, the parts below are steadier)")
    print(f"  alone: {first * 1e3:.1f} ms for the first experiment of a run (git, package versions), then "
          f"{each * 1e6:.1f} us per experiment, and {(writes[1] - writes[0]) * 1e6:.1f} us more to write a record "
          f"({writes[0] * 1e6:.0f} us without metadata)")
    for count in (10, 100, 1000):
        share = first / count + each + writes[1] - writes[0]
        print(f"  sum of the parts for a run of {count:>4} experiments: {share * 1e3:.3f} ms per experiment")


if __name__ == "__main__":
    main()
