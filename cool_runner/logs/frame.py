"""Logs as a pandas DataFrame, one row per record."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Union

from ..extras import import_optional
from .collect import walk
from .formats import columns_of, flatten
from .reader import is_run_record, read_documents

if TYPE_CHECKING:
    import pandas

PathLike = Union[str, "os.PathLike[str]"]


def load_logs(paths: PathLike | Iterable[PathLike], flatten: bool = True) -> pandas.DataFrame:
    """Every record of these logs (files, or folders searched for .yaml/.yml logs) as a DataFrame.

    With `flatten`, nested mappings become `optimizer.lr` columns; lists stay Python lists in one cell, and a
    key a record does not have is missing (NaN) in its row. Columns come in the order keys first appear.
    """
    pd = import_optional("pandas", feature="load_logs", package="pandas", extra="pandas")
    records = list(iter_records(paths))
    rows = [_flat(record) for record in records] if flatten else records
    return pd.DataFrame.from_records(rows, columns=columns_of(rows))


_flat = flatten  # the parameter `flatten` hides the function inside load_logs


def iter_records(paths: PathLike | Iterable[PathLike]) -> Iterator[dict[str, Any]]:
    """The mapping documents of the given log files, and the run records of the logs under the given folders."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        name = os.fspath(path)
        if os.path.isdir(name):
            # As collect does: only run records, and not from the files the tools wrote (their copies).
            for folder in walk([name], lambda _path, _name: False, follow_links=False):
                for file in folder.files:
                    yield from (doc for doc, _ in read_documents(file, skip_marked=True) if is_run_record(doc))
        else:
            yield from _mappings(read_documents(name))


def _mappings(documents: list[tuple[Any, str]]) -> Iterator[dict[str, Any]]:
    return (doc for doc, _text in documents if isinstance(doc, dict))
