"""collect: gather the run records of every YAML log under some folders into one new file, once each."""

from __future__ import annotations

import errno
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
from .reader import LOG_SUFFIXES, MARK, Stamp, is_run_record, parse_documents, read_bytes, stamp_of

log = logging.getLogger("cool_runner")

CACHE_NAME = ".cool-collect-cache.json"
CACHE_VERSION = 2
PARALLEL_FROM = 64  # below this many files, starting worker processes costs more than it saves


@dataclass
class FileResult:
    """The mapping documents of one file as their own YAML text, their hashes, or why it could not be read.

    `records` tells which documents are run records; `stamp` is set when the file did not change while it was
    read, so that only such a result is cached.
    """

    path: str
    docs: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    records: list[bool] = field(default_factory=list)
    stamp: Stamp | None = None
    error: str | None = None


@dataclass
class Collection:
    """What a collect found: unique documents in order, per-folder counts, and the files it skipped.

    `passed_over` counts the distinct mappings left out because they are not run records (see `all_mappings`).
    """

    documents: list[str] = field(default_factory=list)
    files: int = 0
    duplicates: int = 0
    passed_over: int = 0
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
        data, result.stamp = read_bytes(path)
        pairs = parse_documents(data, path, skip_marked=True)
    except ConfigError as exc:
        result.error = str(exc)
        return result
    for doc, body in pairs:
        if isinstance(doc, dict):
            result.docs.append(body)
            result.hashes.append(canonical_hash(doc))
            result.records.append(is_run_record(doc))
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


@dataclass
class Folder:
    """One folder of the walk: its log files, and the log-named entries that cannot be read (path, why)."""

    path: str
    files: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)


def _link_problem(path: str, exc: OSError) -> str:
    try:
        target = f" {os.readlink(path)}"
    except OSError:
        target = ""
    if exc.errno == errno.ELOOP:
        return f"symlink loop: it points to{target}, which leads back to itself"
    if exc.errno == errno.ENOENT:
        return f"broken symlink: its target{target} does not exist"
    return f"symlink to{target} cannot be followed: {exc.strerror or exc}"


def walk(roots: Sequence[str], exclude: Callable[[str, str], bool], follow_links: bool,
         skip_dirs: Sequence[str] = ()) -> Iterator[Folder]:
    """Folders with their log files, in sorted order; each real folder once, so a symlink loop cannot hang it."""
    seen: set[tuple[int, int]] = set()
    skip = {os.path.realpath(d) for d in skip_dirs}

    def visit(folder: str) -> Iterator[Folder]:
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
        here, subfolders = Folder(folder, []), []
        for entry in entries:
            if exclude(entry.path, entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                    continue
                if entry.is_symlink():
                    try:
                        os.stat(entry.path)
                    except OSError as exc:  # a broken or looping link: say so if it looks like a log
                        if entry.name.endswith(LOG_SUFFIXES):
                            here.problems.append((entry.path, _link_problem(entry.path, exc)))
                        continue
                    if entry.is_dir():
                        if follow_links:
                            subfolders.append(entry.path)
                        continue
                if entry.name.endswith(LOG_SUFFIXES) and entry.is_file():
                    here.files.append(entry.path)
            except OSError:
                continue
        yield here
        for sub in subfolders:
            yield from visit(sub)

    for root in roots:
        if not os.path.exists(root):
            what = "broken symlink" if os.path.islink(root) else "no such file or folder"
            raise UsageError(f"{root}: {what}", option="PATH")
        if os.path.isfile(root):
            yield Folder(os.path.dirname(root) or ".", [root])
        else:
            yield from visit(root)


class Cache:
    """Documents of files already read, keyed by path, size, modification time and inode; stored as JSON (safe).

    Only a file that did not change while it was read is cached (see `read_bytes`), so a log that grows during a
    collect is read again next time.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        if path is not None and path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("%s: ignoring a damaged cache", path)
            else:  # a cache of another version is simply rebuilt
                if isinstance(saved, dict) and saved.get("version") == CACHE_VERSION:
                    self.entries = saved.get("files", {})

    def get(self, path: str) -> FileResult | None:
        entry = self.entries.get(os.path.abspath(path))
        try:
            if entry is None or tuple(entry["stamp"]) != stamp_of(os.stat(path)):
                return None
            result = FileResult(path, entry["docs"], entry["hashes"], entry["records"], tuple(entry["stamp"]))
        except (OSError, KeyError, TypeError):
            return None
        self.used[os.path.abspath(path)] = entry
        return result

    def put(self, result: FileResult) -> None:
        if result.error is None and result.stamp is not None:
            self.used[os.path.abspath(result.path)] = {"stamp": list(result.stamp), "docs": result.docs,
                                                       "hashes": result.hashes, "records": result.records}

    def save(self) -> None:
        if self.path is not None:
            atomic_write(self.path, json.dumps({"version": CACHE_VERSION, "files": self.used},
                                               separators=(",", ":")))


def collect(roots: Sequence[str], *, exclude: Sequence[str] = (), follow_links: bool = False,
            skip_dirs: Sequence[str] = (), cache: Cache | None = None, jobs: int | None = None,
            progress: Progress | None = None, all_mappings: bool = False) -> Collection:
    """Read every log under `roots`; records found twice (anywhere) are kept once, in traversal order.

    Only run records (mappings with STATUS or TIME_ELAPSED) are taken unless `all_mappings` is set, so that
    experiment files, queue files and rejected documents lying in the tree are passed over (and counted).
    """
    folders = list(walk(roots, Excluder(exclude), follow_links, skip_dirs))
    paths = [path for folder in folders for path in folder.files]
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
    passed: set[str] = set()
    for folder in folders:
        out.skipped.extend(folder.problems)
        count = 0
        for path in folder.files:
            result = results[path]
            if result.error is not None:
                out.skipped.append((path, result.error))
                continue
            for doc, digest, is_record in zip(result.docs, result.hashes, result.records):
                if not (is_record or all_mappings):
                    passed.add(digest)
                    continue
                if digest in seen:
                    out.duplicates += 1
                    continue
                seen.add(digest)
                out.documents.append(doc)
                count += 1
        out.folders[folder.path] = count
    out.passed_over = len(passed)
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
