"""The queue file: order, hand edits, broken saves, rejects, resume after kill -9, several workers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, read_log, run_script

from cool_runner import Expander, Runner, load_study
from cool_runner.cli import run_main
from cool_runner.console import Console
from cool_runner.queue.filequeue import FileQueue
from cool_runner.queue.text import cut_first
from cool_runner.queue.workers import Worker

RECORD = """
import json, os, time
def main(exp):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ran.jsonl"), "a") as handle:
        handle.write(json.dumps({"Name": exp.Name, "pid": os.getpid()}) + "\\n")
    if exp.get("sleep"):
        time.sleep(exp.sleep)
    exp.RESULT = exp.get("lr", 0)
"""

HEAD = "Global: {queue: queue.yaml}\nModule: recmod\nYamlLog: log.yaml\nlr: 1.0\n"


def ran(folder: Path) -> list[str]:
    path = folder / "ran.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["Name"] for line in path.read_text().splitlines()]


@pytest.fixture
def qdir(workdir, write):
    write("recmod.py", RECORD)
    return workdir


def names_text(names, extra=""):
    return HEAD + "".join(f"---\nName: {n}\n{extra}" for n in names)


def fill(folder: Path, write, names, extra="") -> FileQueue:
    path = write("experiment.yaml", names_text(names, extra))
    study = load_study(str(path))
    queue = FileQueue(folder / "queue.yaml")
    queue.fill(Expander(study).expand(), study)
    return queue


def test_cut_first_keeps_everything_else_byte_for_byte():
    text = "# header\n\n---\nName: a  # comment\nx: |\n  ---not a marker\n---   # second\nName: b\n\n# tail\n"
    cut = cut_first(text.encode())
    assert cut.raw == "---\nName: a  # comment\nx: |\n  ---not a marker\n"
    assert cut.rest() == b"# header\n\n---   # second\nName: b\n\n# tail\n"
    assert cut.line == 3 and cut.pending() == 1
    implicit = cut_first(b"Name: a\n---\nName: b\n")
    assert (implicit.raw, implicit.rest(), implicit.line) == ("---\nName: a\n", b"---\nName: b\n", 0)
    assert cut_first(b"# only a comment\n\n") is None
    assert cut_first(b"---\n").raw == "---\n" and cut_first(b"---\n").rest() == b""


def test_queue_runs_in_order_and_is_removed_when_done(qdir, write):
    write("experiment.yaml", names_text(["a", "b", "c"]))
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert ran(qdir) == ["a", "b", "c"]
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["a", "b", "c"]
    leftovers = {p.name for p in qdir.iterdir()} - {"experiment.yaml", "recmod.py", "ran.jsonl", "log.yaml",
                                                    "log.yaml.lock", "queue.yaml.lock", "__pycache__", "runs"}
    assert leftovers == set()


def test_queue_documents_hold_only_what_differs_from_the_defaults(qdir, write):
    fill(qdir, write, ["a"], extra="lr: 1.0\nopt: {m: 2}\nnote: parse Name * 2\n")
    text = (qdir / "queue.yaml").read_text()
    (doc,) = [d for d in __import__("yaml").safe_load_all(text) if d]
    assert doc == {"Name": "a", "opt": {"m": 2}, "note": "aa", "INDEX": 0, "REP": 0, "GLOBAL_REP": 0,
                   "RND_IDX": doc["RND_IDX"]}


def test_taking_rewrites_only_the_first_document(qdir, write):
    queue = fill(qdir, write, ["a", "b"])
    text = (qdir / "queue.yaml").read_text()
    edited = text + "# my note about what comes next\n---\nName: c   # added by hand\n"
    (qdir / "queue.yaml").write_text(edited)
    queue.open()
    try:
        experiment = queue.take()
    finally:
        queue.close()
    assert experiment.name == "a"
    after = (qdir / "queue.yaml").read_text()
    assert after == edited.replace(cut_first(edited.encode()).raw, "", 1)
    assert "# my note about what comes next" in after and "# added by hand" in after


def test_existing_queue_needs_resume_or_fresh(qdir, write):
    fill(qdir, write, ["a", "b"])
    result = run_script("run.py", "--exp", "experiment.yaml", cwd=qdir)
    assert result.returncode == 2
    assert "queue.yaml: the queue already holds 2 pending and 0 running experiment(s)" in result.stderr
    assert "--resume" in result.stderr and "--fresh" in result.stderr and "Traceback" not in result.stderr
    assert ran(qdir) == []
    write("experiment.yaml", names_text(["x"]))
    assert run_main(["--exp", "experiment.yaml", "--fresh"]) == 0
    assert ran(qdir) == ["x"]


def test_resume_does_not_read_the_experiment_file(qdir, write):
    fill(qdir, write, ["a", "b"])
    (qdir / "experiment.yaml").write_text("this: [is, broken\n")
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "b"]


def test_hand_added_partial_documents_are_completed(qdir, write):
    queue = fill(qdir, write, ["a"], extra="lr: 0.5\n")
    with open(qdir / "queue.yaml", "a") as handle:
        handle.write("---\nName: extra\nlr: parse E[-1].lr / 2\nRepeat: 2\n---\nName: third\nlr: parse E['a'].lr * 4\n")
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    log = read_log(qdir / "log.yaml")
    assert [(r["Name"], r["lr"], r["REP"]) for r in log] == [
        ("a", 0.5, 0), ("extra", 0.25, 0), ("extra", 0.125, 1), ("third", 2.0, 0)]
    assert log[1]["RND_IDX"] == log[2]["RND_IDX"] and log[1]["Module"] == "recmod"
    assert all(r["HOST"] == Worker().host for r in log)
    del queue


def test_invalid_documents_are_rejected_and_the_queue_goes_on(qdir, write):
    fill(qdir, write, ["a"])
    with open(qdir / "queue.yaml", "a") as handle:
        handle.write("---\n- not\n- a mapping\n---\nName: bad\nx: parse 1/0\n---\nName: fine\n")
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "fine"]
    rejected = (qdir / "queue.rejected.yaml").read_text()
    assert "must be a mapping, not a list" in rejected and "- not\n- a mapping" in rejected
    assert "x: parse 1/0: ZeroDivisionError" in rejected and "Name: bad" in rejected


def test_broken_save_waits_until_fixed(qdir, write):
    """A module saves a half-edited queue; a helper fixes it a little later; nothing is lost or overwritten."""
    write("editmod.py", """
