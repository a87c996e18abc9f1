"""`filter.py` / `cool-filter`: argument parsing for querying logs."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

from ..console import Console
from ..errors import UsageError
from ..files import write_new, write_output
from ..logs.formats import FORMATS, SUFFIXES
from ..logs.plot import PLOT_FORMATS
from ..logs.query import Query, aggregate, compile_lambda, load_records
from ..logs.reader import LOG_SUFFIXES, MARK
from . import Parser, entry
from .listargs import Formatter, ListAction, list_calls, require_positionals, swallowed

VIEWS = (*PLOT_FORMATS, "html")  # --format values that draw (matplotlib) or build a page, not export records


class _ArgsFileParser(Parser):
    """`%FILE` reads arguments from FILE, one per line; blank lines are ignored."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        line = arg_line.rstrip("\r\n")
        return [line] if line.strip() else []


def filter_parser() -> argparse.ArgumentParser:
    parser = _ArgsFileParser(
        prog="filter.py", fromfile_prefix_chars="%", formatter_class=Formatter,
        description="Filter, sort, trim, group and export .yaml logs. %FILE reads arguments from FILE, one per line.")
    parser.add_argument("paths", nargs="*", metavar="LOGFILE", help=".yaml log files (e.g. from collect.py)")
    parser.add_argument("--filter", action="append", default=[], metavar="LAMBDA",
                        help="keep records for which this returns true; several must all hold")
    parser.add_argument("--sort", action="append", default=[], metavar="LAMBDA",
                        help="stable sort by this key; with several, the last one is the primary key")
    parser.add_argument("--reverse", action="store_true", help="reverse every sort")
    parser.add_argument("--keep-keys", nargs="*", action=ListAction, default=None, metavar="KEY",
                        help="keep only these keys (a.b for nested ones), in this order; none given keeps all")
    parser.add_argument("--group-by", nargs="+", action=ListAction, default=None, metavar="KEY",
                        help="group records by these keys")
    parser.add_argument("--agg", nargs="+", action=ListAction, default=[], metavar="KEY",
                        help="with --group-by: count, mean, std, min and max of these keys per group")
    parser.add_argument("--format", choices=[*sorted(FORMATS), *VIEWS], default=None,
                        help="yaml (default), json, csv, or table (printed); --group-by prints a table by default; "
                             "png, svg or pdf for --plot (png by default); html for a report of the records")
    parser.add_argument("--dest", default="filtered", help="folder of the new file (default: filtered)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write here instead ('-': stdout); a symlink's target, a FIFO or a device is written "
                             "through")
    parser.add_argument("--plot", nargs="+", action=ListAction, default=None, metavar="Y",
                        help="draw these keys (one panel each): mean and ± 1 std per --group-by group over records "
                             "sharing x; a key holding a list (a learning curve) is drawn against its index")
    parser.add_argument("--x", default=None, metavar="X",
                        help="with --plot: the key for the x axis (a list key for list-valued Y; default: the "
                             "record's place in the kept order, or the list index)")
    return parser


def _is_log_file(word: str) -> bool:
    return word.endswith(LOG_SUFFIXES) and os.path.isfile(word)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse, and refuse a key list that took the LOGFILEs (`--keep-keys Name ACC logs.yaml`)."""
    args = filter_parser().parse_intermixed_args(argv)
    require_positionals(args, "paths", "LOGFILE", _is_log_file, hint="give the .yaml files to read")
    for option, words in list_calls(args):
        files = [w for w in words if _is_log_file(w)]
        if files:
            raise swallowed(option, words, "LOGFILE", _is_log_file, f"{files[0]!r} is a log file, not a key")
    return args


def filter_command(argv: list[str], console: Console) -> int:
    args = parse_args(argv)
    if args.agg and not args.group_by:
        raise UsageError("--agg needs --group-by", option="--agg", hint="e.g. --group-by Name --agg ACC")
    query = Query(filters=[compile_lambda(t, "--filter") for t in args.filter],
                  sorts=[compile_lambda(t, "--sort") for t in args.sort], reverse=args.reverse,
                  keep=args.keep_keys or None)
    if args.plot or args.x is not None or args.format in VIEWS:
        return _view(args, query, console)
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
        if write_output(args.output, _marked(text, fmt)):  # a FIFO or /dev/stdout gets no path printed after
            console.print(args.output)
    else:
        console.print(str(write_new(args.dest, "filtered", SUFFIXES[fmt], _marked(text, fmt))))
    _summary(console, query, len(records), len(kept), len(rows) if args.group_by else None)
    return 0


def _summary(console: Console, query: Query, loaded: int, kept: int, groups: int | None) -> None:
    summary = f"loaded {loaded} record(s), kept {kept}"
    if groups is not None:
        summary += f" in {groups} group(s)"
    print(summary, file=console.err)
    for line in query.notes():
        print(line, file=console.err)


def _view(args: argparse.Namespace, query: Query, console: Console) -> int:
    """--plot and --format png|svg|pdf|html: a figure or a report of the whole kept records."""
    fmt = args.format or "png"
    if args.x is not None and not args.plot:
        raise UsageError("only used with --plot", option="--x", hint="e.g. --plot ACC --x sparsity")
    if fmt not in VIEWS:
        raise UsageError(f"a figure cannot be written as {fmt}", option="--plot",
                         hint="use --format png, svg, pdf or html")
    if fmt in PLOT_FORMATS and not args.plot:
        raise UsageError(f"{fmt} is for plots: name the key to draw", option="--format",
                         hint="e.g. --plot ACC --x sparsity; --format html makes a report without one")
    if fmt in PLOT_FORMATS and args.agg:
        raise UsageError(f"a {fmt} plot has no table for the aggregates", option="--agg",
                         hint="use --format html for the table and the plot together, or leave --agg out")
    from ..logs.plot import figure_bytes, make_figure
    from ..logs.report import html_report

    # Plots, the summary and the failures need whole records; --keep-keys only chooses the table's columns.
    records, _ = load_records(args.paths)
    whole = dataclasses.replace(query, keep=None)
    kept = whole.apply(records)
    group_by = args.group_by or ()
    if fmt == "html":
        data = html_report(kept, plot=args.plot, x=args.x, group_by=group_by, agg=args.agg, keep=query.keep,
                           sources=args.paths, loaded=len(records)).encode("utf-8")
    else:
        data = figure_bytes(make_figure(kept, args.plot, x=args.x, group_by=group_by), fmt)
    if args.output == "-":
        console.out.flush()
        buffer = getattr(console.out, "buffer", None)  # bytes as they are; a text-only stream gets text
        buffer.write(data) if buffer is not None else console.out.write(data.decode("utf-8", "replace"))
        (buffer or console.out).flush()
    elif args.output:
        if write_output(args.output, data):  # a FIFO or /dev/stdout gets no path printed after
            console.print(args.output)
    else:
        console.print(str(write_new(args.dest, "report" if fmt == "html" else "plot", f".{fmt}", data)))
    _summary(console, whole, len(records), len(kept), None)
    return 0


def _marked(text: str, fmt: str) -> str:
    """YAML output starts with the tools' mark (a comment), so collect never gathers it again."""
    return f"{MARK}filter\n{text}" if fmt == "yaml" else text


def main(argv: Sequence[str] | None = None) -> int:
    """`filter.py` / `cool-filter`."""
    return entry("filter.py", filter_command, argv)
