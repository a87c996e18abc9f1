"""cool-runner: define a study of experiments in one YAML file, run it, and query the logs.

The names below are imported on first use, so that `import cool_runner` (and every command) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_HOMES = {
    "ConfigError": "errors",
    "CoolRunnerError": "errors",
    "ExpressionError": "errors",
    "Interrupted": "errors",
    "LimitError": "errors",
    "MissingPackage": "errors",
    "ModuleLoadError": "errors",
    "QueueError": "errors",
    "OutputError": "errors",
    "UsageError": "errors",
    "Status": "keys",
    "Console": "console",
    "Exp": "study.mapping",
    "FrozenView": "study.mapping",
    "History": "study.mapping",
    "TrackedExp": "study.mapping",
    "CycleError": "errors",
    "StudyFile": "study.load",
    "load_study": "study.load",
    "Expander": "study.expand",
    "Experiment": "study.expand",
    "merge": "study.expand",
    "Engine": "run.engine",
    "SlotSpec": "run.gpus",
    "Listener": "run.runner",
    "MemorySource": "run.runner",
    "Outcome": "run.runner",
    "Runner": "run.runner",
    "Summary": "run.runner",
    "RunOptions": "run.session",
    "add_to_queue": "run.session",
    "resume_queue": "run.session",
    "retry_study": "run.session",
    "run_study": "run.session",
    "FileQueue": "queue.filequeue",
    "Cache": "logs.collect",
    "collect": "logs.collect",
    "Query": "logs.query",
    "aggregate": "logs.query",
    "load_records": "logs.query",
    "write_output": "files",
    "load_logs": "logs.frame",
    "figure_bytes": "logs.plot",
    "make_figure": "logs.plot",
    "html_report": "logs.report",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'cool_runner' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
