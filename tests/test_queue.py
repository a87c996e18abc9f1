"""The queue file: ids, order, hand edits and editors' saves, rejects, --add, --status, resume from elsewhere."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import read_log, run_script

from cool_runner import Expander, Runner, load_study
from cool_runner.cli import run_main
from cool_runner.console import Console
from cool_runner.queue import disk
from cool_runner.queue.filequeue import FileQueue
from cool_runner.queue.text import cut_first, find_document, id_on_line, with_ids
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


def fill(folder: Path, write, names, extra="", **kwargs) -> FileQueue:
    path = write("experiment.yaml", names_text(names, extra))
    study = load_study(str(path))
    queue = FileQueue(folder / "queue.yaml", **kwargs)
    queue.fill(Expander(study).expand(), study)
    return queue


def edit(path: Path, text: str, age: float = 2.0) -> None:
    """Save the file as a person did a moment ago (older than the queue's settle time)."""
    path.write_text(text)
    then = time.time() - age
    os.utime(path, (then, then))


def documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_ids_sit_in_a_comment_on_the_marker_line():
    counter = iter(f"a{i:07d}" for i in range(100))
    text = b"# head\n\nName: a\n---\nName: b\n--- # note\nName: c\n--- {Name: d}\n---\r\nName: e\r\n--- # id: zzzzzzzz\n"
    marked = with_ids(text, lambda: next(counter))
    assert marked.decode().splitlines()[:3] == ["# head", "", "--- # id: a0000000"]
    assert b"--- # note # id: a0000002\n" in marked and b"--- # id: a0000003\n{Name: d}\n" in marked
    assert b"--- # id: a0000004\r\nName: e\r\n" in marked and b"--- # id: zzzzzzzz\n" in marked
    assert list(yaml.safe_load_all(marked)) == list(yaml.safe_load_all(text))
    assert with_ids(marked, lambda: "never used") is marked
    start, end = find_document(marked, "a0000001")
    assert marked[start:end] == b"--- # id: a0000001\nName: b\n"
    assert find_document(marked, "a000000") is None and find_document(b"x: a0000001\n", "a0000001") is None
    assert id_on_line(b"--- # id: 12345678") is None  # an id starts with a letter: never read as a number


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


def test_a_finished_queue_stays_empty_with_its_counts(qdir, write, capsys):
    write("experiment.yaml", names_text(["a", "b", "c"]))
    assert run_main(["--exp", "experiment.yaml"]) == 0
    out = capsys.readouterr().out
    assert ran(qdir) == ["a", "b", "c"]
    log = read_log(qdir / "log.yaml")
    assert [r["Name"] for r in log] == ["a", "b", "c"]
    assert all(list(r)[-1] == "QUEUE_ID" for r in log) and len({r["QUEUE_ID"] for r in log}) == 3
    assert "queue.yaml: nothing pending; the file stays (empty)" in out
    assert documents(qdir / "queue.yaml") == [] and (qdir / "queue.yaml").read_text().startswith("# cool-runner")
    beside = {p.name for p in qdir.iterdir()} - {"experiment.yaml", "recmod.py", "ran.jsonl", "log.yaml",
                                                 "log.yaml.lock", "__pycache__", "runs"}
    assert beside == {"queue.yaml", "queue.yaml.state", "queue.yaml.lock", "queue.yaml.workers"}
    assert list((qdir / "queue.yaml.workers").iterdir()) == []
    assert run_main(["--status", "--queue", "queue.yaml"]) == 0
    assert "queue.yaml: 0 pending, 0 running, 3 done, 0 failed, 0 skipped, 0 interrupted" in capsys.readouterr().out
    write("experiment.yaml", names_text(["d"]))
    assert run_main(["--exp", "experiment.yaml"]) == 0  # a finished queue needs no --fresh
    assert ran(qdir)[-1] == "d"


def test_queue_documents_hold_only_what_differs_and_carry_ids(qdir, write):
    fill(qdir, write, ["a"], extra="lr: 1.0\nopt: {m: 2}\nnote: parse Name * 2\n")
    text = (qdir / "queue.yaml").read_text()
    (doc,) = documents(qdir / "queue.yaml")
    assert doc == {"Name": "a", "opt": {"m": 2}, "note": "aa", "INDEX": 0, "REP": 0, "GLOBAL_REP": 0,
                   "RND_IDX": doc["RND_IDX"]}
    (marker,) = [line for line in text.splitlines() if line.startswith("---")]
    assert id_on_line(marker.encode()) is not None


def test_taking_rewrites_only_the_first_document_and_marks_typed_ones(qdir, write):
    queue = fill(qdir, write, ["a", "b"], settle=0.05)
    text = (qdir / "queue.yaml").read_text()
    edit(qdir / "queue.yaml", text + "# my note about what comes next\n---\nName: c   # added by hand\n")
    queue.open()
    try:
        assert queue.take().name == "a"
    finally:
        queue.close()
    after = (qdir / "queue.yaml").read_text()
    first = cut_first(text.encode()).raw
    assert after.startswith(text.replace(first, "", 1))  # everything else byte for byte
    tail = after[len(text) - len(first):]
    assert tail.startswith("# my note about what comes next\n--- # id: ") and tail.endswith("Name: c   # added by hand\n")


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


def test_a_worker_started_elsewhere_imports_modules_beside_the_experiment_file(tmp_path, write, monkeypatch):
    write("study/mymodule.py", "def main(exp):\n    exp.OK = 1\n")
    write("study/experiment.yaml", "Global: {queue: queue.yaml}\nModule: mymodule\nYamlLog: log.yaml\n---\nName: a\n"
                                   "---\nName: b\n")
    (tmp_path / "elsewhere").mkdir()
    result = run_script("run.py", "--exp", "study/experiment.yaml", "--pick", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    write("more.yaml", "Name: c\n")
    assert run_script("run.py", "--queue", "queue.yaml", "--add", "more.yaml", cwd=tmp_path).returncode == 0
    resumed = run_script("run.py", "--resume", "--queue", str(tmp_path / "queue.yaml"), cwd=tmp_path / "elsewhere")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "module not found" not in resumed.stdout + resumed.stderr
    assert [r["Name"] for r in read_log(tmp_path / "log.yaml")] == ["a"]
    assert [r["Name"] for r in read_log(tmp_path / "elsewhere" / "log.yaml")] == ["c"]


def test_hand_added_partial_documents_are_completed(qdir, write):
    fill(qdir, write, ["a"], extra="lr: 0.5\n")
    text = (qdir / "queue.yaml").read_text()
    edit(qdir / "queue.yaml", text + "---\nName: extra\nlr: parse E[-1].lr / 2\nRepeat: 2\n"
                                     "---\nName: third\nlr: parse E['a'].lr * 4\n")
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    log = read_log(qdir / "log.yaml")
    assert [(r["Name"], r["lr"], r["REP"]) for r in log] == [
        ("a", 0.5, 0), ("extra", 0.25, 0), ("extra", 0.125, 1), ("third", 2.0, 0)]
    assert log[1]["RND_IDX"] == log[2]["RND_IDX"] and log[1]["Module"] == "recmod"
    assert all(r["HOST"] == Worker().host for r in log)
    assert len({r["QUEUE_ID"] for r in log}) == 4


def test_invalid_documents_are_rejected_and_the_queue_goes_on(qdir, write):
    fill(qdir, write, ["a"])
    text = (qdir / "queue.yaml").read_text()
    edit(qdir / "queue.yaml", text + "---\n- not\n- a mapping\n---\nName: bad\nx: parse 1/0\n---\nName: fine\n")
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "fine"]
    rejected = (qdir / "queue.rejected.yaml").read_text()
    assert "must be a mapping, not a list" in rejected and "- not\n- a mapping" in rejected
    assert "x: parse 1/0: ZeroDivisionError" in rejected and "Name: bad" in rejected


def test_broken_save_waits_until_fixed(qdir, write):
    """A module saves a half-edited queue; a helper fixes it a little later; nothing is lost or overwritten."""
    write("editmod.py", """
from pathlib import Path
def main(exp):
    if exp.Name == "a":
        Path("queue.yaml").write_text(Path("queue.yaml").read_text() + "---\\nName: [broken\\n")
""")
    path = write("experiment.yaml", names_text(["a", "b"]).replace("Module: recmod", "Module: editmod"))
    study = load_study(str(path))
    queue = FileQueue(qdir / "queue.yaml", poll=0.05, settle=0.1)
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


def test_broken_save_warning_names_the_line(qdir, write, caplog, monkeypatch):
    queue = fill(qdir, write, ["a"], poll=0.01, settle=0.01)
    edit(qdir / "queue.yaml", (qdir / "queue.yaml").read_text() + "---\nName: [oops\n")
    broken_line = (qdir / "queue.yaml").read_text().splitlines().index("Name: [oops") + 1
    calls = []

    def fake_sleep(seconds):
        calls.append(seconds)
        if len(calls) == 3:
            edit(qdir / "queue.yaml", (qdir / "queue.yaml").read_text().replace("[oops", "oops"))

    import cool_runner.queue.taking as taking

    monkeypatch.setattr(taking.time, "sleep", fake_sleep)
    queue.open()
    try:
        assert queue.take().name == "a"
    finally:
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
    assert "queue.yaml: no queue here" in capsys.readouterr().out


def test_add_appends_documents_with_ids(qdir, write):
    fill(qdir, write, ["a"])
    write("more.yaml", "Name: m1\n---\nName: m2\n")
    assert run_main(["--queue", "queue.yaml", "--add", "more.yaml"]) == 0
    markers = [line for line in (qdir / "queue.yaml").read_text().splitlines() if line.startswith("---")]
    assert len(markers) == 3 and all(id_on_line(m.encode()) for m in markers)
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "m1", "m2"]


