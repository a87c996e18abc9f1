"""The Slurm launcher against a real one-node Slurm (scripts/slurm-local.sh), and its planning without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, dedent, read_log, run_script
from slack_server import FakeSlack

from cool_runner import ConfigError, Expander, UsageError, load_study
from cool_runner.cli.run import main as run_main
from cool_runner.run.slurm import dependencies_of, plan, settings_of

MODULE = """
import os, time
def main(exp):
    exp.T0 = time.time()
    if exp.get("boom"):
        raise ValueError("boom in " + exp.Name)
    time.sleep(exp.get("sleep", 0.3))
    exp.T1 = time.time()
    exp.ACC = exp.x * 2
"""

SIX = """
Global:
  launcher: slurm
  slurm: {timeout_min: 5, mem_gb: 0.25, folder: slurm-files}
Module: mod
YamlLog: log.yaml
x: 1
---
Name: a
---
Name: b
x: parse E[-1].x + 1
---
Name: c
x: parse E[-1].x + 1
---
Name: d
---
Name: e
---
Name: bad
boom: true
---
Name: after-bad
x: parse E['bad'].x
"""


def cluster_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm():
    """A running local Slurm; CI starts one (a failure to do so fails the tests there), elsewhere they skip."""
    pytest.importorskip("submitit")
    if not cluster_up():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Slurm answers: .ci/run must start it with scripts/slurm-local.sh start")
        pytest.skip("no local Slurm (start one with: scripts/slurm-local.sh install && scripts/slurm-local.sh start)")


@pytest.fixture
def study_dir(tmp_path, slurm):
    (tmp_path / "mod.py").write_text(dedent(MODULE))
    return tmp_path


def cli(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # Jobs inherit the environment: PYTHONPATH makes them import this checkout's cool_runner.
    return run_script("run.py", *args, cwd=cwd, env={"PYTHONPATH": str(ROOT)}, timeout=timeout)


def states(cwd: Path, exp: str | list[str]) -> list[str]:
    """The state word of each experiment line of `--status` (`  [0] a  job 12_0  done`)."""
    args = exp if isinstance(exp, list) else ["--exp", exp]
    lines = cli(cwd, "--status", *args).stdout.splitlines()
    return [line.split("  ")[-1] for line in lines if line.startswith("  [")]


def wait_until_finished(cwd: Path, exp: str | list[str], count: int, timeout: float = 90) -> list[str]:
    """Poll `--status` until `count` experiments have a final state; returns the states."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = states(cwd, exp)
        if sum(word in ("done", "failed", "skipped") for word in found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"the study did not finish within {timeout} s: {found}")


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_study_runs_with_arrays_dependencies_and_skips(study_dir):
    (study_dir / "study.yaml").write_text(dedent(SIX))
    submitted = cli(study_dir, "--exp", "study.yaml")
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted 7 experiment job(s)" in submitted.stdout and "--status --exp study.yaml" in submitted.stdout
    assert sorted(wait_until_finished(study_dir, "study.yaml", 7)) == ["done"] * 5 + ["failed", "skipped"]
    assert cli(study_dir, "--status", "--exp", "study.yaml").stdout.splitlines()[0].endswith(
        "5 done, 1 failed, 1 skipped")
    records = {r["Name"]: r for r in read_log(study_dir / "log.yaml")}
    assert len(read_log(study_dir / "log.yaml")) == 7  # every experiment logged exactly once
    assert {n: r["STATUS"] for n, r in records.items()} == {
        "a": "done", "b": "done", "c": "done", "d": "done", "e": "done", "bad": "failed", "after-bad": "skipped"}
    assert records["a"]["T1"] <= records["b"]["T0"] and records["b"]["T1"] <= records["c"]["T0"]  # the chain
    assert [records[n]["ACC"] for n in "abc"] == [2, 4, 6]
    assert "ValueError: boom in bad" in records["bad"]["TRACEBACK"]
    assert records["after-bad"]["ERROR"] == "dependency 5 (bad) failed"
    for record in records.values():
        assert record["SLURM_JOB_ID"] and Path(record["SLURM_OUTPUT"]).is_file()
    # independent experiments went out as one array: their job ids share the array's id
    arrays = {str(records[n]["SLURM_JOB_ID"]).split("_")[0] for n in ("a", "d", "e", "bad")}
    assert len(arrays) == 1 and "_" in str(records["a"]["SLURM_JOB_ID"])


