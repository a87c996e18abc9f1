"""--skip-done after a study grew, and --retry of failed and interrupted experiments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_log

from cool_runner import RunOptions, retry_study
from cool_runner.cli import run_main

RECORDER = """
import json
def main(exp):
    with open("ran.jsonl", "a") as handle:
        handle.write(json.dumps([exp.Name, exp.REP, exp.GLOBAL_REP, exp.get("lr")]) + "\\n")
    if exp.get("fail"):
        raise ValueError("asked to fail")
"""
HEAD = "Module: recmod\nYamlLog: log.yaml\nlr: 0.1\n"


def ran(folder) -> list[list]:
    path = folder / "ran.jsonl"
    runs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return runs


@pytest.fixture
def study(workdir, write):
    write("recmod.py", RECORDER)
    return workdir


def test_skip_done_runs_only_what_was_added_to_a_finished_study(study, write, capsys):
    chain = "---\nName: step\nlr: parse E[-1].lr / 2\n"
    write("experiment.yaml", HEAD + "---\nName: base\nRepeat: 2\n---\nName: sweep\nGrid: {lr: [1, 2]}\n" + chain * 2)
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert len(ran(study)) == 6
    # The study grows: another Repeat copy, a Grid value, a chain step, a global repetition, a new experiment.
    write("experiment.yaml", "Global: {repeat: 2}\n" + HEAD
          + "---\nName: base\nRepeat: 3\n---\nName: sweep\nGrid: {lr: [1, 2, 3]}\n" + chain * 3 + "---\nName: new\n")
    capsys.readouterr()
    assert run_main(["--exp", "experiment.yaml", "--skip-done"]) == 0
    out = capsys.readouterr().out
    assert "--skip-done: 6 of 20 experiment(s) already have a done record in log.yaml" in out
    again = ran(study)
    first_pass = [["base", 2, 0, 0.1], ["sweep", 0, 0, 3], ["step", 0, 0, 0.375], ["new", 0, 0, 0.1]]
    assert again[:4] == first_pass and len(again) == 14 and all(r[2] == 1 for r in again[4:])
    assert run_main(["--exp", "experiment.yaml", "--skip-done"]) == 0
    assert ran(study) == [] and "20 of 20 experiment(s) already have a done record" in capsys.readouterr().out


def test_identity_ignores_rnd_idx_host_key_order_and_run_facts(study, write):
    write("experiment.yaml", HEAD + "---\nName: a\nx: 1\ny: 2\n")
    assert run_main(["--exp", "experiment.yaml", "--seed", "1"]) == 0
    write("experiment.yaml", HEAD + "---\ny: 2\nName: a\nx: 1\n")  # same definition, keys reordered
    assert run_main(["--exp", "experiment.yaml", "--seed", "2", "--skip-done"]) == 0
    assert len(ran(study)) == 1
    assert run_main(["--exp", "experiment.yaml", "--skip-done", "+lr=0.5"]) == 0  # an override makes it new
    assert ran(study) == [["a", 0, 0, 0.5]]


def test_only_done_records_count_and_only_in_the_experiments_own_log(study, write):
    write("experiment.yaml", HEAD + "---\nName: a\nfail: true\n---\nName: b\n---\nName: c\nYamlLog: other.yaml\n")
    assert run_main(["--exp", "experiment.yaml"]) == 1
    ran(study)
    write("experiment.yaml", HEAD + "---\nName: a\nfail: true\n---\nName: b\n---\nName: c\nYamlLog: third.yaml\n")
    assert run_main(["--exp", "experiment.yaml", "--skip-done"]) == 1
    assert [r[0] for r in ran(study)] == ["a", "c"]


def test_dry_skip_done_shows_which(study, write, capsys):
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n")
    assert run_main(["--exp", "experiment.yaml", "--pick", "0"]) == 0
    capsys.readouterr()
    assert run_main(["--exp", "experiment.yaml", "--dry", "--skip-done"]) == 0
    out = capsys.readouterr().out
    assert "[0] a (skipped by --skip-done: done in log.yaml)" in out
    assert "[1] b\n" in out and "--skip-done would leave out 1" in out
    assert len(read_log(study / "log.yaml")) == 1


def test_skip_done_in_the_python_api(study, write):
    from cool_runner import run_study

    write("experiment.yaml", HEAD + "---\nName: a\n")
    assert run_study("experiment.yaml") == 0
    assert run_study("experiment.yaml", RunOptions(skip_done=True)) == 0
    assert len(ran(study)) == 1 and len(read_log(study / "log.yaml")) == 1


FLAKY = """
import os, time
def main(exp):
    open(f"started-{exp.Name}", "w").close()
    if not os.path.exists("fixed"):
        if exp.Name == "broken":
            raise ValueError("not fixed yet")
        if exp.Name == "slow":
            while True:
                time.sleep(0.05)
    exp.ROOT = exp.fn(exp.x)
