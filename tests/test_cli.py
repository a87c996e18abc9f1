"""run.py end to end: in-process through run_main(argv), and as real processes for exit codes and signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest
from conftest import ROOT, read_log, run_script

from cool_runner import cli
from cool_runner.console import Console, wants_colour

HEAD = "Module: mymod\nYamlLog: log.yaml\n"
MODULE = """
import sys
def main(exp):
    exp.ARGV = sys.argv[1:]
    exp.ACC = exp.x * 2
"""


@pytest.fixture
def study(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", HEAD + "x: 1\n---\nName: a\n---\nName: b\nx: 2\n---\nName: c\nx: 3\n")
    return workdir


def test_run_in_process(study, capsys):
    assert cli.run_main(["--exp", "experiment.yaml", "--device", "cpu", "+x=10"]) == 0
    log = read_log(study / "log.yaml")
    assert [r["ACC"] for r in log] == [20, 4, 6]
    assert log[0]["ARGV"] == ["--device", "cpu"]
    assert "3 done, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("pick", [["--pick", "0,2"], ["--pick", "0", "2"], ["--cherrypick-experiments", "0, 2"]])
def test_pick(study, pick):
    assert cli.run_main(["--exp", "experiment.yaml", *pick]) == 0
    assert [r["Name"] for r in read_log(study / "log.yaml")] == ["a", "c"]


def test_pick_keeps_history_of_unpicked(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", HEAD + "---\nName: a\nx: 5\n---\nName: b\nx: parse E[-1].x + 1\n")
    assert cli.run_main(["--exp", "experiment.yaml", "--pick", "1"]) == 0
    assert read_log(workdir / "log.yaml")[0]["x"] == 6


def test_dry_prints_and_touches_nothing(workdir, write, capsys):
    write("mymod.py", "open('imported.txt', 'w').close()\ndef main(exp):\n    pass\n")
    write("experiment.yaml", HEAD + "---\nName: a\nfn: solve math.sqrt\nsp: parse 0.5 * 2\n")
    assert cli.run_main(["--exp", "experiment.yaml", "--dry"]) == 0
    out = capsys.readouterr().out
    assert "[0] a" in out and "sp: 1.0" in out and "fn: solve math.sqrt" in out and "nothing was run" in out
    assert sorted(p.name for p in workdir.iterdir()) == ["experiment.yaml", "mymod.py"]


def test_dry_still_checks_the_module_exists(workdir, write, capsys):
    write("experiment.yaml", "Module: not_a_module\nYamlLog: log.yaml\n---\nName: a\n")
    assert cli.run_main(["--exp", "experiment.yaml", "--dry"]) == 2
    assert "Module not_a_module: module not found" in capsys.readouterr().err


def test_module_in_experiment_folder_is_found_from_elsewhere(tmp_path, write, monkeypatch):
    write("sub/localmod.py", "def main(exp):\n    exp.OK = True\n")
    write("sub/experiment.yaml", "Module: localmod\nYamlLog: log.yaml\n---\nName: a\n")
    monkeypatch.chdir(tmp_path)
    assert cli.run_main(["--exp", "sub/experiment.yaml"]) == 0
    assert read_log(tmp_path / "log.yaml")[0]["OK"] is True
    sys.modules.pop("localmod", None)


@pytest.mark.parametrize(
    ("args", "files", "fragment"),
    [
        pytest.param(["--exp", "nope.yaml"], {}, "nope.yaml: file not found", id="missing-file"),
        pytest.param([], {"experiment.yaml": "a: [1\n"}, "experiment.yaml:2: invalid YAML", id="bad-yaml"),
        pytest.param([], {"experiment.yaml": HEAD + "---\nName: a\nx: parse y\n"},
                     "experiment.yaml:5: experiment 0 (a): x: parse y: NameError", id="parse-error"),
        pytest.param(["--pick", "7"], {"experiment.yaml": HEAD + "---\nName: a\n"},
                     "--pick: index 7 is out of range", id="pick-range"),
        pytest.param(["--pick", "x"], {"experiment.yaml": HEAD + "---\nName: a\n"},
                     "--pick: 'x' is not an experiment index", id="pick-word"),
        pytest.param(["+lr"], {"experiment.yaml": HEAD + "---\nName: a\n"}, "+lr: cannot read", id="bad-override"),
        pytest.param(["--seed", "x"], {}, "argument --seed: invalid int value: 'x' (see run.py --help)", id="bad-option"),
        pytest.param([], {"experiment.yaml": "Module: ghost\nYamlLog: l.yaml\n---\nName: a\n"},
                     "Module ghost: module not found", id="unknown-module"),
        pytest.param(["--dyr"], {"experiment.yaml": HEAD + "---\nName: a\n"},
                     "run.py: error: --dyr: not an option of run.py; did you mean --dry?", id="option-typo"),
        pytest.param(["--pick", "0", "0", "0"], {"experiment.yaml": HEAD + "---\nName: a\n"},
                     "--pick: index 0 is given more than once", id="pick-twice"),
        pytest.param(["--pick", ""], {"experiment.yaml": HEAD + "---\nName: a\n"},
                     "--pick: no index given", id="pick-empty"),
        pytest.param(["+x.y=1"], {"experiment.yaml": HEAD + "x: 3\n---\nName: a\n"},
                     "+x.y=1: x holds 3 (a number), not a mapping", id="override-into-number"),
        pytest.param([], {"experiment.yaml": "Global: {slack: maybe}\n" + HEAD + "---\nName: a\n"},
                     "experiment.yaml:1: Global.slack: must be true or false, not 'maybe'", id="slack-maybe"),
        pytest.param([], {"experiment.yaml": HEAD}, "experiment.yaml: the file holds only the default config, so "
                     "there is no experiment to run (add experiments after it, each starting with a line '---'",
                     id="only-defaults"),
        pytest.param([], {}, "run.py: error: there is no experiment.yaml in the current folder (", id="no-file"),
    ],
)
def test_user_errors_exit_2_with_one_line(workdir, write, args, files, fragment):
    for name, text in files.items():
        write(name, text)
    result = run_script("run.py", *args, cwd=workdir)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "log.yaml").exists()


def test_nothing_runs_when_a_later_experiment_is_broken(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", HEAD + "x: 1\n---\nName: a\n---\nName: b\nx: parse 1/0\n")
    result = run_script("run.py", cwd=workdir)
    assert result.returncode == 2 and "experiment 1 (b): x: parse 1/0: ZeroDivisionError" in result.stderr
    assert not (workdir / "log.yaml").exists()


def test_debug_variable_shows_the_traceback(workdir, write):
    result = run_script("run.py", "--exp", "nope.yaml", cwd=workdir, env={"COOL_RUNNER_DEBUG": "1"})
    assert result.returncode == 2 and "Traceback" in result.stderr and "file not found" in result.stderr


def test_module_that_raises_on_import_shows_the_users_traceback(workdir, write):
    write("mymod.py", "def helper():\n    raise RuntimeError('broken at import')\nhelper()\n")
    write("experiment.yaml", HEAD + "---\nName: a\n")
    result = run_script("run.py", cwd=workdir)
    assert result.returncode == 2
    assert "Module mymod: raised while importing: RuntimeError: broken at import" in result.stderr
    assert "mymod.py\", line 3" in result.stderr


def test_failed_experiment_exits_1(workdir, write):
    write("mymod.py", "def main(exp):\n    raise KeyError('lr')\n")
    write("experiment.yaml", HEAD + "---\nName: a\n---\nName: b\n")
    result = run_script("run.py", cwd=workdir)
    assert result.returncode == 1
    assert [r["STATUS"] for r in read_log(workdir / "log.yaml")] == ["failed", "failed"]


def test_internal_bugs_keep_their_traceback(study, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("internal bug")

    import cool_runner.run.session as session

    monkeypatch.setattr(session, "load_study", bug)
    with pytest.raises(RuntimeError, match="internal bug"):
        cli.run_main(["--exp", "experiment.yaml"])


def test_the_modules_own_arguments_pass(study):
    argv = ["--device", "cuda:1", "--lr-scale", "3", "positional", "-q", "--steps", "5", "--res", "-1", "--depth=2", "--pickle"]
    assert cli.run_main(["--exp", "experiment.yaml", *argv]) == 0
    assert read_log(study / "log.yaml")[0]["ARGV"] == argv


def test_everything_after_double_dash_goes_to_the_module_as_it_is(study):
    assert cli.run_main(["--exp", "experiment.yaml", "--device", "cpu", "+x=5", "--", "--dyr", "+x=7", "--"]) == 0
    record = read_log(study / "log.yaml")[0]
    assert record["ARGV"] == ["--device", "cpu", "--dyr", "+x=7", "--"] and record["x"] == 5


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        pytest.param(["--dyr"], "--dry", id="swapped"),
        pytest.param(["--dr"], "--dry", id="short"),
        pytest.param(["--pic", "0"], "--pick", id="pic"),
        pytest.param(["--DRY"], "--dry", id="case"),
        pytest.param(["-dry"], "--dry", id="one-dash"),
        pytest.param(["--fail_fast"], "--fail-fast", id="underscore"),
        pytest.param(["--failfast"], "--fail-fast", id="no-hyphen"),
        pytest.param(["--sed=3"], "--seed", id="with-value"),
        pytest.param(["--exps", "other.yaml"], "--exp", id="plural"),
        pytest.param(["--resmue"], "--resume", id="resume"),
        pytest.param(["--stauts"], "--status", id="status"),
        pytest.param(["--hepl"], "--help", id="help"),
        pytest.param(["--cherrypick-experiment", "0"], "--cherrypick-experiments", id="long-name"),
    ],
)
def test_typos_of_run_options_are_refused_before_anything_runs(study, capsys, args, meant):
    assert cli.run_main(["--exp", "experiment.yaml", "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err == (f"run.py: error: {args[0]}: not an option of run.py; did you mean {meant}? (an argument for your "
                   f"module that looks like this goes after --: run.py ... -- {args[0]})\n")
    assert not (study / "log.yaml").exists()


def test_program_name_follows_how_the_tool_was_started(tmp_path):
    assert cli.program_name("run.py", "/usr/bin/cool-run") == "cool-run"
    assert cli.program_name("run.py", "/home/me/cool-runner/run.py") == "run.py"
    assert cli.program_name("filter.py", r"cool-filter.exe") == "cool-filter"
    assert cli.program_name("collect.py", "cool-collect") == "cool-collect"
    assert cli.program_name("run.py", "/usr/lib/python3/site-packages/pytest/__main__.py") == "run.py"
    assert cli.program_name("run.py", "cool-filter") == "run.py"
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}  # the link's folder holds no cool_runner
    bad = {"run.py": ["--seed", "x"], "collect.py": ["data", "--jobs", "x"], "filter.py": ["log.yaml", "--no-such-option"]}
    for script, command in cli.COMMANDS.items():  # the name pip gives the command, as a real process
        link = tmp_path / command
        link.symlink_to(ROOT / script)
        result = subprocess.run([sys.executable, str(link), *bad[script]], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.startswith(f"{command}: error: ") and f"see {command} --help" in result.stderr
        usage = subprocess.run([sys.executable, str(link), "--help"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert usage.stdout.startswith(f"usage: {command} ")


def test_run_without_experiment_yaml_explains_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.run_main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"run.py: error: there is no experiment.yaml in the current folder ({tmp_path}) ")
    assert "name your experiment file with --exp FILE, e.g. run.py --exp studies/my-study.yaml" in err
    assert "--exp" not in err.split("(")[0]  # it does not blame an option the user never gave
    assert cli.run_main(["--status"]) == 2
    assert "name the queue with --queue FILE or your experiment file with --exp FILE" in capsys.readouterr().err
    assert cli.run_main(["--exp", "nope.yaml"]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err


CHANGER = """
def main(exp):
    exp.width = 5
    exp.optimizer.lr = exp.optimizer.lr * 2
    exp.same = 3.0
    exp.layers = tuple(exp.layers)
    del exp["drop"]
    exp.ACC = 0.5
    if exp.get("fail"):
        raise RuntimeError("after changing")
