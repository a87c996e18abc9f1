"""Chaos, short: real workers killed and restarted with --resume, an appender and an editor saving the queue in
every way; every experiment must end with exactly one record. `benchmarks/chaos_queue.py --rounds 20` is the
long version."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from chaos_queue import run_rounds


@pytest.mark.timeout(180)
def test_chaos_rounds_lose_nothing_and_run_nothing_twice():
    lines: list[str] = []
    results = run_rounds(2, experiments=40, workers=3, interval=0.25, duration=20.0, seed=11,
                         kinds=["kill", "mixed"], show=lines.append)
    report = "\n".join(lines)
    for result in results:
        assert result.ok, report
        assert result.done + result.interrupted == result.expected > 40, report
        assert result.signals >= 3 and sum(result.saves.values()) >= 1, report
