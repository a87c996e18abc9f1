"""collect.py: recursive gathering, exclusion, deduplication, safety, symlinks, parallel reading, cache."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml
from conftest import read_log, run_script

from cool_runner.cli import collect_main
from cool_runner.files import write_new
from cool_runner.logs.collect import Cache, collect
from cool_runner.logs.reader import MARK


def log_text(*records):
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
    assert read_log(tree / path) == [{"Name": "ünï", "note": "✓"}]


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

    (tree / "data/a/dates.yaml").write_text("when: 2026-01-01  # a date\n1: int key\n")
    cache = Cache(tree / "cache.json")
    first = collect(["data"], cache=cache)
    cache.save()
    json.loads((tree / "cache.json").read_text())
    again = Cache(tree / "cache.json")
    second = collect(["data"], cache=again)
    assert second.documents == first.documents and second.cached == 4
    assert {"when": datetime.date(2026, 1, 1), 1: "int key"} in second.records


def test_output_keeps_each_documents_own_text(tree, capsys):
    (tree / "data/a/log.yaml").write_text("# header\n---\nName: a1  # the best one\nopt: {lr: 0.1}\n---\n  Name: a2\n  ACC: 1\n")
    assert collect_main(["data/a"]) == 0
    path, _ = output_of(capsys)
    text = (tree / path).read_text()
    assert "Name: a1  # the best one\nopt: {lr: 0.1}\n" in text
    assert read_log(tree / path) == [{"Name": "a1", "opt": {"lr": 0.1}}, {"Name": "a2", "ACC": 1}]


def test_missing_path_is_a_usage_error(tree):
    result = run_script("collect.py", "nowhere", cwd=tree)
    assert result.returncode == 2 and "nowhere: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr
