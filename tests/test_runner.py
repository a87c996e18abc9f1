"""The runner: modules, records in the YamlLog, failures, solve, unread parameters."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta, timezone

import pytest
from conftest import read_log, run_script

from cool_runner import Expander, MemorySource, ModuleLoadError, Runner, load_study
from cool_runner.console import Console
from cool_runner.run.importing import search_paths

HEAD = "Module: mymod\nYamlLog: log.yaml\n"


def make_runner(workdir, **kwargs):
    out = io.StringIO()
    runner = Runner(Console(out=out, err=out, colour=False), paths=search_paths(str(workdir / "experiment.yaml")),
                    grace=0.05, **kwargs)
    return runner, out


def run(workdir, write, module: str, text: str, **kwargs):
    write("mymod.py", module)
    path = write("experiment.yaml", text)
    experiments = Expander(load_study(str(path)), rng=random.Random(1)).expand()
    runner, out = make_runner(workdir, **kwargs)
    runner.preload(experiments)
    summary = runner.run(MemorySource(experiments))
    log = workdir / "log.yaml"
    return summary, (read_log(log) if log.exists() else []), out.getvalue()


MODULE = """
def main(exp):
    if exp.get("fail"):
        raise ValueError("bad value " + str(exp.x))
    exp.ACC = exp.x / 10