"""


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["worker", "in-process"])
def test_values_the_module_changes_are_warned_about_and_kept(workdir, write, capsys, mode):
    write("mymod.py", CHANGER)
    write("experiment.yaml", HEAD + "width: 3\nsame: 3\nlayers: [1, 2]\noptimizer: {lr: 0.1, momentum: 0.9}\n"
          "fn: solve math.sqrt\ndrop: 1\n"
          "---\nName: a\n---\nName: b\nwidth: 5\noptimizer: {lr: 0.05}\nfail: true\n")
    assert cli.run_main(["--exp", "experiment.yaml", *mode]) == 1
    a, b = read_log(workdir / "log.yaml")
    assert (a["width"], a["optimizer"], a["CONFIGURED"]) == (5, {"lr": 0.2, "momentum": 0.9},
                                                            {"width": 3, "optimizer": {"lr": 0.1}, "drop": 1})
    assert "drop" not in a and a["layers"] == [1, 2]  # a tuple of the same items is no change
    assert a["fn"] == "solve math.sqrt" and a["ACC"] == 0.5  # a solved object and a result are no change
    keys = list(a)
    assert keys.index("ACC") < keys.index("CONFIGURED") < keys.index("TIME_ELAPSED") < keys.index("STATUS")
    assert b["STATUS"] == "failed" and b["CONFIGURED"] == {"optimizer": {"lr": 0.05}, "drop": 1}  # width was 5
    out = capsys.readouterr().out
    assert ("    warning: the module changed configured values: width 3 -> 5, optimizer.lr 0.1 -> 0.2, drop (removed) "
            "(the log keeps what was configured under CONFIGURED)") in out.splitlines()
    assert "optimizer.lr 0.05 -> 0.1, drop (removed) (" in out and "width 5" not in out


def test_changes_are_compared_as_the_record_will_hold_them():
    np = pytest.importorskip("numpy")
    from cool_runner.keys import ABSENT
    from cool_runner.run.records import changed_values
    from cool_runner.study.mapping import TrackedExp

    configured = {"a": [1, 2], "b": 0.5, "c": [1, 2], "d": {"e": 1}, "s": "solve x", "t": [0, "solve y"]}
    now = TrackedExp.track({"a": np.array([1, 2]), "b": np.float64(0.5), "c": np.array([1, 3]), "d": "flat",
                            "s": object(), "t": [0, object()], "NEW": 1})
    changes = changed_values(configured, now, [("s",), ("t", 1)])
    assert [(c.path, c.configured) for c in changes] == [(("c",), [1, 2]), (("d",), {"e": 1})]
    assert changes[1].describe() == "d {'e': 1} -> 'flat'"
    assert len(now.unread()) == len(now)  # comparing marks no key as read by the module
    assert changed_values({"x": 1}, TrackedExp.track({}))[0].now is ABSENT


def test_a_module_that_changes_nothing_gets_no_configured_key(study, capsys):
    assert cli.run_main(["--exp", "experiment.yaml"]) == 0
    assert not any("CONFIGURED" in record for record in read_log(study / "log.yaml"))
    assert "changed" not in capsys.readouterr().out


SLOW = """
import os, time
def main(exp):
    open(f"started-{exp.Name}", "w").close()
    if exp.Name == "slow":
        time.sleep(30)
    exp.ACC = 1
