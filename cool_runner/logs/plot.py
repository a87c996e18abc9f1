"""Plots of log records with matplotlib: mean and ± one standard deviation per group, scalars or curves."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..extras import import_optional
from ..keys import ABSENT, lookup_dotted
from .formats import is_number
from .query import _hashable

if TYPE_CHECKING:
    import numpy
    from matplotlib.figure import Figure

log = logging.getLogger("cool_runner")

PLOT_FORMATS = ("png", "svg", "pdf")
POSITION = "record"  # the x label when a scalar is drawn against each record's place in the kept order
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10; after ten groups the line style changes, and markers vary throughout
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LEGEND_ROWS = 20  # entries per legend column


@dataclass
class Curve:
    """One group's mean and standard deviation at each x, and how many values each point averages."""

    group: int
    x: numpy.ndarray
    mean: numpy.ndarray
    std: numpy.ndarray
    n: numpy.ndarray


@dataclass
class Panel:
    """What one --plot key draws: a curve per group, the axis labels, and the records left out."""

    y: str
    xlabel: str
    curves: list[Curve]
    categories: list[str] | None = None  # x tick labels when x is not numeric
    skipped: int = 0
    lists: bool = False


@dataclass
class Plot:
    """Everything a figure shows: the panels and the groups (label and number of records each)."""

    panels: list[Panel]
    group_by: list[str]
    labels: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


def _numpy() -> Any:
    import_optional("matplotlib", feature="--plot", package="matplotlib", extra="plot")
    return import_optional("numpy", feature="--plot", package="numpy", extra="plot")


def gather(records: Sequence[Mapping[str, Any]], y: str | Sequence[str], *, x: str | None = None,
           group_by: Sequence[str] = ()) -> Plot:
    """Group the records and compute, for each Y key, every group's mean and std over records sharing x."""
    np = _numpy()
    keys = [y] if isinstance(y, str) else list(y)
    groups: dict[Any, int] = {}
    plot = Plot([], list(group_by))
    ids = []
    for record in records:
        values = tuple(lookup_dotted(record, key) for key in group_by)
        gid = groups.setdefault(tuple(_hashable(v) for v in values), len(groups))
        if gid == len(plot.labels):
            plot.labels.append(_label(values) if group_by else "all records")
            plot.counts.append(0)
        plot.counts[gid] += 1
        ids.append(gid)
    plot.panels = [_panel(np, records, ids, key, x) for key in keys]
    return plot


def _panel(np: Any, records: Sequence[Mapping[str, Any]], ids: list[int], y: str, x: str | None) -> Panel:
    first = next((v for v in (lookup_dotted(r, y) for r in records) if v is not ABSENT and v is not None), None)
    lists = isinstance(first, list)
    points = _list_points if lists else _scalar_points
    gids, xs, ys, skipped, mismatched = points(np, records, ids, y, x)
    if not len(ys):
        raise UsageError(_nothing(records, y, x, lists, mismatched), option="--plot")
    if skipped:
        where = f"{y} and {x}" if x else y
        log.warning("plot %s: %d record(s) without a number at %s are left out", y, skipped, where)
    x_arr, categories = _axis(np, xs)
    xlabel = x or (f"index in {y}" if lists else POSITION)
    return Panel(y, xlabel, _curves(np, gids, x_arr, ys), categories, skipped, lists)


def _scalar_points(np: Any, records: Sequence[Mapping[str, Any]], ids: list[int], y: str,
                   x: str | None) -> tuple[Any, Any, Any, int, int]:
    """One point per record: its Y against its X (or its place in the kept order)."""
    gids, xs, ys = [], [], []
    skipped = mismatched = 0
    for position, (record, gid) in enumerate(zip(records, ids)):
        yv = lookup_dotted(record, y)
        xv = lookup_dotted(record, x) if x else position
        if is_number(yv) and math.isfinite(yv) and xv is not ABSENT and xv is not None and not isinstance(xv, list):
            gids.append(gid)
            xs.append(xv)
            ys.append(yv)
        else:
            mismatched += isinstance(xv, list)
            skipped += 1
    return np.asarray(gids, dtype=int), xs, np.asarray(ys, dtype=float), skipped, mismatched


