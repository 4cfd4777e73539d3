"""One self-contained HTML report of spans: what is counted, tables, plots, readable offline.

Sections, each a ``<section id=...>``: ``overview`` (what is counted and the
totals), ``operations`` (every span per operation), ``traces`` (root spans:
trace-level figures), ``tenants`` (side by side), ``over-time`` (latency per
tenant and per operation, error rate per tenant), ``errors`` (the top errors,
scrubbed) and ``slowest`` (the slowest traces, each linked to Phoenix's UI).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenantrace.analytics.insights import (
    overview,
    root_summary,
    slowest_traces,
    tenant_comparison,
    top_errors,
)
from tenantrace.analytics.plots import (
    error_rate_by_operation,
    error_rate_over_time,
    latency_distribution,
    latency_over_time,
    tenants_side_by_side,
)
from tenantrace.analytics.records import TraceMetrics, trace_url
from tenantrace.analytics.summary import group_stats, ranked_groups

__all__ = ["SECTIONS", "write_report"]

SECTIONS = ("overview", "operations", "traces", "tenants", "over-time", "errors", "slowest")

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1400px}"
    "section{margin:0 0 2.5rem}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right;vertical-align:top}"
    "th{background:#f4f4f6;text-align:left}"
    "th:first-child,td:first-child,td.text{text-align:left}"
    "td.text{max-width:40rem;overflow-wrap:break-word}"
    ".counted{background:#eef3ff;border-left:4px solid #636efa;padding:.6rem 1rem}"
    ".warning{background:#fff4e5;border-left:4px solid #FFA15A;padding:.6rem 1rem}"
    ".bad{color:#c0392b;font-weight:600}"
    "code{font-size:.9em}"
)
_TABLE_ROWS = 100  # operations in the full table; the rest are one "other" row


def _esc(text: object) -> str:
    return html.escape(str(text))


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "") -> str:
    heading = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    klass = f" class='{cls}'" if cls else ""
    return f"<table{klass}><thead><tr>{heading}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, *, text: bool = False, bad: bool = False) -> str:
    classes = " ".join(c for c, on in (("text", text), ("bad", bad)) if on)
    return f"<td class='{classes}'>{value}</td>" if classes else f"<td>{value}</td>"


def _link(phoenix_url: str | None, record: TraceMetrics, *, select_span: bool = False) -> str:
    label = _esc(record.trace_id)
    if not phoenix_url or not record.project_id:
        return f"<code>{label}</code>"
    node = record.phoenix_id if select_span else None
    url = trace_url(phoenix_url, record.project_id, record.trace_id, span_node_id=node)
    return f"<a href='{_esc(url)}' target='_blank' rel='noopener'><code>{label}</code></a>"


def _counted(records: Sequence[TraceMetrics], counting: str | None) -> str:
    if counting is not None:
        return counting
    if all(r.is_root for r in records):
        return (
            "root spans only, one per trace: failures in spans below a root are not "
            "counted (read every span with PhoenixAnalytics.get_spans to count them)"
        )
    return "every span of every operation, at any depth"


def _overview(
    records: Sequence[TraceMetrics], counting: str | None, truncated_at: int | None
) -> str:
    o = overview(records)
    parts = [
        f"<p class='counted'><b>Counted:</b> {_esc(_counted(records, counting))}. "
        f"{o['spans']:,} spans in {o['traces']:,} traces; {o['roots']:,} of the spans are "
        f"trace roots (trace-level figures: <a href='#traces'>Traces</a>).</p>"
    ]
    if truncated_at is not None:
        parts.append(
            f"<p class='warning'><b>Not the whole range:</b> only the first {truncated_at:,} "
            "spans (oldest first) were read; raise the limit for the rest.</p>"
        )
    rate = o["failed_spans"] / o["spans"] if o["spans"] else 0.0
    rows = [
        [_td("spans"), _td(f"{o['spans']:,}"), _td(f"{o['failed_spans']:,}", bad=rate > 0),
         _td(f"{rate:.1%}")],
        [_td("traces (a counted span failed)"), _td(f"{o['traces']:,}"),
         _td(f"{o['traces_with_failed_span']:,}", bad=o["traces_with_failed_span"] > 0),
         _td(f"{o['traces_with_failed_span'] / o['traces']:.1%}" if o["traces"] else "")],
        [_td("root spans (the trace itself failed)"), _td(f"{o['roots']:,}"),
         _td(f"{o['failed_roots']:,}", bad=o["failed_roots"] > 0),
         _td(f"{o['failed_roots'] / o['roots']:.1%}" if o["roots"] else "")],
    ]  # fmt: skip
    parts.append(_table(("", "count", "failed", "failed share"), rows))
    parts.append(
        f"<p>{o['tenants']:,} tenants, {o['projects']:,} projects; "
        f"spans started {_when(o['first'])} to {_when(o['last'])}.</p>"
    )
    return "".join(parts)


def _operation_rows(ranked: Sequence[tuple[str, list[TraceMetrics]]]) -> list[list[str]]:
    rows = []
    for name, members in ranked:
        s = group_stats(members)
        rows.append(
            [_td(_esc(name), text=True), _td(f"{s['count']:,}"), _td(f"{s['trace_count']:,}"),
             _td(f"{s['error_count']:,}", bad=s["error_count"] > 0), _td(f"{s['error_rate']:.1%}"),
             _td(_ms(s["p50_latency"])), _td(_ms(s["p95_latency"])), _td(_ms(s["p99_latency"])),
             _td(_ms(s["max_latency"]))]
        )  # fmt: skip
    return rows


def _operations(records: Sequence[TraceMetrics], top: int) -> tuple[str, str, list[Any]]:
    """(text above the plots, tables below them, figures)."""
    head = ("operation", "spans", "traces", "failed spans", "error rate", "p50 ms", "p95 ms",
            "p99 ms", "max ms")  # fmt: skip
    ranked = ranked_groups(records, "operation", top)
    tables = _table(head, _operation_rows(ranked))
    every = ranked_groups(records, "operation", _TABLE_ROWS)
    if len(every) > len(ranked):
        count = len({r.operation for r in records})
        tables += (
            f"<details><summary>All {count:,} operations</summary>"
            + _table(head, _operation_rows(every))
            + "</details>"
        )
    note = (
        f"<p>Every span of each operation, at any depth, most spans first: the {top} "
        "busiest operations, then one <i>other</i> for the rest.</p>"
    )
    figures = [latency_distribution(records, top=top), error_rate_by_operation(records, top=top)]
    return note, tables, figures


def _traces(records: Sequence[TraceMetrics]) -> str:
    stats = root_summary(records)
    if not stats:
        return (
            "<p>None of the counted spans is a trace root (spans of one operation read "
            "at any depth): no trace-level figures.</p>"
        )
    rows = [
        [_td(_esc(name), text=True), _td(f"{s['traces']:,}"),
         _td(f"{s['failed_roots']:,}", bad=s["failed_roots"] > 0),
         _td(f"{s['traces_with_failed_span']:,}", bad=s["traces_with_failed_span"] > 0),
         _td(_ms(s["p50_latency"])), _td(_ms(s["p95_latency"])), _td(_ms(s["max_latency"]))]
        for name, s in stats.items()
    ]  # fmt: skip
    head = ("root operation", "traces", "failed at the root", "with a failed span", "p50 ms",
            "p95 ms", "max ms")  # fmt: skip
    return (
        "<p>One row per root operation: a trace's root span is its duration and its "
        "outcome as the caller saw it. A trace can succeed at the root and still hold "
        "failed spans below it (retried or tolerated): the last column counts those.</p>"
        + _table(head, rows)
    )


def _tenants(records: Sequence[TraceMetrics], top: int) -> tuple[str, list[Any]]:
    stats = tenant_comparison(records)
    rows = [
        [_td(_esc(name), text=True), _td(f"{s['spans']:,}"), _td(f"{s['traces']:,}"),
         _td(f"{s['failed_spans']:,}", bad=s["failed_spans"] > 0), _td(f"{s['error_rate']:.1%}"),
         _td(f"{s['traces_with_failed_span']:,}"), _td(f"{s['sessions']:,}"),
         _td(_ms(s["p50_latency"])), _td(_ms(s["p95_latency"])), _td(_ms(s["p99_latency"]))]
        for name, s in stats.items()
    ]  # fmt: skip
    head = ("tenant", "spans", "traces", "failed spans", "error rate", "traces with a failure",
            "sessions", "p50 ms", "p95 ms", "p99 ms")  # fmt: skip
    return _table(head, rows), [tenants_side_by_side(records, top=max(top, 20))]


def _over_time(records: Sequence[TraceMetrics], top: int) -> tuple[str, list[Any]]:
    lines = min(top, 8)
    figures = [
        latency_over_time(records, by="tenant", top=lines),
        latency_over_time(records, by="operation", top=lines),
        error_rate_over_time(records, by="tenant", top=lines),
    ]
    note = f"<p>Every span, per time bucket: the {lines} largest tenants and operations.</p>"
    return note, figures


def _errors(records: Sequence[TraceMetrics], phoenix_url: str | None) -> str:
    groups = top_errors(records, 10)
    if not groups:
        return "<p>No failed span in this range.</p>"
    rows = []
    for g in groups:
        operations = ", ".join(f"{_esc(op)} ({n:,})" for op, n in list(g.operations.items())[:3])
        tenants = ", ".join(f"{_esc(t)} ({n:,})" for t, n in list(g.tenants.items())[:3])
        rows.append(
            [_td(_esc(g.error_type or "(no exception type)"), text=True),
             _td(_esc(g.message), text=True),
             _td(f"{g.count:,}"), _td(f"{g.traces:,}"), _td(operations, text=True),
             _td(tenants, text=True), _td(_esc(_when(g.last))),
             _td(_link(phoenix_url, g.example, select_span=True))]
        )  # fmt: skip
    head = ("exception type", "message (scrubbed)", "spans", "traces", "operations", "tenants",
            "last seen", "latest trace")  # fmt: skip
    return (
        "<p>Failed spans at any depth grouped by exception type and message; credentials "
        "in messages are redacted.</p>" + _table(head, rows)
    )


def _slowest(records: Sequence[TraceMetrics], phoenix_url: str | None) -> str:
    slow = slowest_traces(records, 10)
    by_root = any(r.is_root for r in records)
    rows = [
        [_td(_esc(s.root.operation), text=True), _td(_esc(s.root.tenant_id or "(none)"), text=True),
         _td(_ms(s.root.duration_ms)), _td(_esc("failed" if s.root.status == "error" else "ok"),
         bad=s.root.status == "error"), _td(f"{s.spans:,}"),
         _td(f"{s.failed_spans:,}", bad=s.failed_spans > 0), _td(_esc(_when(s.root.timestamp))),
         _td(_link(phoenix_url, s.root, select_span=not by_root))]
        for s in slow
    ]  # fmt: skip
    what = "root" if by_root else "span"
    head = (f"{what} operation", "tenant", "duration ms", f"{what} status", "counted spans",
            "failed spans", "started", "trace in Phoenix")  # fmt: skip
    where = "opens the trace in Phoenix" if phoenix_url else "Phoenix's URL was not given"
    note = (
        f"The slowest traces by root duration; the trace id {where}."
        if by_root
        else f"No counted span is a root: the slowest spans, each with its trace; the trace "
        f"id {where}."
    )
    return f"<p>{note}</p>" + _table(head, rows)


def write_report(
    traces: Sequence[TraceMetrics],
    path: str | Path,
    *,
    title: str = "tenantrace report",
    source: str = "",
    phoenix_url: str | None = None,
    counting: str | None = None,
    truncated_at: int | None = None,
    top: int = 12,
) -> Path:
    """Write the report of ``traces`` (spans) to ``path`` and return it.

    Give every span (``PhoenixAnalytics.get_spans``) to count failures at any
    depth; the report says at the top what it counts (``counting`` overrides
    what it infers) and gives root (trace-level) figures apart. ``phoenix_url``
    links each listed trace to Phoenix's UI; ``truncated_at`` says the read
    stopped at that many spans; ``top`` is how many operations and tenants the
    plots show before "other". plotly.js is embedded once, so the report
    opens with no network. With no spans it says so instead of drawing empty plots.
    """
    records = list(traces)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    from_source = f" from {_esc(source)}" if source else ""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
        "<section id='overview'>",
        f"<h1>{_esc(title)}</h1>",
        f"<p>{len(records):,} spans{from_source}; generated {generated}.</p>",
    ]
    if not records:
        parts.append("<p class='empty'>No spans in this range: nothing to plot.</p></section>")
        parts.append("</body></html>")
        return _write(path, parts)
    parts.append(_overview(records, counting, truncated_at) + "</section>")
    operations_note, operations_tables, operation_figures = _operations(records, top)
    tenants_html, tenant_figures = _tenants(records, top)
    over_time_html, time_figures = _over_time(records, top)
    # (id, heading, above the plots, the plots, below them)
    sections: list[tuple[str, str, str, list[Any], str]] = [
        ("operations", "Per operation: every span", operations_note, operation_figures,
         operations_tables),
        ("traces", "Traces: root spans", _traces(records), [], ""),
        ("tenants", "Tenants side by side", tenants_html, tenant_figures, ""),
        ("over-time", "Over time", over_time_html, time_figures, ""),
        ("errors", "Top errors", _errors(records, phoenix_url), [], ""),
        ("slowest", "Slowest traces", _slowest(records, phoenix_url), [], ""),
    ]  # fmt: skip
    first = True
    for section_id, heading, body, figures, below in sections:
        parts.append(f"<section id='{section_id}'><h2>{_esc(heading)}</h2>{body}")
        for index, figure in enumerate(figures):
            parts.append(
                figure.to_html(
                    full_html=False,
                    include_plotlyjs=first,  # inline once: the file works offline
                    div_id=f"plot-{section_id}-{index}",
                )
            )
            first = False
        parts.append(f"{below}</section>")
    parts.append("</body></html>")
    return _write(path, parts)


def _write(path: str | Path, parts: list[str]) -> Path:
    target = Path(path)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
