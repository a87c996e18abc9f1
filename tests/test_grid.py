"""Grid: one copy of a definition per combination, before parsing; order with Repeat; records; queue; errors."""

from __future__ import annotations

import random

import pytest
from conftest import read_log

from cool_runner import ConfigError, Expander, FileQueue, load_study
from cool_runner.cli import run_main

HEAD = "Module: m\nYamlLog: log.yaml\n"


def expand(write, text: str, overrides=()):
    path = write("experiment.yaml", text)
    return Expander(load_study(str(path), overrides), rng=random.Random(0), host="box").expand()


def test_points_times_repeats_in_documented_order(write):
    text = "Global: {repeat: 2}\n" + HEAD + """optimizer: {lr: 1, momentum: 0.5}
---
Name: sweep
Repeat: 2
Grid:
  lr: [0.1, 0.01]
  optimizer.momentum: [0, 0.9]
---
Name: after
"""
    exps = expand(write, text)
    order = [(e.values.get("lr"), e.values["optimizer"]["momentum"], e.values["REP"], e.values["GLOBAL_REP"])
             for e in exps if e.name == "sweep"]
    one_pass = [(0.1, 0, 0), (0.1, 0, 1), (0.1, 0.9, 0), (0.1, 0.9, 1),
                (0.01, 0, 0), (0.01, 0, 1), (0.01, 0.9, 0), (0.01, 0.9, 1)]
    assert order == [(*point, 0) for point in one_pass] + [(*point, 1) for point in one_pass]
    assert [e.name for e in exps] == ["sweep"] * 8 + ["after"] + ["sweep"] * 8 + ["after"]
    assert [e.index for e in exps] == list(range(18))
    first = exps[0].values
    assert first["GRID"] == {"lr": 0.1, "optimizer.momentum": 0}
    assert first["optimizer"] == {"lr": 1, "momentum": 0}  # the default's other keys stay
    assert "Grid" not in first
    ids = [e.values["RND_IDX"] for e in exps[:8]]
    assert ids[0] == ids[1] and ids[2] == ids[3] and len(set(ids)) == 4  # shared by Repeat copies of a point


def test_grid_values_are_set_as_if_written_and_then_parsed(write):
    text = HEAD + """base: 3
---
Name: parse f"lr-{lr}-{GRID['layers']}"
Grid:
  lr: [0.5, parse base * 2]
  layers: [[1, 2], [3]]
"""
    exps = [e.values for e in expand(write, text)]
    assert [e["lr"] for e in exps] == [0.5, 0.5, 6, 6]
    assert [e["layers"] for e in exps] == [[1, 2], [3], [1, 2], [3]]
    assert exps[0]["Name"] == "lr-0.5-[1, 2]" and exps[3]["Name"] == "lr-6-[3]"
    assert exps[3]["GRID"] == {"lr": "parse base * 2", "layers": [3]}  # which point, as written


def test_a_chain_can_run_through_the_points(write):
    text = HEAD + "---\nx: 1\n---\nGrid: {k: [2, 3]}\nx: parse E[-1].x * k\n"
    assert [e.values["x"] for e in expand(write, text)] == [1, 2, 6]


def test_default_grid_applies_to_every_definition_and_merges(write):
    text = HEAD + "Grid: {seed: [1, 2]}\n---\nName: a\n---\nName: b\nGrid: {lr: [0.1, 0.2]}\n---\nName: c\nGrid: null\n"
    points = [(e.name, e.values.get("GRID")) for e in expand(write, text)]
    assert points == [
        ("a", {"seed": 1}), ("a", {"seed": 2}),
        ("b", {"lr": 0.1, "seed": 1}), ("b", {"lr": 0.1, "seed": 2}),
        ("b", {"lr": 0.2, "seed": 1}), ("b", {"lr": 0.2, "seed": 2}),
        ("c", None)]


def test_nested_form_is_the_same_as_dotted_paths(write):
    text = HEAD + "---\nGrid:\n  optimizer:\n    lr: [1, 2]\n"
    exps = expand(write, text)
    assert [e.values["GRID"] for e in exps] == [{"optimizer.lr": 1}, {"optimizer.lr": 2}]
    assert [e.values["optimizer"] for e in exps] == [{"lr": 1}, {"lr": 2}]


def test_repeat_zero_and_grid_make_nothing(write):
    assert [e.name for e in expand(write, HEAD + "---\nName: a\nRepeat: 0\nGrid: {x: [1, 2]}\n---\nName: b\n")] == ["b"]


