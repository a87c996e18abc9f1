"""cool_runner.load_logs: logs as a pandas DataFrame."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import yaml
from study_data import study_records, write_log

from cool_runner import MissingPackage, load_logs
from cool_runner.logs.collect import write_documents
from cool_runner.logs.query import aggregate

MIXED = """\
---
Name: a
optimizer:
  lr: 0.1
  schedule: {kind: step, at: [10, 20]}
HISTORY: [0.5, 0.25]
ACC: 0.9
---
# a scalar document is not a record
just text
---
Name: b
optimizer:
  lr: 0.01
extra: true
---
Name: c
ACC: 0.7
HISTORY: []
"""


def test_nested_keys_become_columns_lists_stay_lists_missing_keys_are_missing(tmp_path):
    (tmp_path / "log.yaml").write_text(MIXED)
    frame = load_logs(tmp_path / "log.yaml")
    assert list(frame.columns) == ["Name", "optimizer.lr", "optimizer.schedule.kind", "optimizer.schedule.at",
                                   "HISTORY", "ACC", "extra"]
    assert list(frame["Name"]) == ["a", "b", "c"]
    assert frame["optimizer.lr"][:2].tolist() == [0.1, 0.01] and pd.isna(frame["optimizer.lr"][2])
    assert frame["optimizer.schedule.at"][0] == [10, 20] and type(frame["optimizer.schedule.at"][0]) is list
    assert frame["HISTORY"][0] == [0.5, 0.25] and frame["HISTORY"][2] == [] and pd.isna(frame["HISTORY"][1])
    assert frame["ACC"].dtype.kind == "f" and pd.isna(frame["ACC"][1])
    assert frame["extra"].tolist()[1] is True and pd.isna(frame["extra"][0])


def test_unflattened_rows_keep_the_mappings(tmp_path):
    (tmp_path / "log.yaml").write_text(MIXED)
    frame = load_logs([str(tmp_path / "log.yaml")], flatten=False)
    assert list(frame.columns) == ["Name", "optimizer", "HISTORY", "ACC", "extra"]
    assert frame["optimizer"][0] == {"lr": 0.1, "schedule": {"kind": "step", "at": [10, 20]}}


def test_several_files_and_folders_in_order_without_the_tools_own_copies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as people type them
    (tmp_path / "runs").mkdir()
    write_log(tmp_path / "runs" / "b.yaml", [{"Name": "b", "STATUS": "done"}])
    write_log(tmp_path / "runs" / "a.yaml", [{"Name": "a1", "STATUS": "done"}, {"Name": "a2", "TIME_ELAPSED": 1.0}])
    write_log(tmp_path / "runs" / "experiment.yaml", [{"Module": "m"}, {"Name": "not-run"}])  # not run records
    write_documents(tmp_path / "runs", "collected", ["Name: copy\nSTATUS: done\n"], "collect")  # collect's copy
    write_log(tmp_path / "first.yaml", [{"Name": "first"}])  # a file named: every mapping, as filter.py reads it
    frame = load_logs(["first.yaml", "runs"])
    assert list(frame["Name"]) == ["first", "a1", "a2", "b"]
    (collected,) = (tmp_path / "runs").glob("collected_*.yaml")
    assert list(load_logs(collected)["Name"]) == ["copy"]  # named on purpose: read like any log


def test_empty_log_gives_an_empty_frame(tmp_path):
    (tmp_path / "log.yaml").write_text("")
    frame = load_logs(tmp_path / "log.yaml")
    assert frame.empty and list(frame.columns) == []


def test_readme_example_reproduces_the_group_by_agg_table(tmp_path):
    records = [r for r in study_records() if "ACC" in r]
    write_log(tmp_path / "log.yaml", records)
    # The README's example, as written there:
    df = load_logs(tmp_path / "log.yaml")
    table = df.groupby(["Name", "sparsity"], sort=False, dropna=False).agg(
        count=("Name", "size"), n=("ACC", "count"), mean=("ACC", "mean"), std=("ACC", "std"),
        min=("ACC", "min"), max=("ACC", "max"))
    rows = aggregate(records, ["Name", "sparsity"], ["ACC"])
    assert len(table) == len(rows) == 12
    for (index, got), want in zip(table.iterrows(), rows):
        assert index == (want["Name"], want["sparsity"])
        assert (got["count"], got["n"]) == (want["count"], want["ACC.n"])
        for stat in ("mean", "std", "min", "max"):
            assert got[stat] == pytest.approx(want[f"ACC.{stat}"])


def test_missing_pandas_says_how_to_install_it(tmp_path, monkeypatch):
    (tmp_path / "log.yaml").write_text(yaml.safe_dump({"a": 1}))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingPackage) as info:
        load_logs(tmp_path / "log.yaml")
    assert (info.value.package, info.value.extra) == ("pandas", "pandas")
    assert "load_logs needs pandas, which is not installed (pip install -e '.[pandas]'" in str(info.value)
