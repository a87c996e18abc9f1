"""`collect.py` / `cool-collect`: argument parsing for gathering logs."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..console import Console, Progress
from ..logs.collect import CACHE_NAME, Cache, collect, write_documents
from . import Parser, entry
from .listargs import Formatter, ListAction, list_calls, require_positionals, swallowed

log = logging.getLogger("cool_runner")


def collect_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="collect.py", formatter_class=Formatter,
        description="Gather the run records (documents with STATUS or TIME_ELAPSED) of every .yaml/.yml log "
                    "under PATHs into one new file.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="folders (searched recursively) or log files")
    parser.add_argument("--exclude", nargs="*", action=ListAction, default=[], metavar="NAME",
                        help="skip files or folders by name, glob (e.g. '*_tmp') or path; "
                             "--exclude=NAME takes exactly one")
    parser.add_argument("--all", action="store_true",
                        help="take every mapping document, not only run records (e.g. experiment files)")
    parser.add_argument("--dest", default="collected", help="folder of the new file (default: collected)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every folder visited with its count")
    parser.add_argument("--follow-links", action="store_true", help="follow symlinked folders (loops are safe)")
    parser.add_argument("--no-cache", action="store_true", help="read every file again instead of using the cache")
    parser.add_argument("--jobs", type=int, default=None, help="parallel readers (default: one per core)")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse, and refuse an --exclude list that took the PATHs (`--exclude tmp data`)."""
    args = collect_parser().parse_intermixed_args(argv)
    require_positionals(args, "paths", "PATH", os.path.exists, hint="give the folders or log files to collect")
    roots = [os.path.realpath(p) for p in args.paths]

    def outside_paths(word: str) -> bool:  # an existing path beside the PATHs cannot be meant to be excluded
        real = os.path.realpath(word)
        return os.path.exists(word) and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep)
                                                for r in roots)

    calls = list_calls(args)
    if calls and len(calls[-1][1]) > 1 and outside_paths(calls[-1][1][-1]):
        option, words = calls[-1]
        raise swallowed(option, words, "PATH", outside_paths,
                        f"{words[-1]!r} is not inside any PATH, so {option} cannot mean it")
    return args


def collect_command(argv: list[str], console: Console) -> int:
    args = parse_args(argv)
    cache = Cache(None if args.no_cache else Path(args.dest) / CACHE_NAME)
    progress = Progress(0, "reading logs", console.err)
    collection = collect(args.paths, exclude=args.exclude, follow_links=args.follow_links, skip_dirs=[args.dest],
                         cache=cache, jobs=args.jobs, progress=progress, all_mappings=args.all)
    progress.close()
    for path, reason in collection.skipped:
        log.warning("skipped %s", reason if reason.startswith(path) else f"{path}: {reason}")
    if args.verbose:
        for folder, count in collection.folders.items():
            console.print(f"{folder}: {count} record(s)")
    output = write_documents(args.dest, "logs", collection.documents,
                             f"collect: {len(collection.documents)} records from {', '.join(args.paths)}")
    cache.save()
    parts = [f"{collection.files} file(s)", f"{collection.duplicates} duplicate(s) dropped",
             f"{len(collection.skipped)} file(s) skipped"]
    if collection.passed_over:
        parts.append(f"{collection.passed_over} other document(s) passed over (not run records; --all takes them)")
    if collection.cached:
        parts.append(f"{collection.cached} from the cache")
    console.print(f"collected {len(collection.documents)} record(s) from " + ", ".join(parts))
    console.print(str(output))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`collect.py` / `cool-collect`."""
    return entry("collect.py", collect_command, argv)
