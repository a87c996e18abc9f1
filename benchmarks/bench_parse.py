#!/usr/bin/env python3
"""Time loading and parsing an experiment file of N experiments, each with three `parse` values."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cool_runner import Expander, load_study

DEFAULTS = """\
Global: {repeat: 1}
Module: modules.example
YamlLog: logs/bench.yaml
samples: 100
noise: 0.1
steps: 10
optimizer: {lr: 0.1, momentum: 0.9}
"""

EXPERIMENT = """\
---
Name: exp-{i}
sparsity: {sparsity}
pruning:
  sparsity: parse 1 - (1 - E[-1].sparsity) * 0.7
  steps: parse int(sparsity * 100) + 1
directory: parse f"runs/{{Name}}/{{RND_IDX}}/{{REP}}"
"""


def write_file(path: Path, count: int) -> None:
    parts = [DEFAULTS, "---\nName: first\nsparsity: 0.0\n"]
    parts += [EXPERIMENT.format(i=i, sparsity=round(i / count, 4)) for i in range(count)]
    path.write_text("".join(parts), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the file (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "experiment.yaml"
        write_file(path, args.n)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            study = load_study(str(path))
            experiments = Expander(study, rng=random.Random(0)).expand()
            times.append(time.perf_counter() - start)
        assert len(experiments) == args.n + 1
        small = max(1, args.n // 10)
        write_file(path, small)
        start = time.perf_counter()
        Expander(load_study(str(path)), rng=random.Random(0)).expand()
        small_time = time.perf_counter() - start
    median = statistics.median(times)
    print(f"load + parse {args.n:,} experiments (3 parse values each): median {median:.3f} s over {args.runs} runs "
          f"(best {min(times):.3f} s: on a busy machine the best run is the one least slowed by others)")
    print(f"  per experiment: {median / args.n * 1e6:.1f} us; {small:,} experiments: {small_time:.3f} s "
          f"(x{median / small_time:.1f} time for x{args.n / small:.0f} experiments: linear)")


if __name__ == "__main__":
    main()