def test_requeued_job_is_logged_once(study_dir):
    (study_dir / "slow.yaml").write_text(dedent("""
        Global:
          launcher: slurm
          slurm: {timeout_min: 5, mem_gb: 0.25}
        Module: restartable
        YamlLog: log.yaml
        ---
        Name: slow
    """))
    # The first attempt would take a minute; the one after the requeue (SLURM_RESTART_COUNT=1) is quick.
    (study_dir / "restartable.py").write_text(dedent("""
        import os, time
        def main(exp):
            restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
            time.sleep(60 if restarts == 0 else 0.2)
            exp.RESTARTS = restarts
    """))
    assert cli(study_dir, "--exp", "slow.yaml").returncode == 0
    job = read_manifest_job(study_dir / "slurm" / "slow")

    def running() -> bool:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
        return "RUNNING" in out

    def accounting() -> list[str]:
        return subprocess.run(["sacct", "-n", "-P", "-X", "-D", "-o", "State", "-j", job],
                              capture_output=True, text=True).stdout.split()

    def pending_again() -> bool:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
        return "PENDING" in out

    wait_for(running, what="the job to start")
    time.sleep(0.5)
    assert subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True).returncode == 0
    wait_for(pending_again, what="the job to be back in the queue")
    assert states(study_dir, "slow.yaml") == ["requeued"]
    # Slurm holds a requeued job back (BeginTime) for a while; an administrator's nudge keeps the test short.
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], capture_output=True, text=True)
    wait_for(lambda: accounting()[-1:] == ["COMPLETED"], timeout=90, what="the second attempt to end")
    assert wait_until_finished(study_dir, "slow.yaml", 1) == ["done"]
    assert "REQUEUED" in accounting()  # it really ran twice ...
    assert [(r["STATUS"], r["RESTARTS"]) for r in read_log(study_dir / "log.yaml")] == [("done", 1)]  # ... logged once


def read_manifest_job(folder: Path) -> str:
    import json

    return json.loads((folder / "manifest.json").read_text())["experiments"][0]["job"]


def test_queue_mode_with_three_worker_jobs_and_an_added_document(study_dir):
    (study_dir / "q.yaml").write_text(dedent("""
        Global:
          launcher: slurm
          queue: queue.yaml
          slurm: {timeout_min: 5, mem_gb: 0.25}
        Module: mod
        YamlLog: log.yaml
        x: 1
        sleep: 0.5
        ---
        Name: a
        Repeat: 6
    """))
    submitted = cli(study_dir, "--exp", "q.yaml", "--workers", "3")
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted 3 queue worker job(s)" in submitted.stdout
    (study_dir / "more.yaml").write_text("---\nName: added\nx: 5\n")
    added = cli(study_dir, "--queue", "queue.yaml", "--add", "more.yaml")
    assert added.returncode == 0, added.stderr
    wait_for(lambda: (study_dir / "log.yaml").exists() and len(read_log(study_dir / "log.yaml")) >= 7,
             timeout=90, what="seven records")
    time.sleep(1)  # a duplicate would land about now
    records = read_log(study_dir / "log.yaml")
    assert sorted((r["Name"], r["REP"]) for r in records) == [("a", rep) for rep in range(6)] + [("added", 0)]
    assert records[[r["Name"] for r in records].index("added")]["ACC"] == 10
    jobs = {str(r["SLURM_JOB_ID"]) for r in records}
    assert jobs and all("_" in job for job in jobs)  # taken by the array's worker jobs
    status = cli(study_dir, "--status", "--exp", "q.yaml").stdout
    assert "3 queue worker job(s)" in status


