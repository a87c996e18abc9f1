"""What ran, in every record: times, git state (clean, dirty, no repository), argv, versions, file and line."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import read_log

from cool_runner.cli import run_main

# On CI (CI=true) git is installed by .ci/run: a missing git fails there instead of skipping the tests.
needs_git = pytest.mark.skipif(shutil.which("git") is None and not os.environ.get("CI"), reason="git is not installed")

MODULE = """
import numpy
def main(exp):
    exp.ACC = float(numpy.float64(exp.x) / 10)
"""
STUDY = "Module: mymod\nYamlLog: logs/log.yaml\nx: 1\n---\nName: a\n---\nName: b\nx: 2\n"


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=folder,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(workdir, write, monkeypatch):
    """A git repository with the module committed on branch `trunk`."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(workdir.parent))
    write("mymod.py", MODULE)
    write("experiment.yaml", STUDY)
    write(".gitignore", "logs/\n")
    git(workdir, "init", "-q")
    git(workdir, "checkout", "-q", "-b", "trunk")
    git(workdir, "add", "mymod.py", "experiment.yaml", ".gitignore")
    git(workdir, "commit", "-q", "-m", "first")
    return workdir


@needs_git
def test_records_hold_what_ran_in_a_clean_repository(repo):
    assert run_main(["--exp", "experiment.yaml", "--device", "cpu"]) == 0
    first, second = read_log(repo / "logs" / "log.yaml")
    assert first["GIT"] == {"commit": git(repo, "rev-parse", "HEAD"), "branch": "trunk", "dirty": False}
    start, end = datetime.fromisoformat(first["START"]), datetime.fromisoformat(first["END"])
    assert start.tzinfo is not None and end.tzinfo is not None and start <= end
    assert datetime.fromisoformat(second["START"]) >= end
    assert first["ARGV"] == ["--device", "cpu"]
    assert first["PYTHON"] == platform.python_version()
    import numpy
    import yaml

    assert first["PACKAGES"]["numpy"] == numpy.__version__ and first["PACKAGES"]["PyYAML"] == yaml.__version__
    assert first["FILE"] == str((repo / "experiment.yaml").resolve())
    assert (first["LINE"], second["LINE"]) == (5, 7)
    assert list(first)[-2:] == ["TIME_ELAPSED", "STATUS"]
    assert not (repo / "logs" / "log.yaml.diffs").exists()


@needs_git
def test_a_dirty_tree_saves_its_diff_beside_the_log_once(repo):
    (repo / "mymod.py").write_text(MODULE + "# an uncommitted change\n")
    assert run_main(["--exp", "experiment.yaml"]) == 0
    first, second = read_log(repo / "logs" / "log.yaml")
    assert first["GIT"]["dirty"] is True and first["GIT"]["commit"] == git(repo, "rev-parse", "HEAD")
    diff = first["GIT"]["diff"]
    assert diff == second["GIT"]["diff"] and diff.startswith("logs/log.yaml.diffs/")
    assert [p.name for p in (repo / "logs" / "log.yaml.diffs").iterdir()] == [Path(diff).name]
    text = (repo / diff).read_text()
    assert "+# an uncommitted change" in text and "mymod.py" in text


@needs_git
def test_untracked_files_do_not_make_the_tree_dirty(repo):
    (repo / "notes.txt").write_text("scratch")
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert read_log(repo / "logs" / "log.yaml")[0]["GIT"]["dirty"] is False


def test_outside_any_repository_git_is_null(workdir, write, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(workdir.parent))
    write("mymod.py", MODULE)
    write("experiment.yaml", STUDY)
    assert run_main(["--exp", "experiment.yaml"]) == 0
    record = read_log(workdir / "logs" / "log.yaml")[0]
    assert record["GIT"] is None and record["PYTHON"] == platform.python_version() and record["START"]


def test_metadata_can_be_turned_off(workdir, write):
    write("mymod.py", MODULE)
    write("experiment.yaml", "Global: {metadata: false}\n" + STUDY)
    assert run_main(["--exp", "experiment.yaml"]) == 0
    record = read_log(workdir / "logs" / "log.yaml")[0]
    assert not {"START", "END", "GIT", "ARGV", "PYTHON", "PACKAGES", "FILE", "LINE"} & set(record)
    assert record["ACC"] == 0.1 and record["STATUS"] == "done"


def test_a_key_the_module_sets_itself_wins(workdir, write):
    write("mymod.py", "def main(exp):\n    exp.START = 'epoch 3'\n")
    write("experiment.yaml", STUDY)
    assert run_main(["--exp", "experiment.yaml"]) == 0
    assert read_log(workdir / "logs" / "log.yaml")[0]["START"] == "epoch 3"


def test_bad_metadata_setting(workdir, write, capsys):
    write("experiment.yaml", "Global: {metadata: sometimes}\n" + STUDY)
    assert run_main(["--exp", "experiment.yaml"]) == 2
    assert "experiment.yaml:1: Global.metadata: must be true or false, not 'sometimes' (a string)" in capsys.readouterr().err


@needs_git
@pytest.mark.parametrize("mode", [["--in-process"], ["--isolate"], ["--workers", "2"]], ids=lambda m: m[-1])
def test_every_way_of_running_writes_the_same_metadata(repo, mode):
    assert run_main(["--exp", "experiment.yaml", *mode, "--flag"]) == 0
    for record in read_log(repo / "logs" / "log.yaml"):
        assert record["GIT"]["commit"] == git(repo, "rev-parse", "HEAD") and record["GIT"]["dirty"] is False
        assert record["ARGV"] == ["--flag"] and record["PACKAGES"]["numpy"]
        assert record["FILE"] == str((repo / "experiment.yaml").resolve()) and record["LINE"] in (5, 7)
        assert datetime.fromisoformat(record["START"]) <= datetime.fromisoformat(record["END"])


@needs_git
def test_a_crashed_worker_still_gets_a_record_with_metadata(repo, write):
    write("mymod.py", MODULE + "    if exp.x == 2:\n        import os\n        os._exit(3)\n")
    git(repo, "commit", "-q", "-am", "crash on b")
    assert run_main(["--exp", "experiment.yaml"]) == 1
    good, crashed = read_log(repo / "logs" / "log.yaml")
    assert crashed["STATUS"] == "failed" and crashed["GIT"] == good["GIT"]
    assert crashed["PACKAGES"] == good["PACKAGES"] and crashed["LINE"] == 7
    assert datetime.fromisoformat(crashed["START"]) <= datetime.fromisoformat(crashed["END"])
    keys = list(crashed)
    assert keys.index("LINE") < keys.index("OUTPUT") < keys.index("TIME_ELAPSED") < keys.index("STATUS")