def test_a_save_from_a_stale_buffer_does_not_run_a_taken_experiment_again(qdir, write, caplog):
    """The editor still holds a document a worker took; saving puts it back; it is dropped with one warning."""
    queue = fill(qdir, write, ["a", "b"], settle=0.05)
    buffer = (qdir / "queue.yaml").read_text()
    queue.open()
    try:
        taken = queue.take()
        queue.finish(taken, "done")
        edit(qdir / "queue.yaml", buffer + "---\nName: typed\n")
        assert [queue.take().name, queue.take().name, queue.take()] == ["b", "typed", None]
    finally:
        queue.close()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"queue.yaml:4: dropped a document (a) that was already taken (id {taken.ticket}, done)" in warning
    assert f"to run it again, add it once more without `# id: {taken.ticket}`" in warning
    assert queue.status()["counts"]["dropped"] == 1


def test_a_copied_document_runs_once_until_its_id_is_removed(qdir, write, capsys):
    fill(qdir, write, ["a"])
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    record = read_log(qdir / "log.yaml")[0]
    copy = f"--- # id: {record['QUEUE_ID']}\nName: a\nREP: 0\n"
    text = (qdir / "queue.yaml").read_text()
    edit(qdir / "queue.yaml", text + copy)
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a"]
    assert "warning: queue.yaml:4: dropped a document (a) that was already taken" in capsys.readouterr().err
    edit(qdir / "queue.yaml", text + copy.replace(f" # id: {record['QUEUE_ID']}", ""))
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    assert ran(qdir) == ["a", "a"]