import time
from pathlib import Path
def main(exp):
    if exp.Name == "a":
        Path("queue.yaml").write_text(Path("queue.yaml").read_text() + "---\\nName: [broken\\n")
""")
    path = write("experiment.yaml", names_text(["a", "b"]).replace("Module: recmod", "Module: editmod"))
    study = load_study(str(path))
    queue = FileQueue(qdir / "queue.yaml", poll=0.05)
    queue.fill(Expander(study).expand(), study)
    broken_seen = threading.Event()

    def fixer():
        deadline = time.monotonic() + 20
        while "[broken" not in (qdir / "queue.yaml").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.4)
        broken_seen.set()
        assert "[broken" in (qdir / "queue.yaml").read_text()  # never overwritten while broken
        text = (qdir / "queue.yaml").read_text().replace("Name: [broken", "Name: fixed")
        (qdir / "queue.yaml").write_text(text)

    helper = threading.Thread(target=fixer)
    helper.start()
    out = io.StringIO()
    runner = Runner(Console(out=out, err=out, colour=False), paths=[str(qdir)])
    queue.open()
    try:
        summary = runner.run(queue)
    finally:
        queue.close()
    helper.join(5)
    assert broken_seen.is_set()
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["a", "b", "fixed"]
    assert summary.count("done") == 3


def test_broken_save_warning_names_the_line(qdir, write, caplog):
    queue = fill(qdir, write, ["a"])
    (qdir / "queue.yaml").write_text((qdir / "queue.yaml").read_text() + "---\nName: [oops\n")
    broken_line = (qdir / "queue.yaml").read_text().splitlines().index("Name: [oops") + 1
    queue.poll = 0.01
    calls = []

    def fake_sleep(seconds):
        calls.append(seconds)
        if len(calls) == 3:
            (qdir / "queue.yaml").write_text((qdir / "queue.yaml").read_text().replace("[oops", "oops"))

    import cool_runner.queue.filequeue as jq

    original = jq.time.sleep
    jq.time.sleep = fake_sleep
    try:
        queue.open()
        assert queue.take().name == "a"
    finally:
        jq.time.sleep = original
        queue.close()
    assert len(calls) == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "queue.yaml:" in warnings[0] and "invalid YAML" in warnings[0]
    assert "waiting for the file to be fixed" in warnings[0]
    line = int(warnings[0].split("queue.yaml:")[1].split(":")[0])
    assert line in (broken_line, broken_line + 1)  # libyaml reports an unclosed [ where the file ends


def test_status(qdir, write, capsys):
    fill(qdir, write, ["a", "b", "c"])
    assert run_main(["--status", "--queue", "queue.yaml"]) == 0
    assert "queue.yaml: 3 pending, 0 running, 0 done, 0 failed" in capsys.readouterr().out
    assert run_main(["--status", "--exp", "experiment.yaml"]) == 0


def test_status_without_queue(qdir, capsys):
    assert run_main(["--status", "--queue", "queue.yaml"]) == 0
    assert "no queue" in capsys.readouterr().out


def test_add_appends_under_the_lock(qdir, write):
    fill(qdir, write, ["a"])
    write("more.yaml", "Name: m1\n---\nName: m2\n")
    assert run_main(["--queue", "queue.yaml", "--add", "more.yaml"]) == 0
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "m1", "m2"]


def test_crash_between_state_and_queue_write_loses_nothing_and_repeats_nothing(qdir, write):
    queue = fill(qdir, write, ["a", "b"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    queue.worker = Worker(pid=int(dead.stdout))
    from cool_runner.files import Replacement

    original = Replacement.commit

    def crash_before_the_rename(self):
        if self.target.endswith("queue.yaml"):
            raise OSError("power cut")
        original(self)

    Replacement.commit = crash_before_the_rename
    try:
        with pytest.raises(OSError):
            queue._locked(queue._take)
    finally:
        Replacement.commit = original
    assert len(queue.read_state().running) == 1
    fresh = FileQueue(qdir / "queue.yaml")
    assert fresh.open() == []  # the document never left the queue, so nothing is put back twice
    fresh.close()
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "b"]


def test_other_hosts_are_judged_by_heartbeat(qdir, write):
    queue = fill(qdir, write, ["a", "b"])
    queue.worker = Worker(host="gpu-node-7", pid=4242)
    queue.heartbeat = type(queue.heartbeat)(queue.beats, queue.worker, 10)
    queue.heartbeat.start()
    taken = queue.take()
    queue.heartbeat.stop.set()
    here = FileQueue(qdir / "queue.yaml", stale_after=30)
    assert here.recover() == []  # fresh heartbeat: alive
    old = time.time() - 120
    os.utime(qdir / "queue.yaml.workers" / "gpu-node-7-4242", (old, old))
    assert here.recover() == [f"{taken.name} (taken by gpu-node-7 pid 4242)"]
    assert cut_first((qdir / "queue.yaml").read_bytes()).raw.startswith("---\nName: a")


def _start_worker(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--resume", "--queue", "queue.yaml", *args],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.timeout(90)
def test_sigkill_mid_experiment_then_resume(qdir, write):
    write("experiment.yaml", names_text(["slow", "b", "c"]).replace("---\nName: slow\n", "---\nName: slow\nsleep: 60\n"))
    study = load_study(str(qdir / "experiment.yaml"))
    queue = FileQueue(qdir / "queue.yaml")
    queue.fill(Expander(study).expand(), study)
    worker = _start_worker(qdir)
    deadline = time.monotonic() + 30
    while ran(qdir) != ["slow"]:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    status = queue.status()
    assert status["pending"] == 2 and len(status["running"]) == 1 and not status["running"][0]["alive"]
    # The second run must not sleep for a minute: drop the sleep by editing the recorded document.
    state_file = qdir / "queue.yaml.state"
    state_file.write_text(state_file.read_text().replace("sleep: 60", "sleep: 0"))
    result = run_script("run.py", "--resume", "--queue", "queue.yaml", cwd=qdir)
    assert result.returncode == 0, result.stderr
    assert "put back in the queue: slow (taken by" in result.stdout
    assert ran(qdir) == ["slow", "slow", "b", "c"]
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["slow", "b", "c"]
    assert not (qdir / "queue.yaml").exists()


@pytest.mark.timeout(60)
def test_sigterm_puts_the_experiment_back(qdir, write):
    write("experiment.yaml", names_text(["slow", "b"]).replace("---\nName: slow\n", "---\nName: slow\nsleep: 60\n"))
    study = load_study(str(qdir / "experiment.yaml"))
    FileQueue(qdir / "queue.yaml").fill(Expander(study).expand(), study)
    worker = _start_worker(qdir)
    deadline = time.monotonic() + 30
    while ran(qdir) != ["slow"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 143, err
    assert "slow put back at the front of the queue" in out and "Traceback" not in err
    assert cut_first((qdir / "queue.yaml").read_bytes()).raw.startswith("---\nName: slow")
    assert FileQueue(qdir / "queue.yaml").status()["running"] == []


APPENDER = """
import sys
from cool_runner.queue.filequeue import FileQueue
queue = FileQueue(sys.argv[1])
for i in range(100):
    queue.append(f"Name: added-{i}\\n")
