"""A self-contained HTML report of log records: summary, plots as SVG, sortable tables, failed experiments."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from ..keys import Status
from .formats import columns_of, flatten, is_number
from .query import aggregate, select_keys

FAILURES_SHOWN = 200  # beyond this many failed experiments the list points to the table instead
HOSTS_SHOWN = 20


def html_report(records: Sequence[Mapping[str, Any]], *, plot: str | Sequence[str] | None = None,
                x: str | None = None, group_by: Sequence[str] = (), agg: Sequence[str] = (),
                keep: Sequence[str] | None = None, sources: Sequence[str] = (), loaded: int | None = None,
                title: str | None = None) -> str:
    """One HTML file with no outside resources: summary, plots (with `plot`), groups, failures and records.

    `records` are whole records (after filters and sorts); `keep` chooses the columns of the records table.
    """
    figure = ""
    if plot:
        from .plot import figure_bytes, make_figure

        svg = figure_bytes(make_figure(records, plot, x=x, group_by=group_by), "svg").decode("utf-8")
        figure = svg[svg.index("<svg"):]  # inline: no XML declaration or doctype inside HTML
    rows = [select_keys(r, keep) for r in records] if keep else records
    title = title or _title(sources)
    parts = [_summary(records, loaded, sources)]
    if figure:
        parts.append(f'<section id="plots"><h2>Plots</h2><div class="figure">{figure}</div></section>')
    if group_by:
        groups = aggregate(records, group_by, agg)
        parts.append(_table_section("groups", f"Groups by {', '.join(group_by)}", groups, flat=False))
    parts.append(_failures(records))
    parts.append(_table_section("records", "Records", rows, flat=True))
    return TEMPLATE.format(title=html.escape(title), css=_asset("report.css"), js=_asset("report.js"),
                           body="\n".join(p for p in parts if p))


def _title(sources: Sequence[str]) -> str:
    if not sources:
        return "cool-runner report"
    more = f" and {len(sources) - 1} more" if len(sources) > 1 else ""
    return f"cool-runner report: {sources[0]}{more}"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# --- the summary -------------------------------------------------------------------------------------------


def _summary(records: Sequence[Mapping[str, Any]], loaded: int | None, sources: Sequence[str]) -> str:
    statuses = Counter(str(r.get("STATUS", "(none)")) for r in records)
    order = [s.value for s in Status if s.value in statuses] + sorted(set(statuses) - {s.value for s in Status})
    chips = "".join(f'<li class="status status-{_e(s)}">{_e(s)} <b>{statuses[s]:,}</b></li>' for s in order)
    hosts = Counter(str(r["HOST"]) for r in records if r.get("HOST") is not None)
    host_items = "".join(f"<li>{_e(h)} <b>{n:,}</b></li>" for h, n in hosts.most_common(HOSTS_SHOWN))
    if len(hosts) > HOSTS_SHOWN:
        host_items += f"<li>and {len(hosts) - HOSTS_SHOWN:,} more</li>"
    kept = f"{len(records):,}" + (f" <small>of {loaded:,} loaded</small>" if loaded is not None else "")
    files = "".join(f"<li>{_e(s)}</li>" for s in sources)
    cards = [
        ("Records", f"<p class='big'>{kept}</p>"),
        ("Status", f"<ul class='chips'>{chips}</ul>" if records else "<p>none</p>"),
        ("Time span", _span(records)),
        ("Hosts", f"<ul class='chips'>{host_items}</ul>" if hosts else "<p>not recorded</p>"),
    ]
    body = "".join(f'<div class="card"><h3>{name}</h3>{content}</div>' for name, content in cards)
    sources_html = (f'<details class="sources"><summary>{len(sources)} log file(s)</summary><ul>{files}</ul>'
                    "</details>") if sources else ""
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{body}</div>{sources_html}</section>'


def _span(records: Sequence[Mapping[str, Any]]) -> str:
    """First start to last end, from TIME_STARTED and TIME_ELAPSED, and the compute time they add up to."""
    starts, ends, compute, unknown = [], [], 0.0, 0
    for record in records:
        elapsed = record.get("TIME_ELAPSED")
        seconds = float(elapsed) if is_number(elapsed) and math.isfinite(elapsed) else 0.0
        compute += seconds
        started = _when(record.get("TIME_STARTED"))
        if started is None:
            unknown += 1
            continue
        starts.append(started)
        ends.append(started + timedelta(seconds=seconds))
    lines = []
    if starts:
        first, last = min(starts), max(ends)
        last = last.astimezone(first.tzinfo)  # both ends in the time zone of the first start
        end = last.strftime("%H:%M" if last.date() == first.date() else "%Y-%m-%d %H:%M")
        offset = first.strftime("%z")
        lines.append(f"<p class='big'>{_duration((last - first).total_seconds())}</p>")
        lines.append(f"<p>{first:%Y-%m-%d %H:%M} → {end} <small>(UTC{offset[:3]}:{offset[3:]})</small></p>")
    else:
        lines.append("<p>not recorded <small>(no TIME_STARTED in the records)</small></p>")
    lines.append(f"<p>compute time {_duration(compute)}</p>")
    if starts and unknown:
        lines.append(f"<p><small>{unknown:,} record(s) without TIME_STARTED</small></p>")
    return "".join(lines)


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.astimezone()  # naive: the local time of this machine


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if minutes < 60:
        return f"{int(minutes)} min {int(seconds % 60)} s"
    if hours < 48:
        return f"{int(hours)} h {int(minutes % 60)} min"
    return f"{int(days)} d {int(hours % 24)} h"


# --- failures and tables -----------------------------------------------------------------------------------


def _failures(records: Sequence[Mapping[str, Any]]) -> str:
    failed = [r for r in records if r.get("STATUS") == Status.FAILED.value]
    if not failed:
        return ""
    items = []
    for record in failed[:FAILURES_SHOWN]:
        facts = " ".join(f"<span>{k} <b>{_e(record[k])}</b></span>" for k in ("Name", "RND_IDX", "REP", "HOST",
                                                                             "TIME_STARTED") if k in record)
        error = _e(record.get("ERROR", "(no ERROR recorded)"))
        trace = record.get("TRACEBACK")
        details = f"<details><summary>traceback</summary><pre>{_e(trace)}</pre></details>" if trace else ""
        items.append(f'<li><div class="facts">{facts}</div><p class="error">{error}</p>{details}</li>')
    more = len(failed) - FAILURES_SHOWN
    note = f"<p>and {more:,} more: type <kbd>failed</kbd> in the records' filter to see them all.</p>" if more > 0 \
        else ""
    return (f'<section id="failures"><h2>Failed experiments <small>({len(failed):,})</small></h2>'
            f'<ol class="failures">{"".join(items)}</ol>{note}</section>')


def _table_section(name: str, heading: str, rows: Sequence[Mapping[str, Any]], *, flat: bool) -> str:
    """A table the page's script renders from JSON: sortable by clicking a header, filtered by text."""
    flat_rows = [flatten(r) for r in rows] if flat else [dict(r) for r in rows]
    columns = columns_of(flat_rows)
    table = [list(map(row.get, columns)) for row in flat_rows]
    try:  # lists and mappings stay JSON, shown as such; the few values JSON has no word for are text
        payload = json.dumps({"columns": columns, "rows": table}, ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False, default=str)
    except ValueError:  # NaN or infinity somewhere: JSON.parse would refuse the page's data
        table = [[_finite(value) for value in row] for row in table]
        payload = json.dumps({"columns": columns, "rows": table}, ensure_ascii=False, separators=(",", ":"),
                             default=str)
    payload = payload.replace("<", "\\u003c")  # no value can close the script element early
    return (f'<section id="{name}"><h2>{_e(heading)}</h2><div class="datatable" data-source="{name}-data"></div>'
            f'<script type="application/json" id="{name}-data">{payload}</script></section>')


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _e(value: Any) -> str:
    return html.escape(str(value))


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="cool-runner">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header><h1>{title}</h1></header>
<main>
{body}
</main>
<script>
{js}
</script>
</body>
</html>
"""