"""


def test_records_hold_values_results_and_run_facts(workdir, write):
    summary, log, out = run(workdir, write, MODULE, HEAD + "---\nName: a\nx: 3\n")
    (record,) = log
    assert record["ACC"] == 0.3 and record["STATUS"] == "done" and record["Name"] == "a"
    assert set(record) >= {"REP", "RND_IDX", "HOST", "TIME_ELAPSED"}
    assert list(record)[-3:] == ["TIME_STARTED", "TIME_ELAPSED", "STATUS"]
    started = datetime.fromisoformat(record["TIME_STARTED"])
    assert started.tzinfo is not None and abs(datetime.now(timezone.utc) - started) < timedelta(minutes=5)
    assert summary.exit_code == 0
    assert "[1/1] a done in" in out and "ACC=0.3" in out
    assert "1 done, 0 failed, 0 skipped, 0 interrupted" in out


def test_a_failure_does_not_stop_the_rest(workdir, write):
    text = HEAD + "---\nName: a\nx: 1\nfail: true\n---\nName: b\nx: 2\n"
    summary, log, out = run(workdir, write, MODULE, text)
    assert [r["STATUS"] for r in log] == ["failed", "done"]
    assert log[0]["ERROR"] == "ValueError: bad value 1"
    assert "Traceback" in log[0]["TRACEBACK"] and 'raise ValueError("bad value "' in log[0]["TRACEBACK"]
    assert summary.exit_code == 1 and "ValueError: bad value 1" in out


def test_fail_fast_stops_at_the_first_failure(workdir, write):
    text = HEAD + "---\nName: a\nx: 1\nfail: true\n---\nName: b\nx: 2\n"
    summary, log, out = run(workdir, write, MODULE, text, fail_fast=True)
    assert [r["Name"] for r in log] == ["a"] and summary.exit_code == 1 and "--fail-fast" in out


def test_skipped_experiments_are_not_run_or_logged(workdir, write):
    summary, log, _ = run(workdir, write, MODULE, HEAD + "---\nName: skip\nx: 1\n---\nName: b\nx: 2\n")
    assert [r["Name"] for r in log] == ["b"] and summary.count("skipped") == 1


def test_unread_parameters_are_reported(workdir, write):
    text = HEAD + "---\nName: a\nx: 1\ntypo_lr: 3\nopt: {lr: 1, momentum: 2}\n_note: private\nUPPER: 1\n"
    module = "def main(exp):\n    exp.ACC = exp.x + exp.opt.lr\n"
    _, _, out = run(workdir, write, module, text)
    assert "never read by the module: typo_lr, opt.momentum" in out


def test_iterating_a_mapping_counts_as_reading_it(workdir, write):
    module = "def main(exp):\n    exp.ACC = exp.x + sum(dict(exp.opt).values())\n"
    _, _, out = run(workdir, write, module, HEAD + "---\nName: a\nx: 1\nopt: {lr: 1, momentum: 2}\n")
    assert "never read" not in out


def test_solve_gives_objects_to_the_module_and_recipes_to_the_log(workdir, write):
    module = "def main(exp):\n    exp.ROOT = exp.fn(exp.x)\n    exp.KIND = exp.opts.cls.__name__\n"
    text = HEAD + "---\nName: a\nx: 16\nfn: solve math.sqrt\nopts: {cls: solve collections.OrderedDict}\n"
    _summary, log, _ = run(workdir, write, module, text)
    assert log[0]["ROOT"] == 4.0 and log[0]["KIND"] == "OrderedDict"
    assert log[0]["fn"] == "solve math.sqrt" and log[0]["opts"]["cls"] == "solve collections.OrderedDict"


def test_solve_failure_fails_that_experiment_only(workdir, write):
    text = HEAD + "---\nName: a\nx: 1\nfn: solve nosuchmodule_abc.thing\n---\nName: b\nx: 2\n"
    _summary, log, _out = run(workdir, write, MODULE, text)
    assert [r["STATUS"] for r in log] == ["failed", "done"]
    assert log[0]["ERROR"].startswith("experiment 0 (a): fn: solve nosuchmodule_abc.thing: NameError")


def test_module_may_return_results(workdir, write):
    _, log, _ = run(workdir, write, "def main(exp):\n    return {'ACC': 1.0}\n", HEAD + "---\nName: a\n")
    assert log[0]["ACC"] == 1.0


def test_numpy_results_are_converted(workdir, write):
    pytest.importorskip("numpy")
    module = "import numpy as np\ndef main(exp):\n    exp.ACC = np.float32(0.5)\n    exp.CURVE = np.arange(3)\n"
    _, log, _ = run(workdir, write, module, HEAD + "---\nName: a\n")
    assert log[0]["ACC"] == 0.5 and log[0]["CURVE"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("files", "module", "fragment", "details"),
    [
        pytest.param({}, "nothere", "module not found", None, id="missing"),
        pytest.param({"broken.py": "import json\nraise RuntimeError('oops at import')\n"}, "broken",
                     "raised while importing: RuntimeError: oops at import", "oops at import", id="raises"),
        pytest.param({"needsdep.py": "import not_installed_dep_xyz\n"}, "needsdep",
                     "raised while importing: No module named 'not_installed_dep_xyz'", "Traceback", id="dep-missing"),
        pytest.param({"nomain.py": "x = 1\n"}, "nomain", "has no main(exp) function", None, id="no-main"),
        pytest.param({"nested.py": "import broken_inner\n", "broken_inner.py": "x = 1\nraise KeyError('k')\n"},
                     "nested", "raised while importing: KeyError: k", "broken_inner.py\", line 2", id="nested-import"),
        pytest.param({"syntax.py": "x = (\n"}, "syntax", "raised while importing: SyntaxError: '(' was never closed",
                     "SyntaxError", id="syntax-error"),
        pytest.param({"mute.py": "class Mute(Exception):\n    def __str__(self):\n        raise TypeError\n"
                                 "raise Mute()\n"}, "mute", "raised while importing: Mute: <unprintable>", "Mute",
                     id="unprintable"),
        pytest.param({"pkg/__init__.py": ""}, "pkg.sub", "module not found", None, id="missing-submodule"),
    ],
)
def test_module_errors(workdir, write, files, module, fragment, details):
    for name, text in files.items():
        write(name, text)
    runner, _ = make_runner(workdir)
    with pytest.raises(ModuleLoadError) as info:
        runner.main_of(module)
    assert info.value.module == module and fragment in str(info.value)
    assert str(info.value).startswith(f"Module {module}: ")
    if details:
        assert details in info.value.details
        # The user's frames only: neither importlib's machinery nor cool-runner's own frames.
        assert "importlib" not in info.value.details and "cool_runner" not in info.value.details
        assert f'{module}.py", line' in info.value.details
    else:
        assert info.value.details is None


# --- what a failure shows: the user's frames, in the terminal and as a literal block in the log ------------

NESTED_FAILURE = """
def helper(value):
    raise ValueError("bad value " + str(value))

def main(exp):
    helper(exp.x)
"""


def test_a_failure_shows_the_users_frames_only(workdir, write):
    _, log, out = run(workdir, write, NESTED_FAILURE, HEAD + "---\nName: a\nx: 1\n")
    trace = log[0]["TRACEBACK"]
    assert trace.startswith("Traceback (most recent call last):\n  File ")
    assert "mymod.py\", line 5, in main" in trace and "mymod.py\", line 2, in helper" in trace
    assert trace.endswith("ValueError: bad value 1\n")
    assert "cool_runner" not in trace and "runner.py" not in trace
    assert "    ValueError: bad value 1\n    Traceback (most recent call last):\n" in out
    assert "        raise ValueError(\"bad value \" + str(value))\n" in out
    text = (workdir / "log.yaml").read_text()
    assert "TRACEBACK: |\n  Traceback (most recent call last):\n    File " in text


def test_frames_below_the_users_code_are_kept(workdir, write):
    module = "def main(exp):\n    return exp.missing_key\n"
    _, log, _ = run(workdir, write, module, HEAD + "---\nName: a\n")
    trace = log[0]["TRACEBACK"]
    assert trace.index("mymod.py") < trace.index("mapping.py") and "runner.py" not in trace


def test_debug_shows_the_whole_traceback_but_logs_the_trimmed_one(workdir, write):
    _, log, out = run(workdir, write, NESTED_FAILURE, HEAD + "---\nName: a\nx: 1\n", debug=True)
    assert "runner.py" in out and "runner.py" not in log[0]["TRACEBACK"]


def test_a_solve_failure_shows_no_empty_traceback(workdir, write):
    text = HEAD + "---\nName: a\nfn: solve 1/0\n"
    _, log, out = run(workdir, write, MODULE, text)
    assert log[0]["ERROR"].startswith("experiment 0 (a): fn: solve 1/0: ZeroDivisionError")
    assert 'File "<expression>", line 1' in log[0]["TRACEBACK"] and "EvalFailure" not in log[0]["TRACEBACK"]
    assert "Traceback" not in out  # no frame of a real file to show


CARELESS = """
class Bad(Exception):
    def __str__(self):
        raise RuntimeError("no message")

