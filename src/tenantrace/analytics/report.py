"""One self-contained HTML report of traces: a summary table and the plots, readable offline."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tenantrace.analytics.phoenix import TraceMetrics
from tenantrace.analytics.plots import (
    error_rate_by_operation,
    latency_distribution,
    latency_over_time,
    sessions_per_tenant,
)
from tenantrace.analytics.summary import summarize

__all__ = ["write_report"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
)


def _summary_table(traces: Sequence[TraceMetrics], by: str) -> str:
    stats = summarize(traces, by=by)  # type: ignore[arg-type]
    head = "".join(
        f"<th>{h}</th>"
        for h in (by, "count", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms")
    )
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{s['count']}</td><td>{s['error_count']}</td>"
        f"<td>{s['error_rate']:.1%}</td><td>{s['p50_latency']:.1f}</td>"
        f"<td>{s['p95_latency']:.1f}</td><td>{s['p99_latency']:.1f}</td>"
        f"<td>{s['max_latency']:.1f}</td></tr>"
        for name, s in stats.items()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def write_report(
    traces: Sequence[TraceMetrics],
    path: str | Path,
    *,
    title: str = "tenantrace report",
    source: str = "",
) -> Path:
    """Write the report to ``path`` and return it.

    plotly.js is embedded once in the file, so the report opens with no
    network. With no traces the report says so instead of drawing empty plots.
    """
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(traces)} traces{' from ' + html.escape(source) if source else ''}; "
        f"generated {generated}.</p>",
    ]
    if traces:
        parts.append("<h2>Per operation</h2>" + _summary_table(traces, "operation"))
        parts.append("<h2>Per tenant</h2>" + _summary_table(traces, "tenant"))
        figures = (
            latency_distribution(traces),
            latency_over_time(traces),
            error_rate_by_operation(traces),
            sessions_per_tenant(traces),
        )
        for index, figure in enumerate(figures):
            parts.append(
                figure.to_html(
                    full_html=False,
                    include_plotlyjs=index == 0,  # inline once: the file works offline
                    div_id=f"plot-{index}",
                )
            )
    else:
        parts.append("<p class='empty'>No traces in this range: nothing to plot.</p>")
    parts.append("</body></html>")
    target = Path(path)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
