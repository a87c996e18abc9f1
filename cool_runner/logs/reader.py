"""Reading log files: every YAML document with its own text, through the safe loader."""

from __future__ import annotations

import os
from typing import Any

import yaml

from ..errors import ConfigError
from ..yamlio import load_with_text, yaml_error

LOG_SUFFIXES = (".yaml", ".yml")
#: The first line of every file the tools write; collect never gathers such a file again.
MARK = "# written by cool-runner "


def read_documents(path: str | os.PathLike[str], *, skip_marked: bool = False) -> list[tuple[Any, str]]:
    """Every document of a log with its source text; problems are ConfigErrors that name the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=name, hint="give the path of a .yaml log") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name) from exc
    if skip_marked and data.startswith(MARK.encode()):
        return []
    try:
        return load_with_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", file=name) from exc
    except yaml.YAMLError as exc:
        raise yaml_error(exc, name) from exc
