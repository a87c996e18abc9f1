"""Optional dependencies: import one, or explain which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingPackage


def import_optional(module: str, *, feature: str, package: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingPackage naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackage(feature, package, extra) from exc