def _list_points(np: Any, records: Sequence[Mapping[str, Any]], ids: list[int], y: str,
                 x: str | None) -> tuple[Any, Any, Any, int, int]:
    """Every element of each record's Y list against its index (or the same element of the X list)."""
    ylists, xlists, owners = [], [], []
    skipped = mismatched = 0
    for record, gid in zip(records, ids):
        yv = lookup_dotted(record, y)
        xv = lookup_dotted(record, x) if x else None
        if not isinstance(yv, list) or not yv or (x and not isinstance(xv, list)):
            mismatched += isinstance(yv, list) and bool(yv)
            skipped += 1
            continue
        if x:
            length = min(len(yv), len(xv))
            yv, xv = yv[:length], xv[:length]
            xlists.append(xv)
        ylists.append(yv)
        owners.append(gid)
    lengths = np.asarray([len(v) for v in ylists], dtype=int)
    ys = _floats(np, list(chain.from_iterable(ylists)))
    if x:
        xs = _keys(np, list(chain.from_iterable(xlists)))
    else:  # each element's index within its own list
        starts = np.cumsum(lengths) - lengths
        xs = np.arange(len(ys), dtype=float) - np.repeat(starts, lengths)
    gids = np.repeat(np.asarray(owners, dtype=int), lengths)
    keep = np.isfinite(ys)
    if not keep.all():
        empty = np.add.reduceat(keep, np.cumsum(lengths) - lengths) == 0 if len(lengths) else []
        skipped += int(np.count_nonzero(empty))
        gids, xs, ys = gids[keep], xs[keep], ys[keep]
    return gids, xs, ys, skipped, mismatched