def test_cancel_stops_pending_and_running_jobs(study_dir):
    (study_dir / "long.yaml").write_text(dedent("""
        Global:
          launcher: slurm
          slurm: {timeout_min: 5, mem_gb: 0.25}
        Module: mod
        YamlLog: log.yaml
        x: 1
        sleep: 60
        ---
        Name: first
        ---
        Name: second
        x: parse E[-1].x
    """))
    assert cli(study_dir, "--exp", "long.yaml").returncode == 0
    cancelled = cli(study_dir, "--cancel", "--exp", "long.yaml")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled 2 job(s)" in cancelled.stdout

    wait_for(lambda: states(study_dir, "long.yaml") == ["job cancelled"] * 2, what="the jobs to end")
    assert not (study_dir / "log.yaml").exists()
    again = cli(study_dir, "--cancel", "--exp", "long.yaml")
    assert again.returncode == 0 and "cancelled 0 job(s)" in again.stdout


def test_slack_summary_comes_from_a_last_job(study_dir):
    with FakeSlack() as server:
        (study_dir / "s.yaml").write_text(dedent(f"""
            Global:
              launcher: slurm
              slurm: {{timeout_min: 5, mem_gb: 0.25}}
              slack: true
              slack_config: {{channel_final: results, base_url: "{server.base_url}"}}
            Module: mod
            YamlLog: log.yaml
            x: 1
            ---
            Name: one
            ---
            Name: two
            boom: true
        """))
        result = run_script("run.py", "--exp", "s.yaml", cwd=study_dir,
                            env={"PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": server.token})
        assert result.returncode == 0, result.stderr
        assert "the Slack summary follows as job" in result.stdout
        wait_for(lambda: server.posted, timeout=90, what="the summary")
    assert [p["channel"] for p in server.posted] == ["results"]
    text = server.posted[0]["text"]
    assert "1 done, 1 failed, 0 skipped, 0 interrupted" in text and "one" in text and "two" in text


def test_unknown_partition_is_slurms_own_message(study_dir):
    (study_dir / "p.yaml").write_text(dedent("""
        Global:
          launcher: slurm
          slurm: {partition: no-such-partition}
        Module: mod
        YamlLog: log.yaml
        ---
        Name: a
    """))
    result = cli(study_dir, "--exp", "p.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run.py: error: --launcher slurm: Slurm refused the submission: invalid partition specified: "
        "no-such-partition (check Global.slurm (partition, account, qos) against sinfo and sacctmgr)"]


