"""collect: gather the records of every YAML log under some folders into one new file, once each."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..console import Progress
from ..errors import ConfigError, UsageError
from ..files import atomic_write, write_new
from ..yamlio import Loader
from .reader import LOG_SUFFIXES, MARK, read_documents

log = logging.getLogger("cool_runner")

CACHE_NAME = ".cool-collect-cache.json"
PARALLEL_FROM = 64  # below this many files, starting worker processes costs more than it saves


@dataclass
class FileResult:
    """The mapping documents of one file as their own YAML text, their hashes, or why it could not be read."""

    path: str
    docs: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Collection:
    """What a collect found: unique documents in order, per-folder counts, and the files it skipped."""

    documents: list[str] = field(default_factory=list)
    files: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folders: dict[str, int] = field(default_factory=dict)
    cached: int = 0

    @property
    def records(self) -> list[Any]:
        """The documents parsed (the tool itself never needs to: it copies their text)."""
        return [yaml.load(doc, Loader=Loader) for doc in self.documents]


def canonical_hash(record: Any) -> str:
    """Equal records get equal hashes whatever their key order or formatting."""
    try:
        text = json.dumps(record, sort_keys=True, default=repr, separators=(",", ":"))
    except TypeError:  # keys of mixed types (1 and "a") cannot be sorted by json
        text = repr(_canonical(record))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted(((repr(k), _canonical(v)) for k, v in value.items()), key=lambda pair: pair[0])
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def read_log_file(path: str) -> FileResult:
    """Every mapping document of one file, loaded safely; a failure is described, never raised."""
    result = FileResult(path)
    try:
        pairs = read_documents(path, skip_marked=True)
    except ConfigError as exc:
        result.error = str(exc)
        return result
    for doc, body in pairs:
        if isinstance(doc, dict):
            result.docs.append(body)
            result.hashes.append(canonical_hash(doc))
    return result


def _read_chunk(paths: list[str]) -> list[FileResult]:
    return [read_log_file(path) for path in paths]


class Excluder:
    """--exclude patterns: a file or folder name, a glob on the name, or a path (relative or absolute)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.names = [p for p in patterns if os.sep not in p.rstrip(os.sep)]
        self.paths = [os.path.abspath(p) for p in patterns if os.sep in p.rstrip(os.sep)]

    def __call__(self, path: str, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.names):
            return True
        absolute = os.path.abspath(path)
        return any(absolute == p or fnmatch.fnmatchcase(absolute, p) for p in self.paths)


def walk(roots: Sequence[str], exclude: Callable[[str, str], bool], follow_links: bool,
         skip_dirs: Sequence[str] = ()) -> Iterator[tuple[str, list[str]]]:
    """(folder, its log files) in sorted order; each real folder once, so a symlink loop cannot hang it."""
    seen: set[tuple[int, int]] = set()
    skip = {os.path.realpath(d) for d in skip_dirs}

    def visit(folder: str) -> Iterator[tuple[str, list[str]]]:
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("%s: cannot list the folder: %s", folder, exc.strerror)
            return
        key = (st.st_dev, st.st_ino)
        if key in seen or os.path.realpath(folder) in skip:
            return
        seen.add(key)
        files, subfolders = [], []
        for entry in entries:
            if exclude(entry.path, entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.is_symlink() and entry.is_dir():
                    if follow_links:
                        subfolders.append(entry.path)
                elif entry.name.endswith(LOG_SUFFIXES) and entry.is_file():
                    files.append(entry.path)
            except OSError:
                continue
        yield folder, files
        for sub in subfolders:
            yield from visit(sub)

    for root in roots:
        if not os.path.exists(root):
            raise UsageError(f"{root}: no such file or folder", option="PATH")
        if os.path.isfile(root):
            yield os.path.dirname(root) or ".", [root]
        else:
            yield from visit(root)


class Cache:
    """Records of files already read, keyed by path, size and modification time; stored as JSON (safe)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        if path is not None and path.exists():
            try:
                self.entries = json.loads(path.read_text(encoding="utf-8")).get("files", {})
            except (OSError, ValueError):
                log.warning("%s: ignoring a damaged cache", path)

    @staticmethod
    def stamp(path: str) -> list[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def get(self, path: str) -> FileResult | None:
        entry = self.entries.get(os.path.abspath(path))
        try:
            if entry is None or entry["stamp"] != self.stamp(path):
                return None
        except OSError:
            return None
        self.used[os.path.abspath(path)] = entry
        return FileResult(path, entry["docs"], entry["hashes"])

    def put(self, result: FileResult) -> None:
        if result.error is None:
            try:
                self.used[os.path.abspath(result.path)] = {"stamp": self.stamp(result.path),
                                                           "docs": result.docs, "hashes": result.hashes}
            except OSError:
                pass

    def save(self) -> None:
        if self.path is not None:
            atomic_write(self.path, json.dumps({"version": 1, "files": self.used}, separators=(",", ":")))


def collect(roots: Sequence[str], *, exclude: Sequence[str] = (), follow_links: bool = False,
            skip_dirs: Sequence[str] = (), cache: Cache | None = None, jobs: int | None = None,
            progress: Progress | None = None) -> Collection:
    """Read every log under `roots`; records found twice (anywhere) are kept once, in traversal order."""
    folders = list(walk(roots, Excluder(exclude), follow_links, skip_dirs))
    paths = [path for _, files in folders for path in files]
    cache = cache or Cache(None)
    results: dict[str, FileResult] = {}
    todo = []
    for path in paths:
        hit = cache.get(path)
        if hit is not None:
            results[path] = hit
        else:
            todo.append(path)
    if progress is not None:
        progress.total = len(todo)
    for result in _read_all(todo, jobs, progress.advance if progress else None):
        results[result.path] = result
        cache.put(result)
    out = Collection(files=len(paths), cached=len(paths) - len(todo))
    seen: set[str] = set()
    for folder, files in folders:
        count = 0
        for path in files:
            result = results[path]
            if result.error is not None:
                out.skipped.append((path, result.error))
                continue
            for doc, digest in zip(result.docs, result.hashes):
                if digest in seen:
                    out.duplicates += 1
                    continue
                seen.add(digest)
                out.documents.append(doc)
                count += 1
        out.folders[folder] = count
    return out


def _read_all(paths: list[str], jobs: int | None, progress: Callable[[int], None] | None) -> Iterator[FileResult]:
    workers = jobs or os.cpu_count() or 1
    if workers <= 1 or len(paths) < PARALLEL_FROM:
        for path in paths:
            yield read_log_file(path)
            if progress:
                progress(1)
        return
    size = max(16, min(512, len(paths) // (workers * 8)))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk in pool.map(_read_chunk, chunks):
            yield from chunk
            if progress:
                progress(len(chunk))


def write_documents(folder: str | os.PathLike[str], prefix: str, documents: list[str], note: str) -> Path:
    """Write YAML documents (their text) as a new file, marked so that collect never reads it back."""
    return write_new(folder, prefix, ".yaml", f"{MARK}{note}\n" + "".join(f"---\n{doc}" for doc in documents))
