"""--dry's listing and the small emitter behind it: its YAML reads back as the same data."""

from __future__ import annotations

import math
import textwrap
from pathlib import PurePosixPath

import pytest
import yaml

from cool_runner.cli import run_main
from cool_runner.emitter import Emitter
from cool_runner.run.records import render_record
from cool_runner.study.mapping import Exp
from cool_runner.yamlio import Loader, to_plain

TRICKY = {
    "int": 3, "big": 2**70, "neg": -1, "float": 0.1, "tiny": 1e-5, "whole": 12.0, "inf": math.inf, "ninf": -math.inf,
    "true": True, "none": None, "plain": "hello world", "path": "runs/exp-1/123/0", "module": "modules.example",
    "yes": "yes", "Off": "Off", "NULL": "NULL", "number": "1e-3", "hex": "0x1F", "date": "2026-01-01", "tilde": "~",
    "colon": "a: b", "hash": "x #y", "lead": " x", "trail": "x ", "empty": "", "dash": "-x", "quote": "it's \"q\"",
    "newline": "two\nlines", "tab": "a\tb", "unicode": "é ü 😀", "control": "\x07bell\x7f", "separator": "\u2028",
    "parse": "parse E[-1].x", "solve": "solve torch.optim.SGD(lr=0.1)", "fstring": 'f"{Name}/{x}"', "eq": "=",
    "merge": "<<", "flow": "[1, 2]", "comma": "a, b", "list": [1, "two", None, 3.5], "empty_list": [], "empty_map": {},
    "nested": {"a": {"b": [1, {"c": [2, 3]}, [4, [5, {"d": 6}]], {}, []]}}, "tuple": (1, 2), "set": {2, 1},
    "pathlike": PurePosixPath("/tmp/x"), 7: "int key", "with space": 1, "dotted.key": 2, "list_of_maps": [{"a": 1}],
}


def read(text: str):
    return yaml.load(textwrap.dedent(text), Loader=Loader)


@pytest.mark.parametrize("indent", ["", "    "])
def test_emitter_output_reads_back_as_the_same_data(indent):
    text = Emitter().dump(TRICKY, indent)
    assert all(line.startswith(indent) for line in text.splitlines())
    assert read(text) == to_plain(TRICKY)


def test_emitter_keeps_order_and_writes_lists_of_scalars_on_one_line():
    text = Emitter().dump(Exp(b=1, a=[1, 2], c={"z": 1, "y": [{"k": "v"}]}))
    assert text == "b: 1\na: [1, 2]\nc:\n  z: 1\n  y:\n  - k: v\n"


def test_nan_reads_back_as_nan():
    assert math.isnan(read(Emitter().dump({"x": math.nan}))["x"])


def test_records_with_metadata_read_back():
    record = {"Name": "a", "x": [1, 2], "START": "2026-11-29T08:00:00.000+01:00", "GIT": {"commit": "abc", "dirty": False},
              "PACKAGES": {"PyYAML": "6.0.1"}, "ARGV": ["--device", "cuda:1"], "TIME_ELAPSED": 1.5, "STATUS": "done",
              "ERROR": "ValueError: x: y", "TRACEBACK": "Traceback (most recent call last):\n  File ...\n"}
    text = render_record(record)
    assert text.startswith("---\n") and text.count("---") == 1
    assert yaml.safe_load(text) == record
    assert list(yaml.safe_load(text)) == list(record)


def test_dry_lists_every_experiment_with_its_values(workdir, write, capsys):
    write("mymod.py", "def main(exp):\n    pass\n")
    write("experiment.yaml", "Module: mymod\nYamlLog: log.yaml\nopt: {lr: 0.1}\n---\nName: a\nsteps: [1, 2]\n"
          "fn: solve math.sqrt\nnote: 'yes'\n---\nName: skip\n---\nName: c\nx: parse E[-2].steps[1] * 2\n")
    assert run_main(["--exp", "experiment.yaml", "--dry"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n[")
    assert blocks[0].startswith("[0] a\n") and blocks[1].startswith("1] skip (skipped: Name is skip)")
    first = read("\n".join(blocks[0].splitlines()[1:]))
    assert first["steps"] == [1, 2] and first["fn"] == "solve math.sqrt" and first["note"] == "yes"
    assert first["opt"] == {"lr": 0.1} and first["REP"] == 0
    assert "    x: 4\n" in blocks[2]
    assert out.rstrip().endswith("3 experiment(s); nothing was run (--dry)")
    assert not (workdir / "log.yaml").exists()
