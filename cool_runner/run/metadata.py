"""What ran, for every record: start and end times, the module's git state, arguments, Python and packages.

Everything that cannot change during a run is looked up once and kept: the git state of a repository (the
code that runs is what was imported at the start), package versions (looked up again only when new modules
were imported), the Python version. That lookup runs in the background while the first experiment runs; per
experiment only the clock is read, so the cost is a few microseconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import logging
import os
import platform
import site
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..files import atomic_write
from ..keys import RESULT_KEYS
from .importing import importable

log = logging.getLogger("cool_runner")
GIT_TIMEOUT = 10.0
OWN: Any = object()  # `Metadata.fields`: the packages loaded in this process


def now() -> str:
    """The time as ISO 8601 with the local time zone, e.g. `2026-11-29T21:04:05.123+01:00`."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _git(folder: str, *args: str) -> str | None:
    """The output of a git command in `folder`, or None when it fails (no git, not a repository, no commit)."""
    try:
        done = subprocess.run(["git", "-C", folder, *args], capture_output=True, timeout=GIT_TIMEOUT,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


class GitState:
    """The state of one repository: commit, branch, and the diff of tracked files when the tree is dirty."""

    def __init__(self, top: str, commit: str | None, branch: str | None) -> None:
        self.top = top
        self.commit = commit
        self.branch = branch
        if commit:  # one call: an empty diff is a clean tree (untracked files do not count)
            self.diff = _git(top, "diff", "HEAD", "--binary") or None
        else:  # no commit yet: everything tracked is a change
            self.diff = _git(top, "diff", "--cached", "--binary") or None
        self.dirty = self.diff is not None
        self.saved: dict[str, str] = {}  # folder -> diff file written there

    @classmethod
    def of(cls, folder: str) -> GitState | None:
        """The state of the repository holding `folder`, or None outside any repository."""
        found = _git(folder, "rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD")
        if found is not None:
            top, commit, branch = [*found.splitlines(), "", "", ""][:3]
            return cls(top, commit or None, None if branch in ("", "HEAD") else branch)
        top = (_git(folder, "rev-parse", "--show-toplevel") or "").strip()  # a repository without a commit?
        return cls(top, None, None) if top else None

    def describe(self, beside: str) -> dict[str, Any]:
        """`{commit, branch, dirty, diff}`; the diff is saved once per run in `<beside>.diffs/`."""
        info: dict[str, Any] = {"commit": self.commit, "branch": self.branch, "dirty": self.dirty}
        if self.diff:
            info["diff"] = self.save(beside)
        return info

    def save(self, beside: str) -> str | None:
        folder = f"{beside}.diffs"
        if folder not in self.saved:
            digest = hashlib.sha1(self.diff.encode("utf-8", "replace")).hexdigest()[:12]  # type: ignore[union-attr]
            path = os.path.join(folder, f"{(self.commit or 'nocommit')[:12]}-{digest}.diff")
            try:
                if not os.path.exists(path):  # named by content: an existing file already holds this diff
                    atomic_write(path, self.diff or "")
            except OSError as exc:
                log.warning("%s: cannot save the git diff: %s", path, exc.strerror)
                path = None  # type: ignore[assignment]
            self.saved[folder] = path  # type: ignore[assignment]
        return self.saved[folder]


class Packages:
    """Versions of the installed distributions whose modules are loaded, from `sys.modules`."""

    def __init__(self) -> None:
        self.seen = -1
        self.versions: dict[str, str] = {}
        self.by_name: dict[str, tuple[str, str] | None] = {}  # import name -> (distribution, version)
        self.top_level: dict[str, metadata.Distribution] | None = None
        roots = {*site.getsitepackages(), site.getusersitepackages(), *sysconfig.get_paths().values()}
        self.roots = tuple(os.path.join(os.path.realpath(path), "") for path in roots
                           if path and ("site-packages" in path or "dist-packages" in path))
        self.elsewhere: set[str] = set()  # top-level modules that are not installed packages

    def current(self) -> dict[str, str]:
        if len(sys.modules) != self.seen:  # new imports since last time: look again
            self.seen = len(sys.modules)
            found = {}
            for name in self._installed():
                dist = self._distribution(name)
                if dist is not None:
                    found[dist[0]] = dist[1]
            self.versions = dict(sorted(found.items(), key=lambda item: item[0].lower()))
        return self.versions

    def _installed(self) -> list[str]:
        """Top-level modules loaded from an installed package (not the standard library, not the user's files)."""
        names = []
        for name, module in list(sys.modules.items()):
            if "." in name or name in self.elsewhere:
                continue
            file = getattr(module, "__file__", None)
            if file and os.path.realpath(file).startswith(self.roots):
                names.append(name)
            else:
                self.elsewhere.add(name)
        return names

    def _distribution(self, name: str) -> tuple[str, str] | None:
        if name not in self.by_name:
            try:
                found: metadata.Distribution | None = metadata.distribution(name)
            except (metadata.PackageNotFoundError, ValueError):  # the import name is not the distribution's
                found = self._top_level().get(name)
            self.by_name[name] = (found.metadata["Name"] or name, found.version) if found is not None else None
        return self.by_name[name]

    def _top_level(self) -> dict[str, metadata.Distribution]:
        """The distributions by the import names they declare (top_level.txt), read once; only the few that
        match are parsed further (parsing every distribution's metadata takes a large part of a second)."""
        if self.top_level is None:
            self.top_level = {}
            for dist in metadata.distributions():
                for line in (dist.read_text("top_level.txt") or "").split():
                    self.top_level.setdefault(line.strip(), dist)
        return self.top_level


class Metadata:
    """The metadata of a run's records; one instance per run, in run.py.

    With the in-process runner, `fields` gives all of it. With worker processes, the worker adds what only it
    knows (START and END around the module's run, the PACKAGES it has loaded: see `worker_fields`) and run.py
    completes every record with the rest (`complete`), also the records it writes itself for a crash, a
    timeout or a skipped experiment.
    """

    def __init__(self, paths: Sequence[str] = (), argv: Sequence[str] | None = None) -> None:
        self.paths = list(paths)  # where modules are found, for one that this process has not imported
        self.argv = None if argv is None else list(argv)  # None: what this process's sys.argv holds
        self.python = platform.python_version()
        self.repositories: dict[str, GitState | None] = {}  # module -> its repository's state
        self.packages = Packages()
        self.seen_packages: dict[str, dict[str, str]] = {}  # module -> the PACKAGES a worker last reported
        self.files: dict[str, str] = {}
        self.lookup: threading.Thread | None = None

    def prefetch(self, modules: Iterable[str], packages: bool = True) -> None:
        """Look up the git state (and package versions) in the background, while the first experiment runs."""
        names = list(modules)

        def look() -> None:
            try:
                for name in names:
                    self.git(name)
                if packages:
                    self.packages.current()
            except Exception:  # metadata must never stop an experiment; the lookup happens again when needed
                log.debug("metadata lookup failed", exc_info=True)

        self.lookup = threading.Thread(target=look, name="cool-runner-metadata", daemon=True)
        self.lookup.start()

    def _ready(self) -> None:
        if self.lookup is not None:  # the background lookup writes the same caches: let it finish first
            self.lookup.join()
            self.lookup = None

    def git(self, module: str) -> GitState | None:
        """The state of the repository that holds a module's file, or None outside any repository."""
        if module not in self.repositories:
            file = getattr(sys.modules.get(module), "__file__", None)
            if not file:  # run.py does not import the modules the worker processes run: find the file only
                try:
                    with importable(self.paths):
                        spec = importlib.util.find_spec(module)
                    file = spec.origin if spec is not None and spec.has_location else None
                except Exception:  # a broken parent package: its import error is reported elsewhere
                    file = None
            self.repositories[module] = GitState.of(str(Path(file).resolve().parent)) if file else None
        return self.repositories[module]

    def file(self, file: str | None) -> str | None:
        if file and file not in self.files:
            self.files[file] = str(Path(file).resolve())
        return self.files.get(file) if file else None

    def fields(self, values: Mapping[str, Any], *, file: str | None, line: int | None, start: str,
               end: str, packages: Any = OWN) -> dict[str, Any]:
        """START, END, GIT, ARGV, PYTHON, PACKAGES (`packages`, by default this process's), FILE and LINE for
        one finished experiment."""
        self._ready()
        state = self.git(str(values.get("Module")))
        return {
            "START": start,
            "END": end,
            "GIT": state.describe(str(values.get("YamlLog"))) if state else None,
            "ARGV": sys.argv[1:] if self.argv is None else list(self.argv),
            "PYTHON": self.python,
            "PACKAGES": dict(self.packages.current()) if packages is OWN else packages,
            "FILE": self.file(file),
            "LINE": line,
        }

    def complete(self, record: Mapping[str, Any], values: Mapping[str, Any], *, file: str | None,
                 line: int | None) -> dict[str, Any]:
        """A record with every metadata key: those it has (from its worker, or set by the module) are kept;
        the others come from here. The metadata keys go before where it ran, its time and its status."""
        end = now()
        module = str(values.get("Module"))
        if isinstance(record.get("PACKAGES"), dict):
            self.seen_packages[module] = record["PACKAGES"]
        elapsed = record.get("TIME_ELAPSED")
        start = end
        if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool):
            start = (datetime.fromisoformat(end) - timedelta(seconds=elapsed)).isoformat(timespec="milliseconds")
        # A worker that crashed before it answered reported nothing: the last PACKAGES of this module, if any.
        facts = self.fields(values, file=file, line=line, start=start, end=end,
                            packages=self.seen_packages.get(module))
        tail = frozenset(RESULT_KEYS)
        out = {key: value for key, value in record.items() if key not in tail and key not in facts}
        for key, value in facts.items():
            out[key] = record.get(key, value)
        out.update((key, value) for key, value in record.items() if key in tail)
        return out


def worker_fields(packages: Packages, start: str) -> dict[str, Any]:
    """What a worker process adds to the record it builds: START, END, and the PACKAGES it has loaded."""
    return {"START": start, "END": now(), "PACKAGES": dict(packages.current())}
