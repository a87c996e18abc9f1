"""Shared helpers: write experiment files and user modules, run the CLI in-process or as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def write(tmp_path):
    """write(name, text): a dedented file under tmp_path; returns its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run with tmp_path as the current folder, and forget modules a test wrote there."""
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def read_log(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def run_script(script: str, *args: str, cwd: Path, env: dict | None = None, timeout: float = 60,
               **kwargs) -> subprocess.CompletedProcess:
    """Run one of the top-level scripts as a real process."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("COOL_RUNNER_DEBUG", None) if "COOL_RUNNER_DEBUG" not in (env or {}) else None
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


RECORDER = """
import json, os
def main(exp):
    with open(os.environ.get("RECORD", "record.jsonl"), "a") as handle:
        handle.write(json.dumps({"Name": exp.get("Name"), "REP": exp.REP, "pid": os.getpid()}) + "\\n")
    exp.RESULT = exp.get("x", 0) * 2
"""


@pytest.fixture(autouse=True)
def _reset_logger():
    """The CLI configures the cool_runner logger; give every test a fresh one that caplog can see."""
    import logging

    logger = logging.getLogger("cool_runner")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]
