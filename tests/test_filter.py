"""filter.py: lambdas, the original %args example, missing keys, formats, grouping."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from conftest import read_log, run_script

from cool_runner.cli import filter_main
from cool_runner.logs.formats import flatten, to_table
from cool_runner.logs.query import aggregate

RECORDS = [
    {"Name": "vgg", "ACC": 0.95, "TIME": 30, "RND_IDX": 1, "model": "VGG", "extra": 1},
    {"Name": "res", "ACC": 0.91, "TIME": 10, "RND_IDX": 2, "model": "ResNet"},
    {"Name": "vgg", "ACC": 0.85, "TIME": 20, "RND_IDX": 3, "model": "VGG"},
    {"Name": "wrn", "ACC": 0.97, "TIME": 20, "RND_IDX": 4, "model": "WRN"},
    {"Name": "res", "ACC": 0.93, "RND_IDX": 5, "model": "ResNet"},
    {"Name": "vgg", "ACC": 0.92, "TIME": 40, "RND_IDX": 6, "model": "VGG"},
]


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    half = len(RECORDS) // 2
    for name, part in (("logs_2021-01-01_12-00-00.yaml", RECORDS[:half]),
                       ("logs_2021-01-01_12-05-30.yaml", RECORDS[half:])):
        (tmp_path / name).write_text(yaml.safe_dump_all(part, explicit_start=True, sort_keys=False))
    return tmp_path


def written(capsys):
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_original_readme_args_example(logs, capsys):
    (logs / "args").write_text(
        "--filter=lambda exp: 'TIME' in exp\n"
        "--filter=lambda exp: 'ACC' in exp and exp['ACC'] > 0.9\n"
        "--sort=lambda exp: exp['TIME']\n"
        "--sort=lambda exp: exp['Name']\n"
        "--reverse\n"
        "--keep-keys\n"
        "ACC\nRND_IDX\nName\nmodel\nTIME\n"
    )
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "logs_2021-01-01_12-05-30.yaml", "%args"]) == 0
    out = written(capsys)
    records = read_log(logs / out)
    # TIME present and ACC > 0.9; sorted by TIME descending, then (stable) by Name descending.
    assert [(r["Name"], r["TIME"]) for r in records] == [("wrn", 20), ("vgg", 40), ("vgg", 30), ("res", 10)]
    assert all(list(r) == ["ACC", "RND_IDX", "Name", "model", "TIME"] for r in records)
    assert out.startswith("filtered/filtered_") and out.endswith(".yaml")


def test_attribute_access_and_blank_lines_in_args_file(logs, capsys):
    (logs / "args").write_text("\n--filter\nlambda e: e.ACC > 0.94\n\n--keep-keys\nName\n\n")
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "logs_2021-01-01_12-05-30.yaml", "%args"]) == 0
    assert read_log(logs / written(capsys)) == [{"Name": "vgg"}, {"Name": "wrn"}]


def test_missing_keys_do_not_match_and_sort_last(logs, capsys):
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "logs_2021-01-01_12-05-30.yaml",
                        "--filter", "lambda e: e.TIME >= 0", "--keep-keys", "RND_IDX"]) == 0
    captured = capsys.readouterr()
    assert "1 record(s) lacked a key a --filter uses" in captured.err
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "logs_2021-01-01_12-05-30.yaml",
                        "--sort", "lambda e: e.TIME", "--reverse", "--keep-keys", "RND_IDX"]) == 0
    out = capsys.readouterr()
    assert [r["RND_IDX"] for r in read_log(logs / out.out.strip().splitlines()[-1])] == [6, 1, 3, 4, 2, 5]
    assert "1 record(s) lacked a key a --sort uses: put last" in out.err
    assert "loaded 6 record(s), kept 6" in out.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--filter", "lambda e: e.ACC >"], "--filter: 'lambda e: e.ACC >' is not valid Python", id="syntax"),
        pytest.param(["--sort", "42"], "--sort: '42' is not a function", id="not-callable"),
        pytest.param(["--agg", "ACC"], "--agg: --agg needs --group-by", id="agg-alone"),
        pytest.param(["%nofile"], "No such file or directory: 'nofile'", id="args-file"),
        pytest.param(["--format", "xml"], "argument --format: invalid choice: 'xml'", id="bad-format"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(logs, args, fragment):
    result = run_script("filter.py", "logs_2021-01-01_12-00-00.yaml", *args, cwd=logs)
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_log_file(logs):
    result = run_script("filter.py", "nope.yaml", cwd=logs)
    assert result.returncode == 2 and "nope.yaml: file not found" in result.stderr


def test_csv_flattens_nested_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    records = [{"Name": "a", "opt": {"lr": 0.1, "m": {"x": 1}}, "hist": [1, 2], "ok": True},
               {"Name": "b, c", "opt": {"lr": 0.01}, "new": None}]
    (tmp_path / "log.yaml").write_text(yaml.safe_dump_all(records, sort_keys=False))
    assert filter_main(["log.yaml", "--format", "csv", "-o", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["Name", "opt.lr", "opt.m.x", "hist", "ok", "new"]
    assert rows[0] == {"Name": "a", "opt.lr": "0.1", "opt.m.x": "1", "hist": "[1, 2]", "ok": "true", "new": ""}
    assert rows[1]["Name"] == "b, c" and rows[1]["opt.m.x"] == ""


def test_json_and_table_and_output_files(logs, capsys):
    args = ["logs_2021-01-01_12-00-00.yaml", "--keep-keys", "Name", "ACC"]
    assert filter_main([*args, "--format", "json"]) == 0
    out = written(capsys)
    assert out.endswith(".json") and json.loads((logs / out).read_text())[0] == {"Name": "vgg", "ACC": 0.95}
    assert filter_main([*args, "--format", "table"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["Name", "ACC"] and table[2].split() == ["vgg", "0.95"]
    assert filter_main([*args, "--format", "csv", "--dest", "exports"]) == 0
    assert written(capsys).startswith("exports/filtered_")


def test_keep_keys_with_dotted_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.yaml").write_text(yaml.safe_dump({"Name": "a", "opt": {"lr": 0.1}, "z": 1}))
    assert filter_main(["log.yaml", "--keep-keys", "z", "opt.lr", "absent", "-o", "-"]) == 0
    assert list(yaml.safe_load_all(capsys.readouterr().out)) == [{"z": 1, "opt.lr": 0.1}]


def test_group_by_and_aggregate(logs, capsys):
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "logs_2021-01-01_12-05-30.yaml",
                        "--group-by", "model", "--agg", "ACC", "TIME", "--format", "json", "-o", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    vgg = rows[0]
    assert (vgg["model"], vgg["count"], vgg["ACC.n"]) == ("VGG", 3, 3)
    assert vgg["ACC.mean"] == pytest.approx((0.95 + 0.85 + 0.92) / 3)
    assert vgg["ACC.std"] == pytest.approx(0.05131601439446883)
    assert (vgg["ACC.min"], vgg["ACC.max"]) == (0.85, 0.95)
    res = rows[1]
    assert (res["model"], res["TIME.n"], res["TIME.mean"], res["TIME.std"]) == ("ResNet", 1, 10.0, 0.0)
    assert [r["model"] for r in rows] == ["VGG", "ResNet", "WRN"]


def test_group_by_prints_a_table_by_default(logs, capsys):
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "--group-by", "Name", "--agg", "ACC"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["Name", "count", "ACC.n"] and lines[2].split()[:2] == ["vgg", "2"]


def test_aggregate_skips_non_numbers():
    rows = aggregate([{"g": 1, "v": "x"}, {"g": 1, "v": 2}, {"g": 1}], ["g"], ["v"])
    assert rows == [{"g": 1, "count": 3, "v.n": 1, "v.mean": 2.0, "v.std": 0.0, "v.min": 2.0, "v.max": 2.0}]


def test_table_cuts_long_cells_and_aligns_numbers():
    text = to_table([{"a": "x" * 50, "n": 1}, {"a": "y", "n": 100}], width=10)
    lines = text.splitlines()
    assert lines[2].startswith("xxxxxxxxx…") and lines[2].endswith("  1") and lines[3].endswith("100")


def test_flatten():
    assert flatten({"a": {"b": {"c": 1}, "d": 2}, "e": {}}) == {"a.b.c": 1, "a.d": 2, "e": {}}


def test_yaml_output_copies_each_kept_records_text(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.yaml").write_text("---\nName: a  # kept\nACC: 0.9\n---\nName: b\nACC: 0.1\n")
    assert filter_main(["log.yaml", "--filter", "lambda e: e.ACC > 0.5", "-o", "-"]) == 0
    assert capsys.readouterr().out == "---\nName: a  # kept\nACC: 0.9\n"
