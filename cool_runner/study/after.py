"""What an experiment depends on: the earlier experiments its `parse` values read through `E`, and `After`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..keys import SKIP

AFTER_HINT = "After lists earlier experiments by index (as --dry numbers them) or by Name, e.g. After: [0, dense]"


def _runs(item: Mapping[str, Any]) -> bool:
    """Experiments with `Name: skip` never run, so nothing can wait for them."""
    return item.get("Name") != SKIP and isinstance(item.get("INDEX"), int)


def dependencies(values: Mapping[str, Any], index: int, read: Sequence[Mapping[str, Any]],
                 earlier: Sequence[Mapping[str, Any]], *, file: str | None = None,
                 line: int | None = None) -> list[int] | None:
    """The indices an experiment waits for, sorted; None when it has neither dependencies nor an `After`.

    `read` are the experiments its expressions read through `E`; `earlier` every experiment of `E`. `After`
    adds indices or Names to what was read; `After: []` drops what was read.
    """
    inferred = {item["INDEX"] for item in read if _runs(item)}
    if "After" not in values or values["After"] is None:
        return sorted(inferred) or None
    given = values["After"]
    entries = list(given) if isinstance(given, (list, tuple)) else [given]
    if not entries:
        return []

    def error(what: str) -> ConfigError:
        return ConfigError(what, file=file, line=line, experiment=index, name=values.get("Name"), key=("After",),
                           hint=AFTER_HINT)

    found = set(inferred)
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (int, str)):
            raise error(f"{entry!r} is neither an experiment index nor a Name")
        if isinstance(entry, int):
            if not 0 <= entry < index:
                raise error(f"{entry} is not an earlier experiment (this one is {index})")
            named = [item for item in earlier if item.get("INDEX") == entry]
            if not named or _runs(named[-1]):
                found.add(entry)
            continue
        matches = [item for item in earlier if item.get("Name") == entry]
        if not matches:
            raise error(f"no earlier experiment is named {entry!r}")
        found.update(item["INDEX"] for item in matches if _runs(item))
    return sorted(found)
