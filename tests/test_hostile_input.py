"""Hostile or broken input through the real scripts: one line on stderr, exit code 2, no traceback, no hang."""

from __future__ import annotations

import os

import pytest
from conftest import read_log, run_script

HEAD = "Module: mymod\nYamlLog: log.yaml\n"
MODULE = "def main(exp):\n    exp.ACC = 1\n"


def laughs(levels: int = 9, width: int = 9) -> list[str]:
    """The lines of a "billion laughs" mapping: each anchor repeats the previous one `width` times."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return lines


LAUGHS = "\n".join(laughs()) + "\n"
FLOW_LAUGHS = "{" + ", ".join(laughs()) + "}"
UNPRINTABLE = "(_ for _ in ()).throw(type('Bad', (Exception,), {'__str__': lambda self: 1 / 0}))"


def test_the_billion_laughs_file_is_small():
    assert len(LAUGHS) < 500 and len(FLOW_LAUGHS) < 500


@pytest.fixture
def fifo(workdir):
    path = workdir / "pipe.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "text", "fragment"),
    [
        pytest.param([], LAUGHS + HEAD, "experiment.yaml:7: aliases expand this value to 5,380,840 values",
                     id="billion-laughs-exp"),
        pytest.param([f"+x={FLOW_LAUGHS}"], HEAD + "---\nName: a\n", "aliases expand this value to 5,380,840 values",
                     id="billion-laughs-override"),
        pytest.param([], HEAD + "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
                     "experiment.yaml:3: lists and mappings are nested more than 100 levels deep", id="deep-flow"),
        pytest.param([], HEAD + "x:\n" + "- " * 30_000 + "1\n",
                     "experiment.yaml:4: lists and mappings are nested more than 100 levels deep", id="deep-block"),
        pytest.param([], HEAD + "x:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(300)) + "---\nName: a\n",
                     "experiment.yaml:103: lists and mappings are nested more than 100 levels deep",
                     id="deep-indented"),
        pytest.param(["+x=" + "[" * 60_000 + "]" * 60_000], HEAD + "---\nName: a\n",
                     "lists and mappings are nested more than 100 levels deep", id="deep-override"),
        pytest.param(["+" + ".".join(["k"] * 500) + "=1"], HEAD + "---\nName: a\n", "the key path has 500 parts",
                     id="deep-override-path"),
        pytest.param([], HEAD + "? [1, 2]\n: x\n", "experiment.yaml:3: a list or mapping cannot be a mapping key",
                     id="list-as-key"),
        pytest.param([], HEAD + "? {a: 1}\n: x\n", "experiment.yaml:3: a list or mapping cannot be a mapping key",
                     id="mapping-as-key"),
        pytest.param([], HEAD + "x: " + "9" * 5000 + "\n",
                     "experiment.yaml:3: an integer written with 5,000 characters is too large", id="huge-int-literal"),
        pytest.param([], HEAD + "---\nName: a\nx: parse 10**10**7\n",
                     "experiment 0 (a): x: parse 10**10**7: OverflowError: the result of 10 ** 10000000 would have",
                     id="parse-10-to-10-to-7"),
        pytest.param([], HEAD + "---\nName: a\nx: parse 2**10**6\n",
                     "x: parse 2**10**6: OverflowError: the result of 2 ** 1000000 would have", id="parse-2-to-10-to-6"),
        pytest.param([], HEAD + "---\nName: a\nx: parse [0] * 10**10\n", "MemoryError: repeating a list",
                     id="parse-huge-list"),
        pytest.param([], HEAD + "---\nName: a\nx: parse (l := [], l.append(l), l)[2]\n",
                     "x: parse (l := [], l.append(l), l)[2]: the result cannot be kept: a list that contains itself",
                     id="parse-cycle"),
        pytest.param([], HEAD + "---\nName: a\nx: parse eval('[' * 150 + ']' * 150)\n",
                     "the result cannot be kept: it is nested more than 100 levels deep", id="parse-deep"),
        pytest.param([], HEAD + f'---\nName: a\nx: "parse {UNPRINTABLE}"\n', "experiment 0 (a): x: parse",
                     id="parse-unprintable-error"),
        pytest.param([], "Module: mymod\nYamlLog: logs\n---\nName: a\n",
                     "experiment.yaml:2: experiment 0 (a): YamlLog: logs is a folder, not a file", id="log-is-folder"),
        pytest.param([], "Module: mymod\nYamlLog: /proc/cool-runner/log.yaml\n---\nName: a\n",
                     "YamlLog: /proc/cool-runner/log.yaml is under /proc", id="log-under-proc"),
        pytest.param([], "Module: mymod\nYamlLog: /sys/log.yaml\n---\nName: a\n", "YamlLog: /sys/log.yaml is under /sys",
                     id="log-under-sys"),
        pytest.param([], "Module: mymod\nYamlLog: mymod.py/log.yaml\n---\nName: a\n",
                     "cannot be created: ", id="log-parent-is-a-file"),
        pytest.param([], "Global: {queue: logs}\n" + HEAD + "---\nName: a\n",
                     "experiment.yaml:1: Global.queue: logs is a folder, not a file", id="queue-is-folder"),
        pytest.param(["+Global.queue=/proc/q.yaml"], HEAD + "---\nName: a\n",
                     "Global.queue: /proc/q.yaml is under /proc", id="queue-override-under-proc"),
        pytest.param(["--queue", "/proc/q.yaml"], HEAD + "---\nName: a\n", "--queue: /proc/q.yaml is under /proc",
                     id="queue-option-under-proc"),
        pytest.param(["--resume", "--queue", "logs"], HEAD + "---\nName: a\n", "--queue: logs is a folder",
                     id="resume-queue-is-folder"),
        pytest.param([], HEAD + "table:\n  1: one\n  true: yes\n",
                     "experiment.yaml:5: keys '1' (line 4) and 'true' are different in YAML but the same key in Python",
                     id="one-and-true"),
    ],
)
def test_run_refuses_with_one_line(workdir, write, args, text, fragment):
    write("mymod.py", MODULE)
    write("experiment.yaml", text)
    (workdir / "logs").mkdir()
    result = run_script("run.py", *args, cwd=workdir, timeout=50)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "log.yaml").exists()


def test_an_unprintable_parse_error_still_has_a_message(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", HEAD + f'---\nName: a\nx: "parse {UNPRINTABLE}"\n')
    result = run_script("run.py", cwd=workdir)
    assert result.returncode == 2 and result.stderr.rstrip().endswith(": Bad: <unprintable>")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        pytest.param("pipe.yaml", "pipe.yaml: is a FIFO (named pipe), not a file", id="fifo"),
        pytest.param("/dev/zero", "/dev/zero: is a character device, not a file", id="dev-zero"),
        pytest.param("logs", "logs: is a folder, not a file", id="folder"),
    ],
)
def test_run_refuses_files_it_cannot_read_without_blocking(workdir, fifo, target, fragment):
    (workdir / "logs").mkdir()
    result = run_script("run.py", "--exp", target, cwd=workdir, timeout=30)
    assert result.returncode == 2 and fragment in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_add_refuses_a_fifo(workdir, fifo):
    result = run_script("run.py", "--queue", "q.yaml", "--add", "pipe.yaml", cwd=workdir, timeout=30)
    assert result.returncode == 2 and "--add: cannot read pipe.yaml: is a FIFO" in result.stderr


HOSTILE_LOGS = {
    "laughs.yaml": LAUGHS,
    "deep.yaml": "[" * 100_000 + "]" * 100_000 + "\n",
    "key.yaml": "---\n? [1]\n: x\nSTATUS: done\n",
    "bigint.yaml": "---\nSTATUS: done\nACC: " + "7" * 6000 + "\n",
}


@pytest.mark.timeout(60)
def test_collect_skips_hostile_files_with_one_warning_each_and_goes_on(workdir, write):
    for name, text in HOSTILE_LOGS.items():
        (workdir / "data").mkdir(exist_ok=True)
        (workdir / "data" / name).write_text(text)
    write("data/good.yaml", "---\nName: good\nSTATUS: done\n")
    result = run_script("collect.py", "data", cwd=workdir, timeout=50)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == len(HOSTILE_LOGS)
    assert "warning: skipped data/laughs.yaml:7: aliases expand this value to 5,380,840 values" in result.stderr
    assert "warning: skipped data/deep.yaml:1: lists and mappings are nested more than 100 levels" in result.stderr
    assert "warning: skipped data/key.yaml:2: a list or mapping cannot be a mapping key" in result.stderr
    assert "warning: skipped data/bigint.yaml:3: an integer written with 6,000 characters" in result.stderr
    assert "collected 1 record(s)" in result.stdout
    (output,) = (workdir / "collected").glob("logs_*.yaml")
    assert [r["Name"] for r in read_log(output)] == ["good"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("laughs.yaml", "laughs.yaml:7: aliases expand this value to 5,380,840 values", id="laughs"),
        pytest.param("deep.yaml", "deep.yaml:1: lists and mappings are nested more than 100 levels", id="deep"),
        pytest.param("key.yaml", "key.yaml:2: a list or mapping cannot be a mapping key", id="list-key"),
        pytest.param("bigint.yaml", "bigint.yaml:3: an integer written with 6,000 characters", id="big-int"),
        pytest.param("pipe.yaml", "pipe.yaml: is a FIFO (named pipe), not a file", id="fifo"),
        pytest.param("/dev/zero", "/dev/zero: is a character device", id="dev-zero"),
    ],
)
def test_filter_refuses_hostile_files_with_one_line(workdir, fifo, name, fragment):
    for file, text in HOSTILE_LOGS.items():
        (workdir / file).write_text(text)
    result = run_script("filter.py", name, "-o", "-", cwd=workdir, timeout=50)
    assert result.returncode == 2 and fragment in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


CARELESS_MODULE = """
class Bad(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")

def main(exp):
    if exp.kind == "cycle":
        loop = []
        loop.append(loop)
        exp.LOOP = loop
    elif exp.kind == "deep":
        deep = []
        for _ in range(5000):
            deep = [deep]
        exp.DEEP = deep
    elif exp.kind == "int":
        exp.BIG = 2 ** 100_000
    elif exp.kind == "unprintable":
        raise Bad()
    exp.ACC = 1
"""


@pytest.mark.timeout(60)
def test_what_a_module_leaves_behind_fails_only_its_experiment(workdir, write):
    write("mymod.py", CARELESS_MODULE)
    kinds = ["cycle", "deep", "int", "unprintable", "fine"]
    write("experiment.yaml", HEAD + "".join(f"---\nName: {kind}\nkind: {kind}\n" for kind in kinds))
    result = run_script("run.py", cwd=workdir, timeout=50)
    assert result.returncode == 1 and "Traceback" not in result.stderr and result.stderr == ""
    records = read_log(workdir / "log.yaml")
    assert [r["STATUS"] for r in records] == ["failed"] * 4 + ["done"]
    errors = [r.get("ERROR") for r in records]
    assert errors[0].startswith("experiment 0 (cycle): LOOP[0]: a list that contains itself cannot be written")
    assert errors[1].startswith("experiment 1 (deep): DEEP")
    assert "nested more than 100 levels deep" in errors[1]
    assert errors[2].startswith("experiment 2 (int): BIG: an integer of 100,001 bits is too large")
    assert errors[3] == "Bad: <unprintable>"
    assert records[0]["LOOP"] == ["<not saved: a list that contains itself cannot be written>"]
    assert records[2]["BIG"].startswith("<not saved: ")
    assert "[4/5] unprintable failed" in result.stdout and "    Bad: <unprintable>" in result.stdout
