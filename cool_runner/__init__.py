"""cool-runner: define a study of experiments in one YAML file, run it, and query the logs."""

from __future__ import annotations

from .errors import (
    ConfigError,
    CoolRunnerError,
    ExpressionError,
    Interrupted,
    ModuleLoadError,
    QueueError,
    UsageError,
)
from .expand import Expander, Experiment, StudyFile, load_study, merge
from .mapping import Exp, FrozenView, History, TrackedExp
from .runner import Listener, MemorySource, Outcome, Runner, Summary

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CoolRunnerError",
    "Exp",
    "Expander",
    "Experiment",
    "ExpressionError",
    "FrozenView",
    "History",
    "Interrupted",
    "Listener",
    "MemorySource",
    "ModuleLoadError",
    "Outcome",
    "QueueError",
    "Runner",
    "StudyFile",
    "Summary",
    "TrackedExp",
    "UsageError",
    "load_study",
    "merge",
]