"""


def _wait_for(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def _interrupt_slow_experiment(workdir, write):
    """Start run.py on a slow experiment and a quick one; press Ctrl-C once the slow one runs."""
    write("mymod.py", SLOW)
    write("experiment.yaml", HEAD + "---\nName: slow\n---\nName: next\n")
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "NO_COLOR": "1"})
    _wait_for(workdir / "started-slow")
    process.send_signal(signal.SIGINT)
    return process


@pytest.mark.timeout(60)
def test_ctrl_c_logs_interrupted_and_goes_on(workdir, write):
    process = _interrupt_slow_experiment(workdir, write)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    log = read_log(workdir / "log.yaml")
    assert [(r["Name"], r["STATUS"]) for r in log] == [("slow", "interrupted"), ("next", "done")]
    assert "press Ctrl-C again within 2 s" in out
    assert "Traceback" not in err


@pytest.mark.timeout(60)
def test_second_ctrl_c_stops_cleanly(workdir, write):
    process = _interrupt_slow_experiment(workdir, write)
    line = ""
    while "press Ctrl-C again" not in line:
        line = process.stdout.readline()
        assert line, "run.py ended before asking"
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert [r["STATUS"] for r in read_log(workdir / "log.yaml")] == ["interrupted"]
    assert not (workdir / "started-next").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("marker", "experiment"),
    [
        pytest.param("importing", "Module: slowmod\nYamlLog: log.yaml\n---\nName: a\n", id="module-import"),
        pytest.param("expanding", "Module: mymod\nYamlLog: log.yaml\n---\nName: a\n"
                     "x: parse open('expanding', 'w').close() or __import__('time').sleep(30)\n", id="expansion"),
    ],
)
def test_ctrl_c_during_start_up_stops_cleanly(workdir, write, marker, experiment):
    write("slowmod.py", "import time\nopen('importing', 'w').close()\ntime.sleep(30)\ndef main(exp):\n    pass\n")
    write("mymod.py", MODULE)
    write("experiment.yaml", experiment)
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "NO_COLOR": "1"})
    _wait_for(workdir / marker)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (130, "", "run.py: stopped\n")
    assert not (workdir / "log.yaml").exists()


@pytest.mark.timeout(60)
def test_ctrl_c_while_python_loads_cool_runner_stops_cleanly(workdir, write):
    # A stand-in for argparse that sleeps makes the import of cool-runner itself slow enough to interrupt.
    write("slow/argparse.py", "import time\nopen('loading', 'w').close()\ntime.sleep(30)\n")
    write("experiment.yaml", HEAD + "---\nName: a\n")
    env = {**__import__("os").environ, "NO_COLOR": "1", "PYTHONPATH": str(workdir / "slow")}
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(workdir / "loading")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (130, "", "run.py: stopped\n")


def test_colour_rules(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(Tty()) is True
    assert wants_colour(__import__("io").StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert wants_colour(Tty()) is False
    assert Console(colour=True).paint("x", "red") == "\033[31mx\033[0m"
    assert Console(colour=False).paint("x", "red") == "x"


def test_console_commands_are_installed():
    names = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    if "cool-run" not in names:
        pytest.skip("the project is not installed (pip install -e .)")
    assert names["cool-run"] == "cool_runner.cli.run:main"
    assert names["cool-collect"] == "cool_runner.cli.collect:main"
    assert names["cool-filter"] == "cool_runner.cli.filter:main"


def test_example_experiment_runs(tmp_path):
    result = subprocess.run([sys.executable, "run.py", "+YamlLog=" + str(tmp_path / "log.yaml"),
                             "+Global.runs_dir=" + str(tmp_path / "runs")], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    records = read_log(tmp_path / "log.yaml")
    assert [r["Name"] for r in records] == ["baseline", "baseline", "half-lr", "noisy"]
    assert records[2]["optimizer"] == {"lr": 0.05, "momentum": 0.9}
    assert all(r["FINAL_LOSS"] < 2 for r in records)