def _floats(np: Any, values: list[Any]) -> numpy.ndarray:
    """Numbers as floats; anything that is not a number becomes NaN (and is left out)."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return np.asarray([float(v) if is_number(v) else math.nan for v in values], dtype=float)


def _keys(np: Any, values: list[Any]) -> numpy.ndarray:
    """X values as floats, or (when they are not all numbers) as objects to be placed as categories."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def _axis(np: Any, values: Any) -> tuple[numpy.ndarray, list[str] | None]:
    """Numeric x as floats; anything else as categories, placed in order of first appearance."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values, None
    items = values.tolist() if isinstance(values, np.ndarray) else values
    if all(is_number(v) for v in items):
        return np.asarray(items, dtype=float), None
    codes: dict[str, int] = {}
    placed = [codes.setdefault(_text(v), len(codes)) for v in items]
    return np.asarray(placed, dtype=float), list(codes)


def _curves(np: Any, gids: numpy.ndarray, xs: numpy.ndarray, ys: numpy.ndarray) -> list[Curve]:
    """Mean and sample standard deviation of y per (group, x), computed in a few passes over sorted arrays."""
    order = np.lexsort((xs, gids))
    g, x, y = gids[order], xs[order], ys[order]
    starts = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (x[1:] != x[:-1])])
    n = np.diff(np.r_[starts, len(y)])
    mean = np.add.reduceat(y, starts) / n
    squares = np.add.reduceat((y - np.repeat(mean, n)) ** 2, starts)
    std = np.sqrt(squares / np.maximum(n - 1, 1))  # one value: no spread to show, so no band
    group_of = g[starts]
    bounds = np.flatnonzero(np.r_[True, group_of[1:] != group_of[:-1], True])
    return [Curve(int(group_of[a]), x[starts[a:b]], mean[a:b], std[a:b], n[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])]


def _text(value: Any) -> str:
    if value is ABSENT or value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _label(values: Sequence[Any]) -> str:
    return ", ".join(_text(v) for v in values)


def _nothing(records: Sequence[Mapping[str, Any]], y: str, x: str | None, lists: bool, mismatched: int) -> str:
    if mismatched and lists:
        return (f"{y} holds lists, so --x {x} must name a list too (drawn point by point against {y}); "
                f"leave --x out to draw against the index")
    if mismatched:
        return f"--x {x} holds lists but {y} does not: give a key holding one value per record as --x"
    seen: dict[str, None] = {}
    for record in records[:100]:
        seen.update(dict.fromkeys(map(str, record)))
    known = ", ".join(list(seen)[:12]) or "none"
    where = f"{y} and {x}" if x else y
    return f"no record has a number at {where} (keys in the records: {known})"


def make_figure(records: Sequence[Mapping[str, Any]], y: str | Sequence[str], *, x: str | None = None,
                group_by: Sequence[str] = ()) -> Figure:
    """A matplotlib Figure (no display needed) with one panel per Y key and one line per group."""
    return draw(gather(records, y, x=x, group_by=group_by))


def draw(plot: Plot) -> Figure:
    """Draw gathered data: mean lines, ± one std bands, labelled axes and one legend for every panel."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    shown = sorted({curve.group for panel in plot.panels for curve in panel.curves})
    columns = max(1, math.ceil(len(shown) / LEGEND_ROWS))
    longest = max((len(plot.labels[g]) for g in shown), default=10) + 8
    legend_width = columns * (0.7 + 0.075 * min(longest, 60))
    height = max(3.6 * len(plot.panels), 0.24 * min(len(shown), LEGEND_ROWS) + 1.2)
    fig = Figure(figsize=(7.0 + legend_width, height), layout="constrained")
    axes = fig.subplots(len(plot.panels), 1, squeeze=False)[:, 0]
    style = {g: _style(i) for i, g in enumerate(shown)}
    for ax, panel in zip(axes, plot.panels):
        for curve in panel.curves:
            colour, line, marker = style[curve.group]
            every = max(1, len(curve.x) // 12)
            ax.plot(curve.x, curve.mean, color=colour, linestyle=line, marker=marker, markersize=4, markevery=every,
                    linewidth=1.5, label=plot.labels[curve.group])
            if (curve.n > 1).any():
                if len(curve.x) > 1:
                    ax.fill_between(curve.x, curve.mean - curve.std, curve.mean + curve.std, color=colour,
                                    alpha=0.15, linewidth=0)
                else:
                    ax.errorbar(curve.x, curve.mean, yerr=curve.std, fmt="none", ecolor=colour, capsize=4)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.y)
        ax.grid(True, alpha=0.3)
        if panel.categories is not None:
            names = panel.categories
            ax.xaxis.set_major_locator(MaxNLocator(nbins=min(len(names), 20), integer=True))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos, n=names: n[int(v)] if 0 <= v < len(n) and
                                                       v == int(v) else ""))
            if max(map(len, names)) > 6:
                ax.tick_params(axis="x", labelrotation=30)
    handles = [Line2D([], [], color=style[g][0], linestyle=style[g][1], marker=style[g][2], markersize=4)
               for g in shown]
    labels = [f"{plot.labels[g]} (n={plot.counts[g]})" for g in shown]
    title = ", ".join(plot.group_by) if plot.group_by else None
    fig.legend(handles, labels, loc="outside right upper", ncols=columns, fontsize="small", title=title,
               title_fontsize="small", frameon=False)
    fig.suptitle("mean ± 1 standard deviation over records with the same x", fontsize="small")
    return fig


def _style(index: int) -> tuple[str, str, str]:
    return (COLOURS[index % len(COLOURS)], STYLES[index // len(COLOURS) % len(STYLES)],
            MARKERS[index % len(MARKERS)])


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as the bytes of a PNG, an SVG (its text kept as text) or a PDF file."""
    import matplotlib

    if fmt not in PLOT_FORMATS:
        raise UsageError(f"cannot draw a plot as {fmt!r}", option="--format", hint="use png, svg or pdf")
    buffer = io.BytesIO()
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cool-runner", "pdf.fonttype": 42}):
        fig.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    return buffer.getvalue()
