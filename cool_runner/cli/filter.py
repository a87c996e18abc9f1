"""`filter.py` / `cool-filter`: argument parsing for querying logs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..console import Console
from ..errors import UsageError
from ..files import atomic_write, write_new
from ..logs.formats import FORMATS, SUFFIXES
from ..logs.query import Query, aggregate, compile_lambda, load_records
from ..logs.reader import MARK
from . import Parser, entry


class _ArgsFileParser(Parser):
    """`%FILE` reads arguments from FILE, one per line; blank lines are ignored."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        line = arg_line.rstrip("\r\n")
        return [line] if line.strip() else []


def filter_parser() -> argparse.ArgumentParser:
    parser = _ArgsFileParser(
        prog="filter.py", fromfile_prefix_chars="%",
        description="Filter, sort, trim, group and export .yaml logs. %%FILE reads arguments from FILE, one per line.")
    parser.add_argument("paths", nargs="+", metavar="LOGFILE", help=".yaml log files (e.g. from collect.py)")
    parser.add_argument("--filter", action="append", default=[], metavar="LAMBDA",
                        help="keep records for which this returns true; several must all hold")
    parser.add_argument("--sort", action="append", default=[], metavar="LAMBDA",
                        help="stable sort by this key; with several, the last one is the primary key")
    parser.add_argument("--reverse", action="store_true", help="reverse every sort")
    parser.add_argument("--keep-keys", nargs="*", default=None, metavar="KEY",
                        help="keep only these keys (a.b for nested ones), in this order; none given keeps all")
    parser.add_argument("--group-by", nargs="+", default=None, metavar="KEY", help="group records by these keys")
    parser.add_argument("--agg", nargs="+", default=[], metavar="KEY",
                        help="with --group-by: count, mean, std, min and max of these keys per group")
    parser.add_argument("--format", choices=sorted(FORMATS), default=None,
                        help="yaml (default), json, csv, or table (printed); --group-by prints a table by default")
    parser.add_argument("--dest", default="filtered", help="folder of the new file (default: filtered)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE", help="write here instead ('-': stdout)")
    return parser


def filter_command(argv: list[str], console: Console) -> int:
    args = filter_parser().parse_args(argv)
    if args.agg and not args.group_by:
        raise UsageError("--agg needs --group-by", option="--agg", hint="e.g. --group-by Name --agg ACC")
    query = Query(filters=[compile_lambda(t, "--filter") for t in args.filter],
                  sorts=[compile_lambda(t, "--sort") for t in args.sort], reverse=args.reverse,
                  keep=args.keep_keys or None)
    records, sources = load_records(args.paths)
    kept = query.apply(records)
    rows = aggregate(kept, args.group_by, args.agg) if args.group_by else kept
    fmt = args.format or ("table" if args.group_by else "yaml")
    if fmt == "yaml" and not args.group_by and not query.keep:
        text = "".join(f"---\n{sources[id(record)]}" for record in kept)  # each record's own text, as written
    else:
        text = FORMATS[fmt](rows)
    if args.output == "-" or (args.output is None and fmt == "table"):
        console.out.write(text)
        console.out.flush()
    elif args.output:
        atomic_write(args.output, _marked(text, fmt))
        console.print(args.output)
    else:
        console.print(str(write_new(args.dest, "filtered", SUFFIXES[fmt], _marked(text, fmt))))
    summary = f"loaded {len(records)} record(s), kept {len(kept)}"
    if args.group_by:
        summary += f" in {len(rows)} group(s)"
    print(summary, file=console.err)
    if query.missing_filter:
        print(f"{query.missing_filter} record(s) lacked a key a --filter uses: treated as not matching",
              file=console.err)
    if query.missing_sort:
        print(f"{query.missing_sort} record(s) lacked a key a --sort uses: put last", file=console.err)
    return 0


def _marked(text: str, fmt: str) -> str:
    """YAML output starts with the tools' mark (a comment), so collect never gathers it again."""
    return f"{MARK}filter\n{text}" if fmt == "yaml" else text


def main(argv: Sequence[str] | None = None) -> int:
    """`filter.py` / `cool-filter`."""
    return entry("filter.py", filter_command, argv)