"""


@pytest.mark.timeout(240)
def test_eight_workers_and_an_appender_run_everything_exactly_once(qdir, write):
    names = [f"exp-{i}" for i in range(500)]
    fill(qdir, write, names)
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, "queue.yaml"], cwd=qdir,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers = [_start_worker(qdir) for _ in range(8)]
    assert appender.wait(120) == 0
    for worker in workers:
        _out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
    if (qdir / "queue.yaml").exists():  # the appender outlived the workers: drain what it added
        assert run_script("run.py", "--resume", "--queue", "queue.yaml", cwd=qdir, timeout=120).returncode == 0
    expected = sorted(names + [f"added-{i}" for i in range(100)])
    assert sorted(ran(qdir)) == expected
    assert sorted(r["Name"] for r in read_log(qdir / "log.yaml")) == expected
    assert not (qdir / "queue.yaml").exists() and not (qdir / "queue.yaml.state").exists()
    pids = {json.loads(line)["pid"] for line in (qdir / "ran.jsonl").read_text().splitlines()}
    assert len(pids) > 1


def test_a_save_during_a_take_is_not_overwritten(qdir, write):
    """An editor that saves between our read and our rename (it cannot take the lock) wins; the take retries."""
    queue = fill(qdir, write, ["a", "b"])
    from cool_runner.queue.state import State

    original = State.write
    saved = {"done": False}

    def write_and_edit(self, path):
        original(self, path)
        if not saved["done"] and self.running:
            saved["done"] = True
            with open(qdir / "queue.yaml", "a") as handle:
                handle.write("---\nName: typed-meanwhile\n")

    State.write = write_and_edit
    try:
        experiment = queue.take()
    finally:
        State.write = original
    assert saved["done"] and experiment.name == "a"
    names = [d["Name"] for d in __import__("yaml").safe_load_all((qdir / "queue.yaml").read_text()) if d]
    assert names == ["b", "typed-meanwhile"]
    assert [e["name"] for e in queue.read_state().running.values()] == ["a"]