@pytest.mark.timeout(400)
def test_training_smoke_run_through_slurm(study_dir):
    pytest.importorskip("torch")
    result = run_script(
        "run.py", "--exp", str(ROOT / "studies" / "experiment-resnet.yaml"), "--launcher", "slurm",
        "+Global.slurm.folder=slurm-train", "+Global.slurm.mem_gb=2", "+YamlLog=train.yaml", "+dataset=synthetic",
        "+epochs=1", "+steps_per_epoch=1", "+eval_batches=1", "+batch_size=8", "+synthetic.train_size=64",
        "+synthetic.test_size=32", "+model=resnet20", "--pick", "0", "1", "--device", "cpu",
        cwd=study_dir, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "+Global.slurm.folder=slurm-train" in result.stdout  # the follow-up command names the same folder
    status = ["--exp", str(ROOT / "studies" / "experiment-resnet.yaml"), "+Global.slurm.folder=slurm-train"]
    wait_until_finished(study_dir, status, 2, timeout=360)
    records = read_log(study_dir / "train.yaml")
    assert [r["STATUS"] for r in records] == ["done", "done"], [r.get("ERROR") for r in records]
    assert all(0.0 <= r["ACC"] <= 1.0 and r["DEVICE"] == "cpu" for r in records)


# --- without a cluster: planning, settings, errors ---------------------------------------------------------


def expand(write, text: str):
    path = write("study.yaml", text)
    study = load_study(str(path))
    return study, Expander(study).expand()


def test_plan_puts_independent_experiments_in_one_array(write):
    _, experiments = expand(write, SIX)
    depends = dependencies_of(experiments)
    assert depends == {0: [], 1: [0], 2: [1], 3: [], 4: [], 5: [], 6: [5]}
    assert [(g.indices, g.after) for g in plan(experiments, depends)] == [
        ([0, 3, 4, 5], []), ([1], [0]), ([2], [1]), ([6], [5])]


def test_after_and_picks_shape_the_plan(write):
    _, experiments = expand(write, """
        Module: mod
        YamlLog: log.yaml
        x: 1
        ---
        Name: base
        ---
        Name: uses-e
        x: parse E[-1].x
        After: []
        ---
        Name: ordered
        After: [base, 1]
    """)
    assert dependencies_of(experiments) == {0: [], 1: [], 2: [0, 1]}
    picked = [experiments[2]]  # what --pick 2 submits: its dependencies are not part of this submission
    assert dependencies_of(picked) == {2: []}
    assert [(g.indices, g.after) for g in plan(picked, dependencies_of(picked))] == [([2], [])]


@pytest.mark.parametrize(("raw", "message"), [
    pytest.param({"partion": "gpu"}, "unknown setting 'partion' (did you mean partition?)", id="typo"),
    pytest.param("gpu", "slurm must be a mapping of submitit settings", id="not-a-mapping"),
])
def test_slurm_settings_errors(raw, message):
    with pytest.raises(ConfigError) as caught:
        settings_of(raw, "study.yaml")
    assert message in str(caught.value) and caught.value.key[:2] == ("Global", "slurm")


def test_settings_default_to_an_hour():
    assert settings_of({"partition": "gpu"}, "s.yaml") == {"timeout_min": 60, "partition": "gpu"}


def test_dry_shows_the_submission_without_submitting(write, workdir, capsys):
    write("study.yaml", SIX)
    write("mod.py", MODULE)
    assert run_main(["--exp", "study.yaml", "--dry"]) == 0
    out = capsys.readouterr().out
    assert "Slurm submission (timeout_min=5, mem_gb=0.25):" in out
    assert "group 0: array of 4: 0 (a), 3 (d), 4 (e), 5 (bad)" in out
    assert "group 3: job: 6 (after-bad) after 5 (afterany, skipped unless done)" in out
    assert not (workdir / "slurm-files").exists()


def test_no_sbatch_on_path_is_one_line(write, workdir):
    write("study.yaml", SIX)
    write("mod.py", MODULE)
    python_dir = str(Path(shutil.which("python3") or "/usr/bin/python3").parent)
    result = run_script("run.py", "--exp", "study.yaml", cwd=workdir, env={"PATH": python_dir})
    if shutil.which("sbatch", path=python_dir):
        pytest.skip("sbatch lives next to python here")
    assert result.returncode == 2
    assert result.stderr.strip() == ("run.py: error: --launcher: sbatch is not on PATH: this machine cannot submit "
                                     "Slurm jobs (run on the cluster's login node, or drop --launcher slurm to run here)")


def test_missing_submitit_says_how_to_install_it(write, workdir, monkeypatch):
    import sys

    write("study.yaml", SIX)
    monkeypatch.setitem(sys.modules, "submitit", None)  # what an environment without the extra looks like
    from cool_runner.run.slurm import require_slurm

    with pytest.raises(UsageError) as caught:
        require_slurm()
    assert "pip install -e '.[slurm]'" in str(caught.value)


def test_workers_without_a_queue_is_refused(write, workdir, slurm):
    write("study.yaml", SIX)
    write("mod.py", MODULE)
    result = cli(workdir, "--exp", "study.yaml", "--workers", "2")
    assert result.returncode == 2
    assert "--workers with --launcher slurm needs a queue" in result.stderr
