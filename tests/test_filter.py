"""filter.py: lambdas, the original %args example, missing keys, formats, grouping."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import threading

import pytest
import yaml
from conftest import read_log, run_script

from cool_runner.cli import filter_main
from cool_runner.cli.filter import parse_args
from cool_runner.errors import OutputError, UsageError
from cool_runner.files import write_output
from cool_runner.logs.formats import flatten, to_table
from cool_runner.logs.query import LAMBDA_HINT, Query, aggregate, compile_lambda
from cool_runner.logs.stats import describe
from cool_runner.study.mapping import FrozenView

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
        pytest.param(["--sort", "42"], "--sort: '42' is not a lambda", id="not-a-lambda"),
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
    assert (res["model"], res["TIME.n"], res["TIME.mean"], res["TIME.std"]) == ("ResNet", 1, 10.0, None)
    assert [r["model"] for r in rows] == ["VGG", "ResNet", "WRN"]


def test_group_by_prints_a_table_by_default(logs, capsys):
    assert filter_main(["logs_2021-01-01_12-00-00.yaml", "--group-by", "Name", "--agg", "ACC"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["Name", "count", "ACC.n"] and lines[2].split()[:2] == ["vgg", "2"]


def test_aggregate_skips_non_numbers():
    rows = aggregate([{"g": 1, "v": "x"}, {"g": 1, "v": 2}, {"g": 1}], ["g"], ["v"])
    assert rows == [{"g": 1, "count": 3, "v.n": 1, "v.mean": 2.0, "v.std": None, "v.min": 2, "v.max": 2}]


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


# --- lambdas: checked before they run, and records they fail on ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        pytest.param("lambda: 1", "'lambda: 1' takes (no argument); it must take exactly one argument, the record",
                     id="no-argument"),
        pytest.param("lambda e, f: 1", "'lambda e, f: 1' takes (e, f); it must take exactly one argument, the record",
                     id="two-arguments"),
        pytest.param("lambda *records: 1",
                     "'lambda *records: 1' takes (*records); it must take exactly one argument, the record",
                     id="varargs"),
        pytest.param("lambda e, **kw: 1",
                     "'lambda e, **kw: 1' takes (e, **kw); it must take exactly one argument, the record",
                     id="kwargs"),
        pytest.param("lambda e, *, k: 1",
                     "'lambda e, *, k: 1' takes (e, *, k); it must take exactly one argument, the record",
                     id="keyword-only"),
        pytest.param("lambda e=1/0: e",
                     "'lambda e=1/0: e' takes (e=1 / 0); it must take exactly one argument, the record",
                     id="default-never-evaluated"),
        pytest.param("42", "'42' is not a lambda", id="a-number"),
        pytest.param("open('pwned', 'w')", "\"open('pwned', 'w')\" is not a lambda", id="code-never-runs"),
        pytest.param("lambda e: e.ACC >", "'lambda e: e.ACC >' is not valid Python: invalid syntax", id="syntax"),
        pytest.param("lambda e: e\0", "'lambda e: e\\x00' is not valid Python: source code string cannot contain "
                     "null bytes", id="null-byte"),
    ],
)
def test_lambdas_are_checked_before_they_run(tmp_path, monkeypatch, text, what):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        compile_lambda(text, "--filter")
    error = caught.value
    assert (error.what, error.option, error.hint, error.exit_code) == (what, "--filter", LAMBDA_HINT, 2)
    assert str(error) == f"--filter: {what} ({LAMBDA_HINT})"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text", ["lambda e: e.ACC", "  (lambda exp: exp['ACC'])  ", "lambda e, /: e.ACC"])
def test_lambdas_of_one_argument_are_accepted(text):
    assert compile_lambda(text, "--sort")(FrozenView({"ACC": 0.5})) == 0.5


def test_wrong_arity_as_a_real_process(logs):
    result = run_script("filter.py", "logs_2021-01-01_12-00-00.yaml", "--sort", "lambda a, b: a", cwd=logs)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"filter.py: error: --sort: 'lambda a, b: a' takes (a, b); it must take exactly one argument, the record "
        f"({LAMBDA_HINT})"]


MIXED = [{"Name": "a", "ACC": 0.9}, {"Name": "b", "ACC": "high"}, {"Name": "c"}, {"ACC": "x"}, {"Name": "e", "ACC": 0.7}]


def test_a_filter_that_raises_does_not_match_and_the_first_error_is_kept():
    query = Query(filters=[compile_lambda("lambda e: e.ACC > 0.6", "--filter")])
    assert query.apply(MIXED) == [MIXED[0], MIXED[4]]
    assert (query.missing_filter, query.failed_filter) == (1, 2)
    first = query.first_failures["--filter"]
    assert (first.index, first.name, type(first.error)) == (1, "b", TypeError)
    assert str(first) == ("--filter 'lambda e: e.ACC > 0.6' on record 1 (Name 'b'): TypeError: '>' not supported "
                          "between instances of 'str' and 'float'")


@pytest.mark.parametrize(
    ("reverse", "order"),
    [pytest.param(False, [4, 2, 0, 1, 3], id="ascending"), pytest.param(True, [2, 4, 0, 1, 3], id="reverse")],
)
def test_a_sort_that_raises_puts_the_record_last(reverse, order):
    records = [{"x": 0}, {"x": "a"}, {"x": 2}, {}, {"x": 4}]
    query = Query(sorts=[compile_lambda("lambda e: 1 / e.x", "--sort")], reverse=reverse)
    assert query.apply(records) == [records[i] for i in order]
    assert (query.missing_sort, query.failed_sort) == (1, 2)
    first = query.first_failures["--sort"]
    assert (first.index, first.name, type(first.error)) == (0, None, ZeroDivisionError)
    assert str(first) == "--sort 'lambda e: 1 / e.x' on record 0: ZeroDivisionError: division by zero"


def test_a_record_that_fails_two_sorts_counts_once():
    query = Query(sorts=[compile_lambda("lambda e: 1 / 0", "--sort"), compile_lambda("lambda e: e.x", "--sort")])
    assert query.apply([{"x": 1}, {"x": 2}]) == [{"x": 1}, {"x": 2}]
    assert (query.failed_sort, query.missing_sort) == (2, 0)


def test_an_exception_that_cannot_be_printed():
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no text")

    def fail(record):
        raise Weird

    query = Query(filters=[fail])
    assert query.apply([{"Name": "a"}]) == []
    assert str(query.first_failures["--filter"]).endswith("on record 0 (Name 'a'): Weird: <unprintable>")


def test_failing_lambdas_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.yaml").write_text(yaml.safe_dump_all(MIXED, sort_keys=False))
    assert filter_main(["log.yaml", "--filter", "lambda e: e.ACC > 0.6", "--sort", "lambda e: 1 / (e.ACC - 0.7)",
                        "--keep-keys", "Name", "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert list(yaml.safe_load_all(captured.out)) == [{"Name": "a"}, {"Name": "e"}]
    assert captured.err.splitlines() == [
        "loaded 5 record(s), kept 2",
        "1 record(s) lacked a key a --filter uses: treated as not matching",
        "2 record(s) made a --filter raise an error: treated as not matching; the first: --filter "
        "'lambda e: e.ACC > 0.6' on record 1 (Name 'b'): TypeError: '>' not supported between instances of 'str' "
        "and 'float'",
        "1 record(s) made a --sort raise an error: put last; the first: --sort 'lambda e: 1 / (e.ACC - 0.7)' on "
        "record 4 (Name 'e'): ZeroDivisionError: float division by zero",
    ]


def test_failing_lambdas_as_a_real_process(tmp_path):
    (tmp_path / "log.yaml").write_text(yaml.safe_dump_all(MIXED, sort_keys=False))
    result = run_script("filter.py", "log.yaml", "--filter", "lambda e: 1 / 0", "--format", "json", "-o", "-",
                        cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout) == [] and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[1] == (
        "5 record(s) made a --filter raise an error: treated as not matching; the first: --filter 'lambda e: 1 / 0' "
        "on record 0 (Name 'a'): ZeroDivisionError: division by zero")


# --- aggregation: exact where floats overflow, no std for one value --------------------------------------------

BIG = 10**400


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [
        pytest.param([1, 2, 3], 2.0, 1.0, id="small"),
        pytest.param([7], 7.0, None, id="one-value-no-std"),
        pytest.param([BIG, 3 * BIG], math.inf, math.inf, id="integers-beyond-floats"),
        pytest.param([BIG, -BIG, 6], 2.0, math.inf, id="huge-that-cancel"),
        pytest.param([10**300, 3 * 10**300], 2e300, math.sqrt(2) * 1e300, id="large-but-fits"),
        pytest.param([1e308, 1e308, 1e308], 1e308, 0.0, id="float-sum-overflows"),
        pytest.param([1e308, -1e308], 0.0, math.sqrt(2) * 1e308, id="float-square-overflows"),
        pytest.param([2**53 + 1, 2**53 + 3], float(2**53 + 2), math.sqrt(2), id="exact-ints"),
        pytest.param([math.inf, 1.0], math.inf, math.nan, id="inf"),
        pytest.param([math.inf, -math.inf], math.nan, math.nan, id="both-infinities"),
        pytest.param([math.nan, 1.0], math.nan, math.nan, id="nan"),
    ],
)
def test_statistics_never_overflow(values, mean, std):
    stats = describe(values)
    assert stats["n"] == len(values)
    assert stats["mean"] == pytest.approx(mean, rel=1e-12, nan_ok=True)
    assert (stats["std"] is None) if std is None else stats["std"] == pytest.approx(std, rel=1e-12, nan_ok=True)
    assert stats["min"] == min(values) or math.isnan(stats["max"])
    assert type(stats["min"]) is type(min(values))  # the value itself, never a float copy of an integer


def test_statistics_of_nothing():
    assert describe([]) == {"n": 0, "mean": None, "std": None, "min": None, "max": None}


def test_group_of_one_and_huge_integers_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    records = [{"Name": "big", "N": BIG}, {"Name": "big", "N": 3 * BIG}, {"Name": "one", "N": 5}]
    (tmp_path / "log.yaml").write_text(yaml.safe_dump_all(records, sort_keys=False))
    assert filter_main(["log.yaml", "--group-by", "Name", "--agg", "N"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["Name", "count", "N.n", "N.mean", "N.std", "N.min", "N.max"]
    assert table[2].split() == ["big", "2", "2", "inf", "inf", "1e+400", "3e+400"]
    assert table[3].split() == ["one", "1", "1", "5", "5", "5"]  # the std cell is blank
    assert filter_main(["log.yaml", "--group-by", "Name", "--agg", "N", "--format", "csv", "-o", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["N.min"] == str(BIG) and rows[0]["N.mean"] == "inf"
    assert rows[1]["N.std"] == "" and rows[1]["N.mean"] == "5.0"
    assert filter_main(["log.yaml", "--group-by", "Name", "--agg", "N", "--format", "json", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["N.std"] is None


# --- -o: what kind of file the output goes to ---------------------------------------------------------------


@pytest.fixture
def device(tmp_path):
    """device(name, minor): a character device like /dev/null (3) or /dev/full (7), made inside tmp_path."""

    def make(name, minor):
        path = tmp_path / name
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except PermissionError:
            if os.geteuid() == 0:
                pytest.skip("cannot create device nodes here")
            return f"/dev/{'null' if minor == 3 else 'full'}"  # safe to use as is: we cannot replace it
        return str(path)

    return make


def test_output_to_a_regular_file_replaces_it_atomically_and_keeps_its_mode(tmp_path):
    target = tmp_path / "out.yaml"
    target.write_text("old\n")
    target.chmod(0o600)
    inode = target.stat().st_ino
    assert write_output(target, "new\n") is True
    assert target.read_text() == "new\n" and target.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("dangling", [pytest.param(False, id="link"), pytest.param(True, id="dangling-link")])
def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, dangling):
    (tmp_path / "results").mkdir()
    target = tmp_path / "results/table.csv"
    if not dangling:
        target.write_text("old\n")
    link = tmp_path / "latest.csv"
    os.symlink("results/table.csv", link)
    assert write_output(link, "new\n") is True
    assert os.path.islink(link) and os.readlink(link) == "results/table.csv"
    assert target.read_text() == "new\n"


def test_output_to_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert write_output(fifo, "through the pipe\n") is False
    reader.join(timeout=10)
    assert received == ["through the pipe\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_output_to_a_device_is_written_through(device):
    null = device("null", 3)
    assert write_output(null, "gone\n") is False
    assert stat.S_ISCHR(os.stat(null).st_mode)


@pytest.mark.parametrize(
    ("make", "what", "exit_code", "hint"),
    [
        pytest.param(lambda tmp, dev: str(tmp), "is a folder", 2,
                     "give a file name inside it, or leave out -o to get a new file in --dest", id="folder"),
        pytest.param(lambda tmp, dev: dev("full", 7), "cannot write: No space left on device", 1, None,
                     id="disk-full"),
        pytest.param(lambda tmp, dev: str(tmp / "file.txt" / "out.csv"), "cannot write: Not a directory", 2,
                     "choose another output path", id="under-a-file"),
        pytest.param(lambda tmp, dev: (os.symlink("loop", tmp / "loop"), str(tmp / "loop"))[1],
                     "cannot write: Too many levels of symbolic links", 2, "choose another output path", id="loop"),
    ],
)
def test_output_that_cannot_be_written(tmp_path, device, make, what, exit_code, hint):
    (tmp_path / "file.txt").write_text("x")
    path = make(tmp_path, device)
    with pytest.raises(OutputError) as caught:
        write_output(path, "data\n")
    error = caught.value
    assert (error.file, error.what, error.exit_code, error.hint) == (path, what, exit_code, hint)
    assert str(error) == f"{path}: {what}" + (f" ({hint})" if hint else "")
    if "full" in path:
        assert stat.S_ISCHR(os.stat(path).st_mode)  # never replaced by a regular file


def test_output_errors_as_a_real_process(logs, device):
    full = device("full", 7)
    result = run_script("filter.py", "logs_2021-01-01_12-00-00.yaml", "-o", full, cwd=logs)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"filter.py: error: {full}: cannot write: No space left on device"]
    assert stat.S_ISCHR(os.stat(full).st_mode)
    result = run_script("filter.py", "logs_2021-01-01_12-00-00.yaml", "-o", ".", cwd=logs)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "filter.py: error: .: is a folder (give a file name inside it, or leave out -o to get a new file in --dest)"]


def test_output_to_dev_stdout_goes_to_the_same_stream(logs):
    result = run_script("filter.py", "logs_2021-01-01_12-00-00.yaml", "--keep-keys", "Name", "-o", "/dev/stdout",
                        cwd=logs)
    assert result.returncode == 0, result.stderr
    assert read_log_text(result.stdout) == [{"Name": "vgg"}, {"Name": "res"}, {"Name": "vgg"}]
    assert "/dev/stdout" not in result.stdout


def read_log_text(text):
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


# --- arguments: help text, and lists that swallow the LOGFILEs ------------------------------------------------


def test_help_shows_the_args_file_prefix_once(logs):
    result = run_script("filter.py", "--help", cwd=logs)
    assert result.returncode == 0 and "%FILE reads arguments from" in " ".join(result.stdout.split())
    assert "%%" not in result.stdout and "LOGFILE [LOGFILE ...]" in result.stdout


LOG = "logs_2021-01-01_12-00-00.yaml"
OTHER = "logs_2021-01-01_12-05-30.yaml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--keep-keys", "Name", "ACC", LOG],
                     f"LOGFILE is missing: --keep-keys took 'Name', 'ACC' and '{LOG}' as its values (end the list "
                     f"with '=': --keep-keys=Name --keep-keys=ACC {LOG}; or give the LOGFILEs before --keep-keys)",
                     id="keep-keys-took-the-logfile"),
        pytest.param(["--keep-keys", LOG],
                     f"LOGFILE is missing: --keep-keys took '{LOG}' as its values (give the LOGFILEs before "
                     f"--keep-keys)", id="bare-keep-keys"),
        pytest.param([LOG, "--group-by", "Name", "--agg", "ACC", OTHER],
                     f"'{OTHER}' is a log file, not a key: --agg took 'ACC' and '{OTHER}' as its values (end the "
                     f"list with '=': --agg=ACC {OTHER}; or give the LOGFILEs before --agg)", id="agg-took-one"),
        pytest.param(["--group-by", "model", LOG, OTHER],
                     f"LOGFILE is missing: --group-by took 'model', '{LOG}' and '{OTHER}' as its values (end the "
                     f"list with '=': --group-by=model {LOG} {OTHER}; or give the LOGFILEs before --group-by)",
                     id="group-by-took-two"),
        pytest.param([], "LOGFILE is missing (give the .yaml files to read)", id="nothing"),
    ],
)
def test_a_list_option_that_swallows_the_logfiles(logs, argv, message):
    with pytest.raises(UsageError) as caught:
        parse_args(argv)
    assert str(caught.value) == message and caught.value.exit_code == 2


def test_list_options_ended_with_equals_or_an_option(logs, capsys):
    args = parse_args(["--keep-keys=Name", "--keep-keys=ACC", LOG, "--group-by", "model", "--reverse", OTHER])
    assert (args.paths, args.keep_keys, args.group_by) == ([LOG, OTHER], ["Name", "ACC"], ["model"])
    result = run_script("filter.py", "--keep-keys", "Name", LOG, cwd=logs)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"filter.py: error: LOGFILE is missing: --keep-keys took 'Name' and '{LOG}' as its values (end the list "
        f"with '=': --keep-keys=Name {LOG}; or give the LOGFILEs before --keep-keys)"]