"""


def _wait_for(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.timeout(90)
def test_retry_a_failed_and_an_interrupted_experiment(workdir, write, capsys):
    write("flaky.py", FLAKY)
    write("experiment.yaml", "Module: flaky\nYamlLog: logs/log.yaml\nfn: solve math.sqrt\nx: 16\n"
          "---\nName: fine\n---\nName: broken\nx: 25\n---\nName: slow\nRepeat: 2\nx: parse 9 + REP * 7\n")
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    _wait_for(workdir / "started-slow")
    process.send_signal(signal.SIGINT)
    line = ""
    while "press Ctrl-C again" not in line:
        line = process.stdout.readline()
        assert line, "run.py ended before asking"
    process.send_signal(signal.SIGINT)  # stop: the second copy of slow never starts
    process.communicate(timeout=30)
    first = read_log(workdir / "logs" / "log.yaml")
    assert [(r["Name"], r["STATUS"]) for r in first] == [("fine", "done"), ("broken", "failed"), ("slow", "interrupted")]

    (workdir / "fixed").touch()
    (workdir / "experiment.yaml").write_text("this file is not read by --retry: [")
    capsys.readouterr()
    assert run_main(["--retry", "logs/log.yaml", "--status", "failed,interrupted"]) == 0
    assert "retrying 2 experiment(s) from logs/log.yaml (failed, interrupted)" in capsys.readouterr().out
    log = read_log(workdir / "logs" / "log.yaml")
    assert [(r["Name"], r["STATUS"]) for r in log[3:]] == [("broken", "done"), ("slow", "done")]
    for old, new in zip(first[1:], log[3:]):
        for key in ("RND_IDX", "REP", "GLOBAL_REP", "IDENTITY", "x", "fn", "FILE", "LINE"):
            assert new[key] == old[key], key
        assert "ERROR" not in new and "TRACEBACK" not in new
    assert (log[3]["ROOT"], log[4]["ROOT"]) == (5.0, 3.0) and log[4]["fn"] == "solve math.sqrt"

    assert run_main(["--retry", "logs/log.yaml"]) == 0
    assert "nothing to retry" in capsys.readouterr().out
    assert retry_study("logs/log.yaml", RunOptions(retry_status=["done"], dry=True)) == 0
    out = capsys.readouterr().out
    assert "[0] fine" in out and "[1] broken" in out and "[2] slow" in out and "3 experiment(s)" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--retry", "missing.yaml"], "--retry: missing.yaml: no such log", id="no-log"),
        pytest.param(["--retry", "log.yaml", "--status", "failed,crashed"],
                     "--status: 'crashed' is not a status a record can have", id="bad-status"),
        pytest.param(["--status", "failed"], "--status: a list of statuses only goes with --retry", id="no-retry"),
        pytest.param(["--retry", "log.yaml", "--resume"], "--retry does not go with --resume", id="resume"),
        pytest.param(["--skip-done", "--resume", "--queue", "q.yaml"], "--skip-done applies when the experiment file",
                     id="skip-done-resume"),
    ],
)
def test_retry_usage_errors(workdir, write, capsys, args, fragment):
    write("log.yaml", "---\nName: a\nModule: m\nYamlLog: log.yaml\nSTATUS: failed\n")
    assert run_main(args) == 2
    assert fragment in capsys.readouterr().err


def test_retry_a_failed_experiment_and_the_one_skipped_because_it_read_it(workdir, write, capsys):
    write("flaky.py", FLAKY)
    write("experiment.yaml", "Module: flaky\nYamlLog: log.yaml\nfn: solve math.sqrt\nx: 4\n"
          "---\nName: broken\nx: 9\n---\nName: reader\nx: parse E['broken'].x * 4\n---\nName: other\n")
    assert run_main(["--exp", "experiment.yaml", "--workers", "2"]) == 1
    first = read_log(workdir / "log.yaml")
    assert {(r["Name"], r["STATUS"]) for r in first} == {("broken", "failed"), ("reader", "skipped"), ("other", "done")}
    skipped = next(r for r in first if r["STATUS"] == "skipped")
    assert skipped["LINE"] == 9 and skipped["START"] == skipped["END"] and "GIT" in skipped  # what ran: nothing
    (workdir / "fixed").touch()
    capsys.readouterr()
    assert run_main(["--retry", "log.yaml", "--status", "failed,skipped", "--dry"]) == 0
    out = capsys.readouterr().out
    assert "[0] broken" in out and "[1] reader  (after 0)" in out and "2 experiment(s)" in out
    assert run_main(["--retry", "log.yaml", "--status", "failed,skipped", "--workers", "2"]) == 0
    again = read_log(workdir / "log.yaml")[3:]
    assert [(r["Name"], r["STATUS"], r["INDEX"]) for r in again] == [("broken", "done", 0), ("reader", "done", 1)]
    assert again[1]["After"] == [0] and again[1]["ROOT"] == 6.0
    assert run_main(["--retry", "log.yaml", "--status", "done", "--pick", "7"]) == 2
    assert "--pick: no experiment to retry has index 7 (see them with --dry: 0, 1, 2)" in capsys.readouterr().err
