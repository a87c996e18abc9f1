"""What makes two runs the same experiment: the definition as written, its copy, and its global repetition.

`IDENTITY` is a short hash of the merged definition before parsing (default config and `+overrides`
included, a `Grid` point's values set), without the keys that only say how many copies to make, when to run,
or that the runner makes up (`Repeat`, `Grid`, `After`, `Timeout`, `Desc`, `INDEX`, `RND_IDX`, `HOST`, ...),
together with `REP`, `GLOBAL_REP` and how many
identical definitions came before it in the file. Raising `Repeat`, `Global.repeat` or a Grid list, or adding
experiments, leaves the identity of the experiments already there unchanged, so `--skip-done` can tell them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

IDENTITY = "IDENTITY"
#: Keys left out of the identity: they choose copies, the runner sets them, or they only say when and how long
#: to run (After, Timeout) or describe the study (Desc).
IGNORED = frozenset({"Repeat", "Grid", "After", "Timeout", "Desc", "INDEX", "REP", "GLOBAL_REP", "RND_IDX", "HOST",
                     "GRID", IDENTITY})


def _canonical(value: Any) -> Any:
    """Plain data with mapping keys as sorted strings, for mappings whose keys are not all of one type."""
    if isinstance(value, Mapping):
        return sorted((repr(key), _canonical(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def digest(merged: Mapping[str, Any]) -> str:
    """A hash of a merged definition as written, key order and copy-making keys left out."""
    data = {key: value for key, value in merged.items() if key not in IGNORED}
    try:
        text = json.dumps(data, sort_keys=True, default=repr, ensure_ascii=False, separators=(",", ":"))
    except TypeError:  # keys of mixed types cannot be sorted by json
        text = json.dumps(_canonical(data), default=repr, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def identity(definition: str, occurrence: int, rep: Any, global_rep: Any) -> str:
    """The IDENTITY of one experiment: its definition's digest, which identical definition, REP and GLOBAL_REP."""
    text = f"{definition}/{occurrence}/{rep!r}/{global_rep!r}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
