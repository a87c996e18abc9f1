"""Loading an experiment file: the default config, `Global` settings, `+key=value` overrides, definitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, LimitError, UsageError
from ..files import write_problem
from ..keys import format_key
from ..limits import DEPTH_HINT, MAX_DEPTH, ValueProblem, check_value
from ..yamlio import LineDict, load_located, load_scalar

GLOBAL_KEYS = {"repeat": 1, "queue": None, "slack": False, "slack_config": {}, "workers": None, "gpus": None,
               "per_gpu": None, "isolate": False, "runs_dir": "runs", "launcher": "local", "slurm": None,
               "metadata": True}
LAUNCHERS = ("local", "slurm")


@dataclass
class StudyFile:
    """A loaded experiment file: the default config, the Global settings and the definitions."""

    path: str
    defaults: dict[str, Any]
    settings: dict[str, Any]
    definitions: list[Mapping[str, Any]]


def apply_override(defaults: dict[str, Any], argument: str) -> None:
    """Apply one `+key.path=value` argument to the default config; the value is read as YAML."""
    body = argument[1:]
    key, sep, text = body.partition("=")
    if not sep or not key.strip() or any(not part for part in key.split(".")):
        raise UsageError(f"cannot read {argument!r}", option=argument, hint="write +key.path=value, e.g. +lr=0.1")
    parts = key.split(".")
    if len(parts) >= MAX_DEPTH:
        raise UsageError(f"the key path has {len(parts)} parts", option=argument, hint=DEPTH_HINT)
    try:
        value = load_scalar(text)
        check_value(value, depth=len(parts))
    except LimitError as exc:
        raise UsageError(exc.what, option=argument, hint=exc.hint) from exc
    except ValueProblem as exc:
        raise UsageError(exc.what, option=argument, hint=DEPTH_HINT) from exc
    except ConfigError as exc:
        raise UsageError(f"the value is not valid YAML: {exc.what}", option=argument,
                         hint="quote the whole argument in the shell, e.g. '+layers=[1, 2]'") from exc
    node = defaults
    for depth, part in enumerate(parts[:-1], start=1):
        child = node.get(part)
        if child is None:  # a new key, or one left empty: the path creates it
            child = LineDict()
            node[part] = child
        elif not isinstance(child, dict):
            # Replacing a configured value by a mapping would silently change what the experiments receive.
            path = format_key(parts[:depth])
            raise UsageError(f"{path} holds {_describe(child)}, not a mapping, so it has no key {parts[depth]!r}",
                             option=argument, hint=f"to replace the value, write +{path}=...")
        node = child
    node[parts[-1]] = value


def _describe(value: Any) -> str:
    """`50 (a number)`, for messages about a value."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, (int, float)):
        kind = "a number"
    else:
        kind = {str: "a string", list: "a list"}.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({kind})"


def load_study(path: str, overrides: Sequence[str] = ()) -> StudyFile:
    """Read an experiment file and apply `+key=value` overrides to its default config."""
    docs = load_located(path)
    if not docs or docs[0] is None:
        raise ConfigError("the file is empty", file=path,
                          hint="the first document is the default config; experiments follow after '---'")
    for number, doc in enumerate(docs):
        if not isinstance(doc, dict):
            what = "the default config" if number == 0 else f"document {number + 1}"
            raise ConfigError(f"{what} is a {type(doc).__name__}, not a mapping of keys to values", file=path,
                              line=getattr(doc, "line", None), hint="write key: value lines")
    defaults = docs[0]
    for argument in overrides:
        apply_override(defaults, argument)
    settings = read_settings(defaults.pop("Global", None) or {}, path, defaults)
    for number, doc in enumerate(docs[1:], start=1):
        if "Global" in doc:
            raise ConfigError("Global belongs in the default config only", file=path, line=doc.lines.get("Global"),
                              key=("Global",), hint=f"move it to the first document (found in document {number + 1})")
    return StudyFile(path=path, defaults=defaults, settings=settings, definitions=docs[1:])


