"""A small pruning study's log records for the plot, report and pandas tests: groups, repeats, curves, a failure."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

NAMES = ("vgg", "res", "wrn")
SPARSITIES = (0.0, 0.3, 0.51, 0.657)
REPEATS = 3
EPOCHS = 6


def study_records(seed: int = 0) -> list[dict]:
    """3 models x 4 sparsities x 3 repeats, with ACC, a LOSS_HISTORY curve and EPOCHS; then one failed run."""
    rng = random.Random(seed)
    records = []
    for index, (name, sparsity, rep) in enumerate(
            (n, s, r) for n in NAMES for s in SPARSITIES for r in range(REPEATS)):
        records.append({
            "Name": name, "sparsity": sparsity, "optimizer": {"lr": 0.1, "momentum": 0.9}, "REP": rep,
            "RND_IDX": 100000 + index, "HOST": f"gpu-{index % 2 + 1}",
            "ACC": round(0.9 - 0.1 * sparsity + rng.gauss(0, 0.01), 4),
            "LOSS_HISTORY": [round(1 / (e + 1) + rng.random() / 10, 4) for e in range(EPOCHS)],
            "EPOCHS": [e + 1 for e in range(EPOCHS)],
            "TIME_STARTED": f"2026-11-29T{10 + index // 6:02d}:{index % 6 * 10:02d}:00+01:00",
            "TIME_ELAPSED": 300.0, "STATUS": "done",
        })
    records.append({"Name": "wrn", "sparsity": 0.9, "optimizer": {"lr": 0.1, "momentum": 0.9}, "REP": 0,
                    "RND_IDX": 999999, "HOST": "gpu-3", "TIME_STARTED": "2026-11-29T16:00:00+01:00",
                    "TIME_ELAPSED": 1.5, "STATUS": "failed", "ERROR": "ValueError: sparsity <0.9> is too high",
                    "TRACEBACK": "Traceback (most recent call last):\n  File \"train.py\", line 3\n"
                                 "ValueError: sparsity <0.9> is too high\n"})
    return records


def write_log(path: Path, records: list[dict]) -> Path:
    path.write_text(yaml.safe_dump_all(records, explicit_start=True, sort_keys=False), encoding="utf-8")
    return path
