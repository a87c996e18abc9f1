#!/usr/bin/env python3
"""Queue speed: the cost of one take from 10,000 realistic experiments, a whole queue run of trivial
experiments against the unavoidable floor measured in the same run, and 4 workers sharing one queue."""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cool_runner import Console, Expander, Runner, load_study
from cool_runner.files import append_text, atomic_write
from cool_runner.queue.filequeue import FileQueue
from cool_runner.yamlio import dump

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

TRIVIAL = """\
Global: {queue: null}
Module: trivial
YamlLog: log.yaml
lr: 0.1
---
Name: t
Repeat: {count}
"""


def build(folder: Path, count: int, study: str = STUDY) -> FileQueue:
    path = folder / "experiment.yaml"
    path.write_text(study.replace("{per}", str(count - 1)).replace("{count}", str(count)), encoding="utf-8")
    loaded = load_study(str(path))
    queue = FileQueue(folder / "queue.yaml")
    queue.fill(Expander(loaded).expand(), loaded)
    return queue


def take_cost(count: int, takes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        queue = build(folder, count)
        fill_time = time.perf_counter() - start
        size = (folder / "queue.yaml").stat().st_size
        times = []
        for _ in range(takes):
            start = time.perf_counter()
            experiment = queue.take()
            times.append(time.perf_counter() - start)
            queue.finish(experiment, "done")
        queue.close()
        print(f"queue of {count:,} experiments ({size / 1e6:.1f} MB) written in {fill_time:.2f} s")
        print(f"take one experiment: median {statistics.median(times) * 1e3:.2f} ms, "
              f"p90 {sorted(times)[int(0.9 * len(times))] * 1e3:.2f} ms over {takes} takes")


def whole_run(count: int) -> None:
    """Run `count` trivial experiments through a queue file, then do only the unavoidable writes as often."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "trivial.py").write_text("def main(exp):\n    exp.RESULT = exp.lr * 2\n", encoding="utf-8")
        queue = build(folder, count, TRIVIAL)
        out = io.StringIO()
        runner = Runner(Console(out=out, err=out, colour=False), paths=[str(folder)])
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            queue.open()
            start = time.perf_counter()
            summary = runner.run(queue)
            queue.close()
            run_time = time.perf_counter() - start
        finally:
            os.chdir(cwd)
        assert summary.count("done") == count, summary.line()
        records = (folder / "log.yaml").read_text(encoding="utf-8").split("\n---")
        record = "---" + records[len(records) // 2] + "\n"
        state = dump({"taken": 12345, "done": 12344, "running": {"a1b2c3d4": {"host": "gpu-1", "pid": 4242}}})
        start = time.perf_counter()
        for _ in range(count):
            append_text(folder / "floor.yaml", record)  # one synced append of a record
            atomic_write(folder / "floor.state", state)  # one synced rewrite of a small state file
        floor = time.perf_counter() - start
    per_run, per_floor = run_time / count * 1e3, floor / count * 1e3
    print(f"whole queue run of {count:,} trivial experiments: {per_run:.2f} ms per experiment; floor (one synced "
          f"record append + one synced small state rewrite) {per_floor:.2f} ms: ratio {per_run / per_floor:.1f}x")


def drain(folder: str, takes: int, results: multiprocessing.Queue) -> None:
    queue = FileQueue(Path(folder) / "queue.yaml")
    done = 0
    for _ in range(takes):
        experiment = queue.take()
        if experiment is None:
            break
        queue.finish(experiment, "done")
        done += 1
    queue.close()
    results.put(done)


def concurrent(count: int, workers: int, takes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, count)
        results: multiprocessing.Queue = multiprocessing.Queue()
        processes = [multiprocessing.Process(target=drain, args=(str(folder), takes, results)) for _ in range(workers)]
        start = time.perf_counter()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - start
        total = sum(results.get() for _ in processes)
        print(f"{workers} concurrent workers: {total:,} take+finish in {elapsed:.2f} s = "
              f"{total / elapsed:.0f} experiments/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the queue for a take (default 10,000)")
    parser.add_argument("--takes", type=int, default=200, help="timed takes (default 200)")
    parser.add_argument("--run", type=int, default=2_000, help="trivial experiments in the whole run (default 2,000)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers (default 4)")
    parser.add_argument("--only", choices=["take", "run", "workers"], help="run one part only")
    args = parser.parse_args()
    if args.only in (None, "take"):
        take_cost(args.n, args.takes)
    if args.only in (None, "run"):
        whole_run(args.run)
    if args.only in (None, "workers"):
        concurrent(args.n, args.workers, args.takes * 2)


if __name__ == "__main__":
    main()
