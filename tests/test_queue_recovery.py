"""The queue after crashes, signals, dead workers and failed writes: nothing lost, nothing run twice."""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, read_log, run_script

from cool_runner import Expander, Runner, load_study
from cool_runner.cli import run_main
from cool_runner.console import Console
from cool_runner.files import Replacement
from cool_runner.queue import disk, state
from cool_runner.queue.filequeue import FileQueue
from cool_runner.queue.text import cut_first
from cool_runner.queue.workers import Worker
from cool_runner.run import records

RECORD = """
import json, os, time
def main(exp):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ran.jsonl"), "a") as handle:
        handle.write(json.dumps({"Name": exp.Name, "REP": exp.REP, "pid": os.getpid()}) + "\\n")
    if exp.get("sleep"):
        time.sleep(exp.sleep)
    exp.RESULT = 1
"""

HEAD = "Global: {queue: queue.yaml}\nModule: recmod\nYamlLog: log.yaml\n"


class Crash(BaseException):
    """The process died here."""


def ran(folder: Path) -> list[str]:
    path = folder / "ran.jsonl"
    return [json.loads(line)["Name"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def qdir(workdir, write):
    write("recmod.py", RECORD)
    return workdir


def dead_worker() -> Worker:
    """The identity of a process that has ended: its experiments belong to nobody."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return Worker(pid=int(done.stdout))


def fill(folder: Path, write, text: str, **kwargs) -> FileQueue:
    path = write("experiment.yaml", text)
    study = load_study(str(path))
    queue = FileQueue(folder / "queue.yaml", **kwargs)
    queue.fill(Expander(study).expand(), study)
    return queue


def crash_when(monkeypatch, owner, name, condition=lambda *args: True):
    """Make `owner.name` crash (once) when `condition(*args)` holds."""
    real = getattr(owner, name)

    def crashing(*args, **kwargs):
        if condition(*args, **kwargs):
            monkeypatch.setattr(owner, name, real)
            raise Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)


def assert_each_once(folder: Path, names: list[str]) -> None:
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert sorted(r["Name"] for r in read_log(folder / "log.yaml")) == sorted(names)
    status = FileQueue(folder / "queue.yaml").status()
    assert (status["pending"], status["running"]) == (0, [])
    assert list(folder.glob(".queue.yaml*.tmp")) == []


def _take_then_journal_crash(queue, monkeypatch):
    crash_when(monkeypatch, disk.QueueFile, "commit")  # the take is journalled, the file still holds it
    queue.take()


def _take_before_journal_crash(queue, monkeypatch):
    crash_when(monkeypatch, state.Journal, "append", lambda self, entry: "take" in entry)
    queue.take()


def _put_back_crash(queue, monkeypatch):
    experiment = queue.take()  # completely taken; then stopped: put back, but the journal misses it
    crash_when(monkeypatch, state.Journal, "append", lambda self, entry: "back" in entry)
    queue.release(experiment)


def _recovery_crash(queue, monkeypatch):
    queue.take()
    other = FileQueue(queue.path, worker=dead_worker())
    crash_when(monkeypatch, state.Journal, "append", lambda self, entry: "back" in entry)
    other.recover()


def _swap_crash(queue, monkeypatch):
    real = disk.exchange
    crash_when(monkeypatch, Replacement, "discard", lambda self: Path(self.tmp).exists() and swapped)
    swapped = []

    def exchange(first, second):
        swapped.append(True)
        return real(first, second)

    monkeypatch.setattr(disk, "exchange", exchange)
    queue.take()  # the new file is in place; the old one is still there under its temporary name


@pytest.mark.parametrize("crash", [
    pytest.param(_take_then_journal_crash, id="take-journalled-file-not-rewritten"),
    pytest.param(_take_before_journal_crash, id="take-before-the-journal"),
    pytest.param(_put_back_crash, id="put-back-written-not-journalled"),
    pytest.param(_recovery_crash, id="recovery-written-not-journalled"),
    pytest.param(_swap_crash, id="swapped-old-file-left"),
])
def test_a_crash_at_any_step_loses_nothing_and_repeats_nothing(qdir, write, crash):
    queue = fill(qdir, write, HEAD + "---\nName: a\n---\nName: b\n---\nName: c\n", worker=dead_worker())
    queue.open()
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
        crash(queue, patch)
    assert_each_once(qdir, ["a", "b", "c"])
    assert sorted(ran(qdir)) == ["a", "b", "c"]


def test_a_crash_after_the_record_counts_the_record(qdir, write):
    """Killed between logging and journalling: the record is the proof, so nothing runs again."""
    queue = fill(qdir, write, HEAD + "---\nName: a\n---\nName: b\n", worker=dead_worker())
    queue.open()
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
        crash_when(patch, FileQueue, "finish")
        Runner(Console(out=out, err=out, colour=False), paths=[str(qdir)]).run(queue)
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["a"]
    assert_each_once(qdir, ["a", "b"])
    assert ran(qdir) == ["a", "b"]
    assert FileQueue(qdir / "queue.yaml").status()["counts"]["done"] == 2


def test_a_crash_while_filling_writes_the_queue_on_the_next_look(qdir, write):
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Crash):
        crash_when(patch, disk.QueueFile, "prepare")  # the journal has the new queue, the file not yet
        fill(qdir, write, HEAD + "---\nName: a\n---\nName: b\n")
    assert not (qdir / "queue.yaml").exists()
    assert_each_once(qdir, ["a", "b"])


def test_repeat_copies_are_not_made_twice_when_their_first_is_put_back(qdir, write):
    queue = fill(qdir, write, HEAD + "---\nName: r\n", worker=dead_worker())
    edit = (qdir / "queue.yaml").read_text() + "---\nName: typed\nRepeat: 3\n"
    (qdir / "queue.yaml").write_text(edit)
    os.utime(qdir / "queue.yaml", (time.time() - 5, time.time() - 5))
    queue.open()
    assert queue.take().name == "r"
    queue.finish(queue.take(), "done")  # typed REP 0 taken, REP 1 and 2 written in its place; then it died
    with (qdir / "log.yaml").open("w"):
        pass
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert sorted((r["Name"], r["REP"]) for r in read_log(qdir / "log.yaml")) == [
        ("r", 0), ("typed", 0), ("typed", 1), ("typed", 2)]


def test_a_queue_started_by_the_previous_version_goes_on(qdir, write):
    """Its state was one JSON object and its documents had no ids; the dead worker's experiment comes back."""
    write("queue.yaml", "# old\n---\nName: a\n---\nName: b\n")
    size, mtime, inode = (lambda st: (st.st_size, st.st_mtime_ns, st.st_ino))(os.stat(qdir / "queue.yaml"))
    old = {"source": "experiment.yaml", "signature": [size, mtime, inode], "counts": {"taken": 1},
           "running": {"t-0123456789ab": {**dead_worker().describe(), "name": "z", "raw": "---\nName: z\n"}},
           "config": "settings: {repeat: 1, queue: queue.yaml}\ndefaults: {Module: recmod, YamlLog: log.yaml}\n"}
    (qdir / "queue.yaml.state").write_text(json.dumps(old, indent=1))
    assert_each_once(qdir, ["a", "b", "z"])
    assert (qdir / "queue.yaml.state").read_text().startswith('{"head":')


def test_temporary_files_of_a_killed_worker_are_removed(qdir, write):
    fill(qdir, write, HEAD + "---\nName: a\n")
    for name in (".queue.yaml.k2j3.tmp", ".queue.yaml.state.x9.tmp"):
        (qdir / name).write_text("left by kill -9")
    assert_each_once(qdir, ["a"])


def test_other_hosts_are_judged_by_heartbeat(qdir, write):
    queue = fill(qdir, write, HEAD + "---\nName: a\n---\nName: b\n")
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
    assert "\nName: a\n" in cut_first((qdir / "queue.yaml").read_bytes()).raw


def _start_worker(folder: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--resume", "--queue", "queue.yaml", *args],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


SLOW_FIRST = HEAD + "---\nName: slow\nsleep: 60\n---\nName: b\n---\nName: c\n"


@pytest.mark.timeout(90)
def test_sigkill_mid_experiment_then_resume(qdir, write):
    queue = fill(qdir, write, SLOW_FIRST)
    worker = _start_worker(qdir)
    _wait_until(lambda: ran(qdir) == ["slow"] or worker.poll() is not None, "the slow experiment")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    status = queue.status()
    assert status["pending"] == 2 and len(status["running"]) == 1 and not status["running"][0]["alive"]
    journal = qdir / "queue.yaml.state"  # the second run must not sleep a minute: edit the recorded document
    journal.write_text(journal.read_text().replace("sleep: 60", "sleep: 0"))
    result = run_script("run.py", "--resume", "--queue", "queue.yaml", cwd=qdir)
    assert result.returncode == 0, result.stderr
    assert "put back in the queue: slow (taken by" in result.stdout
    assert ran(qdir) == ["slow", "slow", "b", "c"]
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["slow", "b", "c"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_put_the_experiment_back(qdir, write, signum, code):
    fill(qdir, write, SLOW_FIRST)
    worker = _start_worker(qdir)
    _wait_until(lambda: ran(qdir) == ["slow"], "the slow experiment")
    worker.send_signal(signum)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == code, err
    assert "slow put back at the front of the queue" in out and "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name}" in out
    assert "\nName: slow\n" in cut_first((qdir / "queue.yaml").read_bytes()).raw
    assert FileQueue(qdir / "queue.yaml").status()["running"] == []


@pytest.mark.timeout(60)
def test_ctrl_c_in_a_queue_skips_the_experiment_for_good(qdir, write):
    fill(qdir, write, SLOW_FIRST)
    worker = _start_worker(qdir)
    _wait_until(lambda: ran(qdir) == ["slow"], "the slow experiment")
    worker.send_signal(signal.SIGINT)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert [(r["Name"], r["STATUS"]) for r in read_log(qdir / "log.yaml")] == [
        ("slow", "interrupted"), ("b", "done"), ("c", "done")]
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["slow", "b", "c"]
    assert FileQueue(qdir / "queue.yaml").status()["counts"]["interrupted"] == 1


@pytest.mark.timeout(60)
def test_sigterm_while_the_record_is_written_waits_for_it(qdir, write):
    """A signal that arrives while a record is being appended acts only once the record is complete."""
    fill(qdir, write, HEAD + "---\nName: a\n---\nName: b\n")
    with open(qdir / "log.yaml.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the worker will wait for the log's lock with its record ready
        worker = _start_worker(qdir)
        _wait_until(lambda: ran(qdir) == ["a"], "the first experiment")
        time.sleep(0.3)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert worker.poll() is None
        fcntl.flock(held, fcntl.LOCK_UN)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 143, err
    assert [(r["Name"], r["STATUS"]) for r in read_log(qdir / "log.yaml")] == [("a", "done")]
    assert "put back" not in out
    assert_each_once(qdir, ["a", "b"])
    assert ran(qdir) == ["a", "b"]


FOLDER_LOG = "Module: foldermod\nYamlLog: log.yaml\n---\nName: a\n---\nName: bad\nYamlLog: logs\n---\nName: c\n"
#: Its log path is fine when the run starts (it is checked then); the module makes it a folder while it runs.
FOLDER_MODULE = RECORD.replace("    exp.RESULT = 1", """    if exp.Name == "bad" and not os.path.exists("logs.made"):
        os.makedirs("logs", exist_ok=True)
        open("logs.made", "w").close()
    exp.RESULT = 1""")


def test_a_log_that_cannot_be_written_fails_that_experiment_only(qdir, write):
    write("foldermod.py", FOLDER_MODULE)
    write("experiment.yaml", FOLDER_LOG)
    result = run_script("run.py", cwd=qdir)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "[2/3] bad failed" in result.stdout
    assert "    its record was not written: logs: cannot append: it is a folder (name a file" in result.stdout
    assert [r["Name"] for r in read_log(qdir / "log.yaml")] == ["a", "c"]
    assert "1 failed" in result.stdout


def test_in_a_queue_an_unwritten_record_stays_recoverable(qdir, write, capsys):
    write("foldermod.py", FOLDER_MODULE)
    write("experiment.yaml", "Global: {queue: queue.yaml}\n" + FOLDER_LOG)
    assert run_main(["--exp", "experiment.yaml"]) == 1
    out = capsys.readouterr().out
    assert "the experiment stays in the queue: run.py --resume puts it back" in out
    assert run_main(["--status", "--queue", "queue.yaml"]) == 0
    assert "running bad on" in capsys.readouterr().out
    (qdir / "logs").rmdir()
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert "put back in the queue: bad" in capsys.readouterr().out
    assert [r["Name"] for r in read_log(qdir / "logs")] == ["bad"]
    assert ran(qdir) == ["a", "bad", "c", "bad"]


def test_a_lock_timeout_on_the_log_fails_that_experiment(qdir, write, monkeypatch):
    write("experiment.yaml", "Module: recmod\nYamlLog: log.yaml\n---\nName: a\n---\nName: b\nYamlLog: other.yaml\n")
    study = load_study(str(qdir / "experiment.yaml"))
    out = io.StringIO()
    runner = Runner(Console(out=out, err=out, colour=False), paths=[str(qdir)])
    runner.logs = records.RecordLog(timeout=0.2)
    with open(qdir / "log.yaml.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        from cool_runner import MemorySource

        summary = runner.run(MemorySource(Expander(study).expand()))
    assert [o.status for o in summary.outcomes] == ["failed", "done"] and summary.exit_code == 1
    assert "log.yaml: could not lock the file within 0.2 s (another process holds" in out.getvalue()
    assert [r["Name"] for r in read_log(qdir / "other.yaml")] == ["b"]


def test_one_lock_object_per_log_for_the_whole_run(qdir, write, monkeypatch):
    made = []
    real = records.file_lock
    monkeypatch.setattr(records, "file_lock", lambda *args: made.append(args) or real(*args))
    write("experiment.yaml", "Module: recmod\nYamlLog: log.yaml\nRepeat: 5\n---\nName: a\n---\nName: b\n")
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert len(read_log(qdir / "log.yaml")) == 10 and len(made) == 1


HOG = """
import os
from pathlib import Path
def main(exp):
    here = Path(__file__).resolve().parent
    if exp.Name == "e2" and not (here / "hogged").exists():  # fill the disk to the last byte, once
        (here / "hogged").touch()
        hog = os.open(here / "hog", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(hog, b"x" * 512)
        except OSError:
            pass
        finally:
            os.close(hog)
    exp.BLOB = "y" * 9000  # more than a page: it cannot fit in what is left of the last one
"""


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped where it cannot be mounted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.timeout(120)
def test_a_full_disk_keeps_the_log_valid_and_resume_finishes_everything(tiny_disk):
    (tiny_disk / "hogmod.py").write_text(HOG)
    names = [f"e{i}" for i in range(6)]
    (tiny_disk / "experiment.yaml").write_text(
        "Global: {queue: queue.yaml}\nModule: hogmod\nYamlLog: log.yaml\n" + "".join(f"---\nName: {n}\n" for n in names))
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    full = run_script("run.py", "--exp", "experiment.yaml", cwd=tiny_disk, env=env)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("run.py: error: queue.yaml"), full.stderr
    assert "no space left on device (free some space; then run.py --resume --queue queue.yaml" in errors[0]
    assert "[3/6] e2 failed" in full.stdout
    assert "its record was not written: log.yaml: cannot append: no space left on device" in full.stdout
    logged = read_log(tiny_disk / "log.yaml")  # valid YAML: no record cut in half
    assert [r["Name"] for r in logged] == ["e0", "e1"] and all(r["STATUS"] == "done" for r in logged)
    (tiny_disk / "hog").unlink()
    resumed = run_script("run.py", "--resume", "--queue", "queue.yaml", cwd=tiny_disk, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(r["Name"] for r in read_log(tiny_disk / "log.yaml")) == names
    assert yaml.safe_load_all((tiny_disk / "queue.yaml.state").read_text()) is not None
