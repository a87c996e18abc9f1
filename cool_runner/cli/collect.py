"""`collect.py` / `cool-collect`: argument parsing for gathering logs."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..console import Console, Progress
from ..logs.collect import CACHE_NAME, Cache, collect, write_documents
from . import Parser, entry

log = logging.getLogger("cool_runner")


def collect_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="collect.py", description="Gather the records of every .yaml/.yml log under PATHs into one new file.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders (searched recursively) or log files")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="NAME",
                        help="skip files or folders by name, glob (e.g. '*_tmp') or path")
    parser.add_argument("--dest", default="collected", help="folder of the new file (default: collected)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every folder visited with its count")
    parser.add_argument("--follow-links", action="store_true", help="follow symlinked folders (loops are safe)")
    parser.add_argument("--no-cache", action="store_true", help="read every file again instead of using the cache")
    parser.add_argument("--jobs", type=int, default=None, help="parallel readers (default: one per core)")
    return parser


def collect_command(argv: list[str], console: Console) -> int:
    args = collect_parser().parse_args(argv)
    cache = Cache(None if args.no_cache else Path(args.dest) / CACHE_NAME)
    progress = Progress(0, "reading logs", console.err)
    collection = collect(args.paths, exclude=args.exclude, follow_links=args.follow_links, skip_dirs=[args.dest],
                         cache=cache, jobs=args.jobs, progress=progress)
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
    if collection.cached:
        parts.append(f"{collection.cached} from the cache")
    console.print(f"collected {len(collection.documents)} record(s) from " + ", ".join(parts))
    console.print(str(output))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`collect.py` / `cool-collect`."""
    return entry("collect.py", collect_command, argv)