@pytest.mark.parametrize("mode", ["empty", "half"])
def test_a_file_being_saved_is_read_once_it_settles(qdir, write, mode):
    """An editor that truncates the file, pauses and writes: the worker never takes the empty or half file."""
    queue = fill(qdir, write, ["a"], settle=0.3)
    text = (qdir / "queue.yaml").read_text() + "---\nName: typed\nlr: 2.0\n"
    (qdir / "queue.yaml").write_text("" if mode == "empty" else text[: text.index("lr: 2.0")])
    writer = threading.Timer(0.15, lambda: (qdir / "queue.yaml").write_text(text))
    writer.start()
    queue.open()
    try:
        names = [queue.take().name, queue.take()]
        assert names[0] == "a" and names[1].name == "typed" and names[1].values["lr"] == 2.0
    finally:
        writer.join()
        queue.close()


def test_a_rename_save_just_before_the_swap_is_swapped_back(qdir, write, monkeypatch):
    """An editor's rename lands between the last check and our swap: its file goes back, minus the taken one."""
    queue = fill(qdir, write, ["a", "b"], settle=0.05)
    real = disk.exchange
    saved = []

    def editor_saves_first(first, second):
        if not saved:
            saved.append(True)
            current = Path(second).read_text()
            (qdir / "editor.tmp").write_text(current + "---\nName: typed-meanwhile\n")
            os.replace(qdir / "editor.tmp", second)
        return real(first, second)

    monkeypatch.setattr(disk, "exchange", editor_saves_first)
    queue.open()
    try:
        assert queue.take().name == "a"
    finally:
        queue.close()
    assert saved and [d["Name"] for d in documents(qdir / "queue.yaml")] == ["b", "typed-meanwhile"]
    assert [e["name"] for e in queue.status()["running"]] == ["a"]


def test_a_save_between_reading_and_replacing_is_not_overwritten(qdir, write, monkeypatch):
    queue = fill(qdir, write, ["a", "b"], settle=0.05)
    real = disk.QueueFile.prepare
    saved = []

    def editor_saves_meanwhile(self, parts):
        replacement = real(self, parts)
        if not saved:
            saved.append(True)
            with open(qdir / "queue.yaml", "a") as handle:
                handle.write("---\nName: typed-meanwhile\n")
        return replacement

    monkeypatch.setattr(disk.QueueFile, "prepare", editor_saves_meanwhile)
    queue.open()
    try:
        assert queue.take().name == "a"
    finally:
        queue.close()
    assert [d["Name"] for d in documents(qdir / "queue.yaml")] == ["b", "typed-meanwhile"]
