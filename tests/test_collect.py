"""collect.py: recursive gathering, exclusion, deduplication, safety, symlinks, parallel reading, cache."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml
from conftest import ROOT, read_log, run_script

from cool_runner.cli import collect_main
from cool_runner.cli.collect import parse_args
from cool_runner.errors import UsageError
from cool_runner.files import write_new
from cool_runner.logs import reader
from cool_runner.logs.collect import Cache, collect
from cool_runner.logs.reader import MARK


def log_text(*records, status="done"):
    """A log of run records: each gets a STATUS (as the runner writes it) unless status is None."""
    records = [r if status is None or "STATUS" in r else {**r, "STATUS": status} for r in records]
    return "".join(yaml.safe_dump(r, explicit_start=True, sort_keys=False) for r in records)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/b/deep").mkdir(parents=True)
    (tmp_path / "data/a").mkdir(parents=True)
    (tmp_path / "data/a/log.yaml").write_text(log_text({"Name": "a1", "ACC": 0.1}, {"Name": "a2", "ACC": 0.2}))
    (tmp_path / "data/b/deep/run.yml").write_text(log_text({"Name": "b1", "ACC": 0.3}))
    (tmp_path / "data/b/notes.txt").write_text("Name: not a log\n")
    (tmp_path / "data/b/list.yaml").write_text("- 1\n- 2\n")  # not a mapping: no record
    return tmp_path


def output_of(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return out[-1], out


def test_collects_recursively_in_sorted_order(tree, capsys):
    assert collect_main(["data"]) == 0
    path, lines = output_of(capsys)
    assert re.fullmatch(r"collected/logs_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?\.yaml", path)
    assert [r["Name"] for r in read_log(tree / path)] == ["a1", "a2", "b1"]
    assert "collected 3 record(s) from 3 file(s)" in lines[0]
    assert (tree / path).read_text().startswith(MARK)


def test_duplicates_across_paths_are_kept_once(tree, capsys):
    (tree / "copy").mkdir()
    (tree / "copy/log.yaml").write_text(log_text({"ACC": 0.1, "Name": "a1"}, {"Name": "new"}))
    assert collect_main(["data", "copy"]) == 0
    path, lines = output_of(capsys)
    assert [r["Name"] for r in read_log(tree / path)] == ["a1", "a2", "b1", "new"]
    assert "1 duplicate(s) dropped" in lines[0]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("b", ["a1", "a2"], id="folder-name"),
        pytest.param("log.yaml", ["b1"], id="file-name"),
        pytest.param("*.yml", ["a1", "a2"], id="glob"),
        pytest.param("de*", ["a1", "a2"], id="folder-glob"),
        pytest.param("data/a", ["b1"], id="relative-path"),
    ],
)
def test_exclude(tree, capsys, pattern, expected):
    assert collect_main(["data", "--exclude", pattern]) == 0
    path, _ = output_of(capsys)
    assert [r["Name"] for r in read_log(tree / path)] == expected


def test_verbose_prints_folders_with_counts(tree, capsys):
    assert collect_main(["data", "-v"]) == 0
    _, lines = output_of(capsys)
    assert "data/a: 2 record(s)" in lines and os.path.join("data", "b", "deep") + ": 1 record(s)" in lines


def test_output_folder_and_tool_files_are_not_collected_again(tree, capsys):
    assert collect_main(["data", "--dest", "data/out", "-v"]) == 0
    assert collect_main(["data", "--dest", "data/out", "-v"]) == 0
    path, lines = output_of(capsys)
    assert not any(line.startswith("data/out:") for line in lines)
    assert any(line.startswith("data/a:") for line in lines)
    (tree / "data/a/filtered.yaml").write_text(MARK + "filter\n" + log_text({"Name": "from-filter"}))
    assert collect_main(["data", "--dest", "elsewhere"]) == 0
    path, _ = output_of(capsys)
    assert "from-filter" not in [r["Name"] for r in read_log(tree / path)]


def test_same_second_runs_never_collide(tree, monkeypatch):
    class Frozen:
        @staticmethod
        def now():
            import datetime

            return datetime.datetime(2026, 1, 1, 12, 0, 0)

    monkeypatch.setattr("cool_runner.files.datetime", Frozen)
    names = [write_new(tree / "out", "logs", ".yaml", f"run {i}\n").name for i in range(3)]
    assert names == ["logs_2026-01-01_12-00-00.yaml", "logs_2026-01-01_12-00-00-2.yaml",
                     "logs_2026-01-01_12-00-00-3.yaml"]
    assert [(tree / "out" / name).read_text() for name in names] == ["run 0\n", "run 1\n", "run 2\n"]


def test_broken_and_hostile_files_are_skipped_with_a_warning(tree):
    (tree / "data/a/broken.yaml").write_text("Name: ok\n---\nName: [unclosed\n")
    (tree / "data/a/evil.yaml").write_text("!!python/object/apply:os.system ['touch pwned']\n")
    (tree / "data/a/binary.yaml").write_bytes(b"Name: \xff\xfe bad\n")
    result = run_script("collect.py", "data", cwd=tree)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 3
    assert any(re.match(r"warning: skipped data/a/broken.yaml:[34]: invalid YAML", w) for w in warnings)
    assert any("data/a/evil.yaml:1: refused" in w for w in warnings)
    assert any("data/a/binary.yaml" in w for w in warnings)
    assert "3 file(s) skipped" in result.stdout
    assert not (tree / "pwned").exists()
    records = read_log(tree / result.stdout.strip().splitlines()[-1])
    assert [r["Name"] for r in records] == ["a1", "a2", "b1"]


def test_symlinked_folders_need_follow_links_and_loops_end(tree, capsys):
    (tree / "outside").mkdir()
    (tree / "outside/log.yaml").write_text(log_text({"Name": "linked"}))
    os.symlink(tree / "outside", tree / "data/link")
    os.symlink(tree / "data", tree / "data/b/loop")
    assert collect_main(["data"]) == 0
    path, _ = output_of(capsys)
    assert "linked" not in [r["Name"] for r in read_log(tree / path)]
    assert collect_main(["data", "--follow-links"]) == 0
    path, _ = output_of(capsys)
    assert sorted(r["Name"] for r in read_log(tree / path)) == ["a1", "a2", "b1", "linked"]


def test_unicode_paths(tree, capsys):
    folder = tree / "données" / "実験"
    folder.mkdir(parents=True)
    (folder / "журнал.yaml").write_text(log_text({"Name": "ünï", "note": "✓"}), encoding="utf-8")
    assert collect_main(["données", "--dest", "résultats"]) == 0
    path, _ = output_of(capsys)
    assert read_log(tree / path) == [{"Name": "ünï", "note": "✓", "STATUS": "done"}]


def test_parallel_and_serial_reading_agree(tmp_path):
    for i in range(150):
        folder = tmp_path / f"run{i // 10:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"log{i:03d}.yaml").write_text(log_text({"i": i, "x": i % 7}, {"i": i, "dup": True}))
    serial = collect([str(tmp_path)], jobs=1)
    parallel = collect([str(tmp_path)], jobs=2)
    assert serial.records == parallel.records and len(serial.records) == 300
    assert [r["i"] for r in parallel.records[::2]] == list(range(150))


def test_cache_rereads_only_changed_files(tree, capsys):
    assert collect_main(["data"]) == 0
    output_of(capsys)
    assert collect_main(["data"]) == 0
    _, lines = output_of(capsys)
    assert "3 from the cache" in lines[0]
    (tree / "data/a/log.yaml").write_text(log_text({"Name": "changed", "ACC": 1.0}))
    assert collect_main(["data"]) == 0
    path, lines = output_of(capsys)
    assert "2 from the cache" in lines[0]
    assert [r["Name"] for r in read_log(tree / path)] == ["changed", "b1"]
    assert collect_main(["data", "--no-cache"]) == 0
    assert "from the cache" not in output_of(capsys)[1][0]


def test_cache_is_json_and_keeps_any_yaml_exactly(tree):
    import datetime

    (tree / "data/a/dates.yaml").write_text("when: 2026-01-01  # a date\n1: int key\nSTATUS: done\n")
    cache = Cache(tree / "cache.json")
    first = collect(["data"], cache=cache)
    cache.save()
    json.loads((tree / "cache.json").read_text())
    again = Cache(tree / "cache.json")
    second = collect(["data"], cache=again)
    assert second.documents == first.documents and second.cached == 4
    assert {"when": datetime.date(2026, 1, 1), 1: "int key", "STATUS": "done"} in second.records


def test_output_keeps_each_documents_own_text(tree, capsys):
    (tree / "data/a/log.yaml").write_text("# header\n---\nName: a1  # the best one\nopt: {lr: 0.1}\nSTATUS: done\n"
                                         "---\n  Name: a2\n  TIME_ELAPSED: 1\n")
    assert collect_main(["data/a"]) == 0
    path, _ = output_of(capsys)
    text = (tree / path).read_text()
    assert "Name: a1  # the best one\nopt: {lr: 0.1}\n" in text
    assert read_log(tree / path) == [{"Name": "a1", "opt": {"lr": 0.1}, "STATUS": "done"},
                                     {"Name": "a2", "TIME_ELAPSED": 1}]


def test_missing_path_is_a_usage_error(tree):
    result = run_script("collect.py", "nowhere", cwd=tree)
    assert result.returncode == 2 and "nowhere: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_only_run_records_are_collected_unless_all(tmp_path, monkeypatch, capsys):
    """A real study folder: its experiment file, a queue with a rejected document, and the log of a run."""
    from cool_runner import Expander, FileQueue, RunOptions, load_study, run_study

    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "experiment.yaml", tmp_path)
    assert run_study("experiment.yaml", RunOptions(seed=1)) == 0
    study = load_study("experiment.yaml")
    queue = FileQueue("queue.yaml")
    queue.fill(Expander(study).expand(), study)
    text = (tmp_path / "queue.yaml").read_text()  # a user's edit: a broken experiment in front
    first = text.index("--- # id:")
    (tmp_path / "queue.yaml").write_text(text[:first] + "---\nName: bad\nsteps: parse 1 / 0\n" + text[first:])
    assert queue.take() is not None
    assert "Name: bad" in (tmp_path / "queue.rejected.yaml").read_text()
    capsys.readouterr()

    run_records = read_log(tmp_path / "logs/example.yaml")
    other = [doc for name in ("experiment.yaml", "queue.yaml", "queue.rejected.yaml")
             for doc in read_log(tmp_path / name) if isinstance(doc, dict)]
    assert len(run_records) == 4 and all("STATUS" in r for r in run_records)
    distinct_other = {json.dumps(doc, sort_keys=True, default=str) for doc in other}

    assert collect_main([".", "--dest", "out"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert read_log(tmp_path / lines[-1]) == run_records
    assert lines[0] == (f"collected 4 record(s) from 4 file(s), 0 duplicate(s) dropped, 0 file(s) skipped, "
                        f"{len(distinct_other)} other document(s) passed over (not run records; --all takes them)")

    assert collect_main([".", "--dest", "out", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    everything = read_log(tmp_path / lines[-1])
    assert len(everything) == 4 + len(distinct_other) and all(r in everything for r in run_records + other)
    assert "passed over" not in lines[0] and "4 from the cache" in lines[0]


def test_a_record_needs_status_or_time_elapsed(tmp_path):
    (tmp_path / "log.yaml").write_text("STATUS: done\n---\nTIME_ELAPSED: 1.5\n---\nACC: 0.9\n---\n- a list\n")
    found = collect([str(tmp_path)])
    assert found.records == [{"STATUS": "done"}, {"TIME_ELAPSED": 1.5}] and found.passed_over == 1
    assert collect([str(tmp_path)], all_mappings=True).records[-1] == {"ACC": 0.9}


def test_a_file_that_grew_while_it_was_read_is_not_cached(tree, monkeypatch):
    """A writer appends a record after collect read the file and before it looked at the file again."""
    log = tree / "data/a/log.yaml"
    real_read = reader._read_handle

    def read_then_append(handle):
        data = real_read(handle)
        if handle.name.endswith("log.yaml"):
            with open(log, "a") as out:
                out.write(log_text({"Name": "a3"}))
        return data

    cache = Cache(tree / "cache.json")
    monkeypatch.setattr(reader, "_read_handle", read_then_append)
    first = collect(["data"], cache=cache, jobs=1)
    monkeypatch.setattr(reader, "_read_handle", real_read)
    cache.save()
    assert [r["Name"] for r in first.records] == ["a1", "a2", "b1"]
    assert os.path.abspath(log) not in json.loads((tree / "cache.json").read_text())["files"]
    second = collect(["data"], cache=Cache(tree / "cache.json"), jobs=1)
    assert [r["Name"] for r in second.records] == ["a1", "a2", "a3", "b1"] and second.cached == 2  # not log.yaml


def test_cache_notices_a_replaced_file_of_the_same_size_and_time(tree):
    log = tree / "data/a/log.yaml"
    cache = Cache(tree / "cache.json")
    collect(["data"], cache=cache)
    cache.save()
    before = os.stat(log)
    new = tree / "data/a/new.tmp"
    new.write_text(log.read_text().replace("a1", "z1"))
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(new, log)  # same size, same mtime: only the inode tells
    again = collect(["data"], cache=Cache(tree / "cache.json"))
    assert [r["Name"] for r in again.records] == ["z1", "a2", "b1"] and again.cached == 2  # not log.yaml


def test_broken_and_looping_log_symlinks_are_warned_once_and_counted(tree):
    os.symlink("missing.yaml", tree / "data/a/broken.yaml")
    os.symlink("loop.yml", tree / "data/a/loop.yml")
    os.symlink(tree / "data/a/log.yaml", tree / "data/b/good.yaml")  # a working link: read, deduplicated
    os.symlink("nowhere", tree / "data/b/notes")  # not a log: nothing to say
    result = run_script("collect.py", "data", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: skipped data/a/broken.yaml: broken symlink: its target missing.yaml does not exist",
        "warning: skipped data/a/loop.yml: symlink loop: it points to loop.yml, which leads back to itself",
    ]
    assert result.stdout.splitlines()[0] == ("collected 3 record(s) from 4 file(s), 2 duplicate(s) dropped, "
                                             "2 file(s) skipped")
    found = collect(["data"])
    assert [path for path, _ in found.skipped] == ["data/a/broken.yaml", "data/a/loop.yml"]


def test_a_broken_symlink_given_as_path(tree):
    os.symlink("missing.yaml", tree / "link.yaml")
    with pytest.raises(UsageError) as caught:
        collect(["link.yaml"])
    assert (caught.value.option, str(caught.value)) == ("PATH", "PATH: link.yaml: broken symlink")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--exclude", "tmp", "data"],
                     "PATH is missing: --exclude took 'tmp' and 'data' as its values (end the list with '=': "
                     "--exclude=tmp data; or give the PATHs before --exclude)", id="swallowed-path"),
        pytest.param(["--exclude", "a", "'*_b'", "data", "copy"],
                     "PATH is missing: --exclude took 'a', \"'*_b'\", 'data' and 'copy' as its values (end the list "
                     "with '=': --exclude=a --exclude=''\"'\"'*_b'\"'\"'' data copy; or give the PATHs before "
                     "--exclude)", id="several-each-way"),
        pytest.param(["--exclude", "data"],
                     "PATH is missing: --exclude took 'data' as its values (give the PATHs before --exclude)",
                     id="only-a-path"),
        pytest.param(["data", "--exclude", "tmp", "copy"],
                     "'copy' is not inside any PATH, so --exclude cannot mean it: --exclude took 'tmp' and 'copy' "
                     "as its values (end the list with '=': --exclude=tmp copy; or give the PATHs before --exclude)",
                     id="existing-path-beside"),
        pytest.param(["--exclude", "tmp"], "PATH is missing (give the folders or log files to collect)",
                     id="one-pattern-no-path"),
        pytest.param([], "PATH is missing (give the folders or log files to collect)", id="nothing"),
    ],
)
def test_a_list_option_that_swallows_the_paths(tree, argv, message):
    (tree / "copy").mkdir()
    with pytest.raises(UsageError) as caught:
        parse_args(argv)
    assert str(caught.value) == message and caught.value.exit_code == 2 and caught.value.option is None


@pytest.mark.parametrize(
    ("argv", "paths", "exclude"),
    [
        pytest.param(["--exclude=tmp", "data"], ["data"], ["tmp"], id="equals"),
        pytest.param(["--exclude=a", "--exclude=b", "data"], ["data"], ["a", "b"], id="equals-twice"),
        pytest.param(["--exclude", "tmp", "-v", "data"], ["data"], ["tmp"], id="ended-by-an-option"),
        pytest.param(["data", "--exclude", "tmp", "data/a"], ["data"], ["tmp", "data/a"], id="path-inside"),
        pytest.param(["data", "-v", "copy", "--exclude", "x"], ["data", "copy"], ["x"], id="intermixed"),
    ],
)
def test_list_options_that_are_fine(tree, argv, paths, exclude):
    (tree / "copy").mkdir()
    args = parse_args(argv)
    assert (args.paths, args.exclude) == (paths, exclude)


def test_swallowed_path_as_a_real_process(tree):
    result = run_script("collect.py", "--exclude", "tmp", "data", cwd=tree)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "collect.py: error: PATH is missing: --exclude took 'tmp' and 'data' as its values (end the list with "
        "'=': --exclude=tmp data; or give the PATHs before --exclude)"]
    assert not (tree / "collected").exists()


def test_help_names_the_paths_as_required(tree):
    result = run_script("collect.py", "--help", cwd=tree)
    assert result.returncode == 0 and "PATH [PATH ...]" in result.stdout and "--all" in result.stdout
