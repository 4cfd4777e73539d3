"""Plotly figures of traces read back: latency per operation and over time, errors, sessions.

Needs the ``plots`` extra (plotly), imported when a figure is drawn.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tenantrace.analytics.phoenix import TraceMetrics
from tenantrace.analytics.summary import summarize, time_series

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = [
    "error_rate_by_operation",
    "latency_distribution",
    "latency_over_time",
    "sessions_per_tenant",
]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plots need plotly: pip install 'tenantrace[plots]'") from exc
    return go


def _label(text: str) -> str:
    # Span names and tenant ids are user data; plotly renders a subset of HTML
    # (links, styling) in labels.
    return html.escape(text, quote=False)


def latency_distribution(traces: Sequence[TraceMetrics]) -> Figure:
    """One box per operation: the spread of its latencies (ms)."""
    go = _go()
    by_operation: dict[str, list[float]] = defaultdict(list)
    for trace in traces:
        by_operation[trace.operation].append(trace.duration_ms)
    figure = go.Figure()
    for operation, latencies in sorted(by_operation.items()):
        figure.add_trace(go.Box(y=latencies, name=_label(operation), boxpoints="outliers"))
    figure.update_layout(title="Latency distribution per operation", yaxis_title="latency (ms)")
    return figure


def latency_over_time(traces: Sequence[TraceMetrics], bucket_seconds: float = 60.0) -> Figure:
    """p50 and p95 latency per time bucket (default one minute)."""
    from datetime import timedelta

    go = _go()
    series = time_series(traces, timedelta(seconds=bucket_seconds))
    starts = [point["start"] for point in series]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=starts, y=[p["p50_latency"] for p in series], name="p50", mode="lines+markers")
    )
    figure.add_trace(
        go.Scatter(x=starts, y=[p["p95_latency"] for p in series], name="p95", mode="lines+markers")
    )
    figure.update_layout(title="Latency over time", yaxis_title="latency (ms)")
    return figure


def error_rate_by_operation(traces: Sequence[TraceMetrics]) -> Figure:
    """The share of failed traces per operation."""
    go = _go()
    stats = summarize(traces, by="operation")
    figure = go.Figure(
        go.Bar(
            x=[_label(name) for name in stats],
            y=[s["error_rate"] for s in stats.values()],
            text=[f"{s['error_count']}/{s['count']}" for s in stats.values()],
        )
    )
    figure.update_layout(
        title="Error rate by operation",
        yaxis_title="error rate",
        yaxis_tickformat=".0%",
        yaxis_range=[0, 1],  # all-zero rates would otherwise get a -100%..100% axis
    )
    return figure


def sessions_per_tenant(traces: Sequence[TraceMetrics]) -> Figure:
    """Distinct sessions (OpenInference ``session.id``) seen per tenant."""
    go = _go()
    sessions: dict[str, set[str]] = defaultdict(set)
    for trace in traces:
        tenant = trace.tenant_id or "(none)"
        sessions.setdefault(tenant, set())
        if trace.session_id:
            sessions[tenant].add(trace.session_id)
    tenants = sorted(sessions)
    figure = go.Figure(
        go.Bar(x=[_label(t) for t in tenants], y=[len(sessions[t]) for t in tenants])
    )
    figure.update_layout(title="Sessions per tenant", yaxis_title="sessions")
    return figure