def read_settings(raw: Any, path: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Check the Global mapping and fill in its defaults."""
    line = getattr(defaults, "lines", {}).get("Global")
    if not isinstance(raw, dict):
        raise ConfigError("Global must be a mapping", file=path, line=line, key=("Global",))
    unknown = sorted(set(raw) - set(GLOBAL_KEYS), key=str)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}", file=path, line=getattr(raw, "lines", {}).get(unknown[0]),
                          key=("Global", unknown[0]), hint="Global knows " + ", ".join(GLOBAL_KEYS))
    settings = {**GLOBAL_KEYS, **raw}
    lines = getattr(raw, "lines", {})
    repeat = settings["repeat"]
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat must be a whole number of at least 1, not {repeat!r}", file=path,
                          line=lines.get("repeat"), key=("Global", "repeat"))
    queue = settings["queue"]
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ConfigError(f"must be a file path or null, not {_describe(queue)}", file=path,
                          key=("Global", "queue"), line=lines.get("queue"),
                          hint="e.g. queue: queue.yaml; null keeps the experiments in memory")
    problem = write_problem(queue) if queue else None
    if problem:
        raise ConfigError(f"{queue} {problem}", file=path, key=("Global", "queue"), line=lines.get("queue"),
                          hint="give the path of a file in a folder you can write to")
    if settings["slack"] is None:
        settings["slack"] = False
    for key in ("slack", "metadata"):
        if not isinstance(settings[key], bool):
            # Anything but a real boolean (`maybe`, "false", 1) is almost surely a slip: never guess what it means.
            raise ConfigError(f"must be true or false, not {_describe(settings[key])}", file=path,
                              key=("Global", key), line=lines.get(key), hint="write true or false, without quotes")
    if settings["slack_config"] is None:
        settings["slack_config"] = {}
    if not isinstance(settings["slack_config"], dict):
        raise ConfigError(f"must be a mapping, not {_describe(settings['slack_config'])}", file=path,
                          key=("Global", "slack_config"), line=lines.get("slack_config"),
                          hint="e.g. slack_config: {channel_short: experiments}")
    _check_engine(settings, raw, path)
    if settings["launcher"] not in LAUNCHERS:
        raise ConfigError(f"launcher must be one of {', '.join(LAUNCHERS)}, not {settings['launcher']!r}", file=path,
                          key=("Global", "launcher"), line=getattr(raw, "lines", {}).get("launcher"))
    return settings


def _check_engine(settings: dict[str, Any], raw: Mapping[str, Any], path: str) -> None:
    """The settings of the execution engine: slots, GPUs, isolation and the output folder."""

    def error(key: str, what: str, hint: str) -> ConfigError:
        return ConfigError(what, file=path, line=getattr(raw, "lines", {}).get(key), key=("Global", key), hint=hint)

    for key in ("workers", "per_gpu"):
        value = settings[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise error(key, f"{key} must be a whole number of at least 1, not {value!r}", f"e.g. {key}: 2")
    gpus = settings["gpus"]
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, (int, str, list))):
        raise error("gpus", f"gpus must be a list of GPU ids or 'all', not {gpus!r}", "e.g. gpus: [0, 1] or gpus: all")
    if not isinstance(settings["isolate"], bool):
        raise error("isolate", f"isolate must be true or false, not {settings['isolate']!r}", "e.g. isolate: true")
    if not isinstance(settings["runs_dir"], str) or not settings["runs_dir"].strip():
        raise error("runs_dir", f"runs_dir must be a folder path, not {settings['runs_dir']!r}", "e.g. runs_dir: runs")


def require_experiments(study: StudyFile) -> None:
    """A file that is run must define at least one experiment after its default config."""
    if not study.definitions:
        raise ConfigError("the file holds only the default config, so there is no experiment to run", file=study.path,
                          hint="add experiments after it, each starting with a line '---'; to run the defaults as they "
                               "are, add the two lines '---' and 'Name: baseline'")
