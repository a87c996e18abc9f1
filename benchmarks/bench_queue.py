#!/usr/bin/env python3
"""Time taking experiments from a queue file of 10,000 realistic experiments, alone and with 4 workers."""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cool_runner import Expander, load_study
from cool_runner.queue.filequeue import FileQueue

STUDY = """\
Global: {queue: null}
Module: modules.train
YamlLog: logs/wrn.yaml
model: {name: wrn, depth: 16, width: 8, dropout: 0.0}
dataset: {name: cifar10, data_dir: data, augment: true, batch_size: 128}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0005}
schedule: {boundaries: [12000, 20000, 28000], values: [0.1, 0.02, 0.004, 0.0008]}
epochs: 40
precision: mixed
---
Name: dense
sparsity: 0.0
---
Name: iterative
Repeat: {per}
sparsity: 0.3
checkpoint: parse f"checkpoints/{Name}/{RND_IDX}/{REP}.pt"
load_model: parse f"checkpoints/dense/{E[0].RND_IDX}/0.pt"
"""


def build(folder: Path, count: int) -> FileQueue:
    per = count - 1
    path = folder / "experiment.yaml"
    path.write_text(STUDY.replace("{per}", str(per)), encoding="utf-8")
    study = load_study(str(path))
    experiments = Expander(study).expand()
    queue = FileQueue(folder / "queue.yaml")
    queue.fill(experiments, study)
    return queue


def drain(folder: str, takes: int, results: multiprocessing.Queue) -> None:
    queue = FileQueue(Path(folder) / "queue.yaml")
    done = 0
    for _ in range(takes):
        experiment = queue.take()
        if experiment is None:
            break
        queue.finish(experiment, "done")
        done += 1
    results.put(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the queue (default 10,000)")
    parser.add_argument("--takes", type=int, default=200, help="timed takes (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers (default 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        queue = build(folder, args.n)
        fill_time = time.perf_counter() - start
        size = (folder / "queue.yaml").stat().st_size
        times = []
        for _ in range(args.takes):
            start = time.perf_counter()
            experiment = queue.take()
            times.append(time.perf_counter() - start)
            queue.finish(experiment, "done")
        print(f"queue of {args.n:,} experiments ({size / 1e6:.1f} MB) written in {fill_time:.2f} s")
        print(f"take one experiment: median {statistics.median(times) * 1e3:.2f} ms, "
              f"p90 {sorted(times)[int(0.9 * len(times))] * 1e3:.2f} ms over {args.takes} takes")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.n)
        results: multiprocessing.Queue = multiprocessing.Queue()
        per_worker = args.takes * 2
        workers = [multiprocessing.Process(target=drain, args=(str(folder), per_worker, results))
                   for _ in range(args.workers)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        total = sum(results.get() for _ in workers)
        print(f"{args.workers} concurrent workers: {total:,} take+finish in {elapsed:.2f} s = "
              f"{total / elapsed:.0f} experiments/s")


if __name__ == "__main__":
    main()
