"""Finding and importing the user's experiment modules."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from ..errors import ModuleLoadError, describe, message_of, user_traceback


def search_paths(experiment_file: str | None) -> list[str]:
    """Folders a Module is imported from: the current one, the experiment file's, and the project root."""
    paths = [os.getcwd()]
    if experiment_file:
        paths.append(str(Path(experiment_file).resolve().parent))
    root = Path(__file__).resolve().parents[2]
    if (root / "modules").is_dir():
        paths.append(str(root))
    unique: list[str] = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


@contextmanager
def importable(paths: Iterable[str]) -> Iterator[None]:
    """Put `paths` at the front of sys.path for the duration."""
    added = [p for p in paths if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for path in added:
            try:
                sys.path.remove(path)
            except ValueError:
                pass


def _not_found(name: str, exc: ModuleNotFoundError) -> bool:
    """True when the missing module is `name` itself or one of its parents, not something it imports."""
    missing = exc.name or ""
    return name == missing or name.startswith(missing + ".")


def find_module(name: str) -> None:
    """Check that a module exists without running it (for --dry)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError as exc:
        if _not_found(name, exc):
            spec = None
        else:
            raise ModuleLoadError(name, f"a parent package failed to import: {exc}") from exc
    except Exception as exc:
        raise ModuleLoadError(name, f"raised while importing its package: {describe(exc)}",
                              details=user_traceback(exc)) from exc
    if spec is None:
        raise ModuleLoadError(name, "module not found",
                              hint="Module is a dotted import path such as modules.example, relative to the "
                                   "current folder or the experiment file's folder")


def load_module(name: str) -> Callable[[Any], Any]:
    """Import a module and return its main function."""
    try:
        module: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if _not_found(name, exc):
            raise ModuleLoadError(name, "module not found",
                                  hint="Module is a dotted import path such as modules.example, relative to the "
                                       "current folder or the experiment file's folder") from exc
        raise ModuleLoadError(name, f"raised while importing: {message_of(exc)}", details=user_traceback(exc),
                              hint=f"install {exc.name!r} or fix the import") from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModuleLoadError(name, f"raised while importing: {describe(exc)}", details=user_traceback(exc)) from exc
    main = getattr(module, "main", None)
    if not callable(main):
        raise ModuleLoadError(name, f"has no main(exp) function ({module.__file__})",
                              hint="define def main(exp): ... in the module")
    return main