def main(exp):
    kind = exp.kind
    if kind == "cycle":
        loop = {"a": 1}
        loop["self"] = loop
        exp.LOOP = loop
    elif kind == "deep":
        deep = []
        for _ in range(2000):
            deep = [deep]
        exp.DEEP = deep
    elif kind == "int":
        exp.BIG = 2 ** 50_000
    elif kind == "unprintable":
        raise Bad()
    elif kind == "empty":
        raise ValueError()
    exp.ACC = 1
"""


@pytest.mark.parametrize(
    ("kind", "error", "key"),
    [
        pytest.param("cycle", "experiment 0 (x): LOOP.self: a dict that contains itself cannot be written", "LOOP",
                     id="cycle"),
        pytest.param("deep", "experiment 0 (x): DEEP: nested more than 100 levels deep (99 levels inside it)", "DEEP",
                     id="deep"),
        pytest.param("int", "experiment 0 (x): BIG: an integer of 50,001 bits is too large", "BIG", id="big-int"),
        pytest.param("unprintable", "Bad: <unprintable>", None, id="unprintable-exception"),
        pytest.param("empty", "ValueError", None, id="empty-message"),
    ],
)
def test_what_a_module_leaves_behind_fails_only_its_experiment(workdir, write, kind, error, key):
    text = HEAD + f"---\nName: x\nkind: {kind}\n---\nName: next\nkind: fine\n"
    summary, log, out = run(workdir, write, CARELESS, text)
    assert [r["STATUS"] for r in log] == ["failed", "done"] and summary.exit_code == 1
    assert log[0]["ERROR"].startswith(error)
    assert summary.outcomes[0].error == log[0]["ERROR"]
    if key:
        assert "<not saved: " in str(log[0][key]) and log[0]["ACC"] == 1 and "TRACEBACK" not in log[0]
    assert f"    {error}" in out


# --- multi-line strings in every file the tools write --------------------------------------------------------

NOTE = "first line\n  indented line\nlast line\n"


def test_dry_run_and_queue_files_write_multi_line_strings_as_literal_blocks(workdir, write):
    from cool_runner.queue.filequeue import FileQueue
    from cool_runner.run.session import dry_run

    path = write("experiment.yaml", HEAD + "---\nName: a\nnote: |\n  first line\n    indented line\n  last line\n")
    study = load_study(str(path))
    experiments = Expander(study, rng=random.Random(1)).expand()
    out = io.StringIO()
    write("mymod.py", MODULE)
    dry_run(experiments, search_paths(str(path)), Console(out=out, colour=False))
    assert "    note: |2\n      first line\n        indented line\n      last line\n" in out.getvalue()
    queue = FileQueue(workdir / "queue.yaml")
    queue.fill(experiments, study)
    assert "note: |\n  first line\n    indented line\n  last line\n" in (workdir / "queue.yaml").read_text()
    taken = queue.take()
    assert taken.values["note"] == NOTE


def test_debug_variable_shows_cool_runners_frames_too(workdir, write):
    write("mymod.py", NESTED_FAILURE)
    write("experiment.yaml", HEAD + "---\nName: a\nx: 1\n")
    plain = run_script("run.py", cwd=workdir)
    debug = run_script("run.py", cwd=workdir, env={"COOL_RUNNER_DEBUG": "1"})
    assert plain.returncode == debug.returncode == 1
    # Experiments run in a worker process (run/child.py) by default, in-process (run/runner.py) with --in-process.
    assert "mymod.py" in plain.stdout and "cool_runner/run/" not in plain.stdout
    assert "cool_runner/run/child.py" in debug.stdout and "mymod.py" in debug.stdout
    assert all("cool_runner" not in record["TRACEBACK"] for record in read_log(workdir / "log.yaml"))
