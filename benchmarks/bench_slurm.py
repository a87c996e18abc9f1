#!/usr/bin/env python3
"""Time a study on the local Slurm (scripts/slurm-local.sh start) against the same study run here.

Two figures: the six-experiment study of the tests (a chain of three through E[-1], two independent experiments
and one that raises, plus one that depends on it), from submission to its last record; and a chain of trivial
experiments, whose extra time per experiment over a local run is the launcher's overhead per experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = """\
import time
def main(exp):
    if exp.get("boom"):
        raise ValueError("boom")
    time.sleep(exp.get("sleep", 0.0))
    exp.ACC = exp.x * 2
"""
HEAD = """\
Global:
  launcher: {launcher}
  slurm: {{timeout_min: 5, mem_gb: 0.25}}
Module: mod
YamlLog: log.yaml
x: 1
"""
SIX = ["Name: a", "Name: b\nx: parse E[-1].x + 1", "Name: c\nx: parse E[-1].x + 1", "Name: d", "Name: e",
       "Name: bad\nboom: true", "Name: after-bad\nx: parse E['bad'].x"]


def study(folder: Path, launcher: str, bodies: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mod.py").write_text(MODULE)
    path = folder / "study.yaml"
    path.write_text(HEAD.format(launcher=launcher) + "".join(f"---\n{body}\n" for body in bodies))
    return path


def records(folder: Path) -> int:
    try:
        return (folder / "log.yaml").read_text().count("\nSTATUS: ")
    except FileNotFoundError:
        return 0


def run(folder: Path, launcher: str, bodies: list[str], timeout: float) -> float:
    """Seconds from starting run.py to the last record in the log."""
    study(folder, launcher, bodies)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run.py"), "--exp", "study.yaml"], cwd=folder, env=env,
                   capture_output=True, check=False)
    while records(folder) < len(bodies):
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"{folder}: only {records(folder)} of {len(bodies)} records after {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=10, help="length of the chain of trivial experiments")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        raise SystemExit("no Slurm answers: start one with scripts/slurm-local.sh start")
    chain = ["Name: link-0"] + [f"Name: link-{i}\nx: parse E[-1].x + 1" for i in range(1, args.chain)]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        six_local = run(base / "six-local", "local", SIX, args.timeout)
        six_slurm = run(base / "six-slurm", "slurm", SIX, args.timeout)
        chain_local = run(base / "chain-local", "local", chain, args.timeout)
        chain_slurm = run(base / "chain-slurm", "slurm", chain, args.timeout)
    figures = {
        "six_experiment_study_slurm_s": round(six_slurm, 2),
        "six_experiment_study_local_s": round(six_local, 2),
        "chain_length": args.chain,
        "chain_slurm_s": round(chain_slurm, 2),
        "chain_local_s": round(chain_local, 2),
        "overhead_per_experiment_s": round((chain_slurm - chain_local) / args.chain, 2),
    }
    print(f"six-experiment study (7 jobs, chain of 3): {six_slurm:.1f} s on the local Slurm from submission to "
          f"the last record, {six_local:.1f} s run here")
    print(f"chain of {args.chain} dependent trivial experiments: {chain_slurm:.1f} s on Slurm, {chain_local:.1f} s "
          f"here: {figures['overhead_per_experiment_s']:.2f} s of overhead per experiment")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
