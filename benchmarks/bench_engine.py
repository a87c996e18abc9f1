#!/usr/bin/env python3
"""Time the execution engine against the in-process runner: per-experiment overhead, --isolate, two slots."""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cool_runner import Console, Expander, MemorySource, Runner, load_study
from cool_runner.run.engine import Engine
from cool_runner.run.gpus import SlotSpec

MODULE = """
import time
{imports}
def main(exp):
    if exp.sleep:
        time.sleep(exp.sleep)
    exp.ACC = exp.x * 2
"""


def write_study(folder: Path, count: int, sleep: float, imports: str = "") -> Path:
    module = f"benchmod{'_' + imports.replace('.', '_') if imports else ''}"
    (folder / f"{module}.py").write_text(MODULE.format(imports=f"import {imports}" if imports else ""),
                                         encoding="utf-8")
    path = folder / f"study-{module}-{count}-{sleep}.yaml"
    body = "".join(f"---\nName: e{i}\nx: {i}\n" for i in range(count))
    path.write_text(f"Module: {module}\nYamlLog: {folder / 'logs' / 'bench.yaml'}\nsleep: {sleep}\n{body}",
                    encoding="utf-8")
    return path


def timed(path: Path, folder: Path, kind: str, slots: int = 1) -> float:
    """Seconds to run the study: `in-process` (Runner), `engine` (long-lived workers) or `isolate`."""
    experiments = Expander(load_study(str(path)), rng=random.Random(0)).expand()
    console = Console(out=io.StringIO(), err=io.StringIO(), colour=False)
    if kind == "in-process":
        runner: Runner = Runner(console, paths=[str(folder)])
    else:
        runner = Engine(console, paths=[str(folder)], slots=[SlotSpec(n) for n in range(slots)],
                        isolate=kind == "isolate", runs_dir=str(folder / "runs"))
    runner.preload(experiments)  # the engine starts its workers here: not part of the per-experiment cost
    start = time.perf_counter()
    summary = runner.run(MemorySource(experiments))
    elapsed = time.perf_counter() - start
    assert summary.count("done") == len(experiments), summary.line()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="trivial experiments per timed run (default 1,000)")
    parser.add_argument("--isolate-n", type=int, default=200, help="experiments for --isolate (default 200)")
    parser.add_argument("--sleepers", type=int, default=20, help="experiments sleeping 0.2 s (default 20)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each; the median is reported")
    parser.add_argument("--heavy", default="torch", help="also time --isolate with a module that imports this "
                                                        "(default torch; '' to skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.chdir(folder)
        sys.path.insert(0, str(folder))
        trivial = write_study(folder, args.n, 0)
        few = write_study(folder, args.isolate_n, 0)
        sleepers = write_study(folder, args.sleepers, 0.2)

        inproc, engine = [], []
        for _ in range(args.runs):  # interleaved, so that both see the same machine (and the same disk)
            inproc.append(timed(trivial, folder, "in-process") / args.n * 1e3)
            engine.append(timed(trivial, folder, "engine") / args.n * 1e3)
        extra = statistics.median(b - a for a, b in zip(inproc, engine))
        print(f"{args.n} trivial experiments, one slot: in-process {statistics.median(inproc):.3f} ms each, engine "
              f"(long-lived worker) {statistics.median(engine):.3f} ms each: overhead {extra:.3f} ms per experiment "
              "(median of paired runs; target: at most 2 ms)")

        def isolate_cost(study: Path) -> tuple[float, float]:
            pairs = [(timed(study, folder, "in-process"), timed(study, folder, "isolate")) for _ in range(args.runs)]
            inside = statistics.median(a for a, _ in pairs) / args.isolate_n * 1e3
            return inside, statistics.median(b - a for a, b in pairs) / args.isolate_n * 1e3

        inside, extra = isolate_cost(few)
        print(f"--isolate ({args.isolate_n} experiments, a fork of the slot's worker for each): "
              f"{inside + extra:.2f} ms per experiment, {extra:.2f} ms above in-process")
        if args.heavy:
            try:
                __import__(args.heavy)
            except ImportError:
                print(f"--isolate with {args.heavy} imported: skipped ({args.heavy} is not installed)")
            else:
                inside, extra = isolate_cost(write_study(folder, args.isolate_n, 0, args.heavy))
                print(f"--isolate with {args.heavy} imported by the module: {inside + extra:.2f} ms per experiment, "
                      f"{extra:.2f} ms above in-process")

        serial = statistics.median(timed(sleepers, folder, "engine", 1) for _ in range(args.runs))
        parallel = statistics.median(timed(sleepers, folder, "engine", 2) for _ in range(args.runs))
        print(f"{args.sleepers} experiments sleeping 0.2 s: one slot {serial:.2f} s, --workers 2 {parallel:.2f} s = "
              f"{parallel / (serial / 2):.3f} x half the serial time (target: at most 1.10), on {os.cpu_count()} "
              "cores")


if __name__ == "__main__":
    main()