@pytest.mark.parametrize(
    ("body", "line", "key", "fragment"),
    [
        pytest.param("Grid: [1, 2]\n", 4, ("Grid",), "must map key paths to lists of values", id="list"),
        pytest.param("Grid: parse dict(x=[1])\n", 4, ("Grid",), "cannot be a parse expression", id="parse"),
        pytest.param("Grid:\n  lr: 0.1\n", 5, ("Grid", "lr"), "give a list of values, not 0.1", id="scalar"),
        pytest.param("Grid:\n  lr: []\n", 5, ("Grid", "lr"), "the list is empty", id="empty"),
        pytest.param("Grid:\n  a..b: [1]\n", 5, ("Grid", "a..b"), "'a..b' is not a key path", id="bad-path"),
        pytest.param("Grid:\n  opt: [1]\n  opt.lr: [2]\n", 4, ("Grid",), "Grid sets both opt and opt.lr", id="overlap"),
        pytest.param("Grid:\n  opt.lr: [1]\n  opt: {lr: [2]}\n", 4, ("Grid",), "Grid sets opt.lr twice", id="twice"),
        pytest.param("opt: sgd\nGrid: {opt.lr: [1]}\n", 5, ("Grid", "opt.lr"), "opt is 'sgd' in this experiment",
                     id="through-scalar"),
        pytest.param("Grid: {Global.repeat: [2]}\n", 4, ("Grid", "Global.repeat"), "cannot set Global.repeat",
                     id="global"),
        pytest.param("Grid: {a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "
                     "c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], d: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "
                     "e: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], f: [0, 1]}\n", 4, ("Grid",), "200,000 combinations",
                     id="too-many"),
    ],
)
def test_bad_grids_are_clear_config_errors(write, body, line, key, fragment):
    with pytest.raises(ConfigError) as info:
        expand(write, HEAD + "---\n" + body)
    err = info.value
    assert err.file.endswith("experiment.yaml") and err.line == line and err.key == key
    assert fragment in str(err) and str(err).startswith(f"{err.file}:{line}: ")


MODULE = "def main(exp):\n    exp.SCORE = exp.lr * 10\n"


def test_records_say_which_point_and_dry_shows_the_points(workdir, write, capsys):
    write("mymod.py", MODULE)
    write("experiment.yaml", "Module: mymod\nYamlLog: log.yaml\n---\nName: s\nGrid: {lr: [1, 2], opt.m: [0]}\n")
    assert run_main(["--exp", "experiment.yaml", "--dry"]) == 0
    out = capsys.readouterr().out
    assert "[0] s  Grid lr=1 opt.m=0" in out and "[1] s  Grid lr=2 opt.m=0" in out
    assert run_main(["--exp", "experiment.yaml"]) == 0
    log = read_log(workdir / "log.yaml")
    assert [(r["GRID"], r["SCORE"]) for r in log] == [({"lr": 1, "opt.m": 0}, 10), ({"lr": 2, "opt.m": 0}, 20)]


def test_a_queue_document_with_a_grid_expands_like_the_file(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", "Global: {queue: queue.yaml}\nModule: mymod\nYamlLog: log.yaml\nlr: 0\n---\nName: a\n")
    write("more.yaml", "Name: g\nRepeat: 2\nGrid: {lr: [1, 2]}\n---\nName: last\nlr: parse E[-1].lr + 1\n")
    study = load_study(str(workdir / "experiment.yaml"))
    FileQueue(workdir / "queue.yaml").fill(Expander(study).expand(), study)
    assert run_main(["--queue", "queue.yaml", "--add", "more.yaml"]) == 0
    assert run_main(["--resume", "--queue", "queue.yaml"]) == 0
    log = read_log(workdir / "log.yaml")
    assert [(r["Name"], r.get("GRID"), r["REP"], r["lr"]) for r in log] == [
        ("a", None, 0, 0), ("g", {"lr": 1}, 0, 1), ("g", {"lr": 1}, 1, 1), ("g", {"lr": 2}, 0, 2),
        ("g", {"lr": 2}, 1, 2), ("last", None, 0, 3)]
    assert log[1]["RND_IDX"] == log[2]["RND_IDX"] != log[3]["RND_IDX"] == log[4]["RND_IDX"]
    assert all("Grid" not in r for r in log)
