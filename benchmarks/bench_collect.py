#!/usr/bin/env python3
"""Time collect.py on N small logs in nested folders against a one-process C-loader floor, and filter.py."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def record(rng: random.Random, i: int) -> dict:
    return {
        "Name": f"exp-{i % 50}", "Module": "modules.train", "YamlLog": "logs/log.yaml",
        "model": {"name": rng.choice(["resnet", "vgg", "wrn"]), "depth": rng.choice([20, 56, 110])},
        "optimizer": {"lr": rng.choice([0.1, 0.05, 0.01]), "momentum": 0.9},
        "sparsity": round(rng.random(), 4), "REP": i % 3, "RND_IDX": 100000 + i, "HOST": "gpu-1",
        "ACC": round(rng.random(), 4), "LOSS": round(rng.random() * 2, 4), "TIME_ELAPSED": round(rng.random() * 900, 3),
        "STATUS": "done", "HISTORY": [round(rng.random(), 3) for _ in range(5)],
    }


def write_tree(folder: Path, count: int) -> list[Path]:
    rng = random.Random(0)
    paths = []
    for i in range(count):
        sub = folder / f"study{i % 20:02d}" / f"run{i % 97:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"log{i:06d}.yaml"
        path.write_text(yaml.dump(record(rng, i), Dumper=Dumper, sort_keys=False, explicit_start=True))
        paths.append(path)
    return paths


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="log files to collect (default 20,000)")
    parser.add_argument("--records", type=int, default=200_000, help="records for the filter benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_tree(folder / "logs", args.n)
        start = time.perf_counter()
        for path in paths:
            with open(path, "rb") as handle:
                list(yaml.load_all(handle.read(), Loader=Loader))
        floor = time.perf_counter() - start
        collect = [sys.executable, str(ROOT / "collect.py"), "logs", "--dest", "out"]
        first = timed([*collect, "--no-cache"], folder)
        timed(collect, folder)  # fills the cache
        cached = timed(collect, folder)
        print(f"collect {args.n:,} files: {first:.2f} s; one-process C-loader floor: {floor:.2f} s; "
              f"ratio {first / floor:.2f} (target <= 1.0)")
        print(f"collect again with the cache: {cached:.2f} s")

        rng = random.Random(1)
        big = folder / "big.yaml"
        big.write_text(yaml.dump_all([record(rng, i) for i in range(args.records)], Dumper=Dumper, sort_keys=False,
                                     explicit_start=True))
        start = time.perf_counter()
        with open(big, "rb") as handle:
            docs = list(yaml.load_all(handle.read(), Loader=Loader))
        yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, explicit_start=True)
        baseline = time.perf_counter() - start
        filtered = timed([sys.executable, str(ROOT / "filter.py"), "big.yaml", "--filter", "lambda e: e.ACC > 0.5",
                          "--sort", "lambda e: e.LOSS", "--dest", "out"], folder)
        print(f"filter + sort {args.records:,} records: {filtered:.2f} s; load + dump alone: {baseline:.2f} s "
              f"(ratio {filtered / baseline:.2f})")


if __name__ == "__main__":
    main()
