"""Plotly figures of spans read back: latency and errors per operation and tenant, over time.

Needs the ``plots`` extra (plotly), imported when a figure is drawn. Figures
with one entry per operation or tenant show the ``top`` largest groups and
one ``"other"`` entry for the rest, so 30 operations stay readable.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tenantrace.analytics.insights import tenant_comparison
from tenantrace.analytics.records import TraceMetrics
from tenantrace.analytics.summary import (
    OTHER,
    GroupBy,
    choose_bucket,
    group_stats,
    ranked_groups,
    time_series,
    time_series_by,
)

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = [
    "error_rate_by_operation",
    "error_rate_over_time",
    "latency_distribution",
    "latency_over_time",
    "sessions_per_tenant",
    "tenants_side_by_side",
]

# Plotly's default colour sequence; "other" is drawn in grey.
COLORWAY = (
    "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
    "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
)  # fmt: skip
OTHER_COLOR = "#8c8c8c"
_LABEL_CHARS = 48
_ROW_PX = 34  # height per box or bar of a horizontal chart


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plots need plotly: pip install 'tenantrace[plots]'") from exc
    return go


def _label(text: str, limit: int = _LABEL_CHARS) -> str:
    # Span names and tenant ids are user data; plotly renders a subset of HTML
    # (links, styling) in labels. Long names are cut (the hover shows them whole).
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(short, quote=False)


def _color(name: str, index: int) -> str:
    return OTHER_COLOR if name.startswith(OTHER) else COLORWAY[index % len(COLORWAY)]


def _rate_axis(rates: Sequence[float]) -> dict[str, Any]:
    """An axis from 0 a little past the highest rate, with ticks that tell small rates apart."""
    top = max(rates, default=0.0)
    return {
        "range": [0, min(1.0, max(0.05, top * 1.3))],
        "tickformat": ".1%" if top < 0.1 else ".0%",
    }


def _height(rows: int) -> int:
    return max(320, 140 + _ROW_PX * rows)


def latency_distribution(traces: Sequence[TraceMetrics], *, top: int = 12) -> Figure:
    """One horizontal box per operation (the ``top`` busiest, then "other"): latency (ms).

    The axis is logarithmic when latencies span more than two orders of magnitude.
    """
    go = _go()
    ranked = ranked_groups(traces, "operation", top)
    figure = go.Figure()
    # Busiest at the top: plotly draws the first category at the bottom.
    for index, (name, members) in reversed(list(enumerate(ranked))):
        figure.add_trace(
            go.Box(
                x=[m.duration_ms for m in members],
                name=_label(name),
                hovertext=html.escape(name, quote=False),
                orientation="h",
                boxpoints="outliers",
                marker_color=_color(name, index),
                showlegend=False,
            )
        )
    durations = [t.duration_ms for t in traces if t.duration_ms > 0]
    wide = bool(durations) and max(durations) > 100 * max(min(durations), 1e-3)
    figure.update_layout(
        title=f"Latency per operation, every span ({len(ranked)} groups)",
        xaxis_title="latency (ms)" + (", log scale" if wide else ""),
        xaxis_type="log" if wide else "linear",
        yaxis_automargin=True,
        height=_height(len(ranked)),
        margin={"l": 10, "r": 20, "t": 50, "b": 50},
    )
    return figure


def error_rate_by_operation(traces: Sequence[TraceMetrics], *, top: int = 12) -> Figure:
    """The share of failed spans per operation (the ``top`` busiest, then "other")."""
    go = _go()
    ranked = list(reversed(ranked_groups(traces, "operation", top)))
    stats = [group_stats(members) for _, members in ranked]
    figure = go.Figure(
        go.Bar(
            y=[_label(name) for name, _ in ranked],
            x=[s["error_rate"] for s in stats],
            orientation="h",
            text=[f"{s['error_count']:,}/{s['count']:,}" for s in stats],
            textposition="outside",
            marker_color=[_color(name, len(ranked) - 1 - i) for i, (name, _) in enumerate(ranked)],
            hovertext=[html.escape(name, quote=False) for name, _ in ranked],
        )
    )
    figure.update_layout(
        title="Error rate per operation, every span (failed/all)",
        # all-zero rates would otherwise get a -100%..100% axis
        xaxis={**_rate_axis([s["error_rate"] for s in stats]), "title": "error rate"},
        yaxis_automargin=True,
        height=_height(len(ranked)),
        margin={"l": 10, "r": 20, "t": 50, "b": 50},
    )
    return figure


def _bucket(traces: Sequence[TraceMetrics], bucket_seconds: float | None) -> timedelta:
    return choose_bucket(traces) if bucket_seconds is None else timedelta(seconds=bucket_seconds)


def _width(bucket: timedelta) -> str:
    seconds = int(bucket.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def latency_over_time(
    traces: Sequence[TraceMetrics],
    bucket_seconds: float | None = None,
    *,
    by: GroupBy | None = None,
    top: int = 8,
) -> Figure:
    """Latency per time bucket (by default about 60 buckets over the range).

    Without ``by``, p50 and p95 of all records; with ``by="tenant"`` or
    ``"operation"``, the p95 of each of the ``top`` largest groups and "other".
    """
    go = _go()
    bucket = _bucket(traces, bucket_seconds)
    figure = go.Figure()
    if by is None:
        series = time_series(traces, bucket)
        starts = [point["start"] for point in series]
        for key, name in (("p50_latency", "p50"), ("p95_latency", "p95")):
            figure.add_trace(
                go.Scatter(x=starts, y=[p[key] for p in series], name=name, mode="lines+markers")  # type: ignore[literal-required]
            )
        title = "Latency over time"
    else:
        groups = time_series_by(traces, by, bucket, top=top)
        for index, (name, points) in enumerate(groups.items()):
            figure.add_trace(
                go.Scatter(
                    x=[p["start"] for p in points],
                    y=[p["p95_latency"] for p in points],
                    name=_label(name, 32),
                    mode="lines+markers",
                    line_color=_color(name, index),
                )
            )
        title = f"p95 latency over time per {by}"
    figure.update_layout(
        title=f"{title} ({_width(bucket)} buckets)",
        yaxis_title="latency (ms)",
        xaxis_title="time (UTC)",
        legend_title_text=by or "",
    )
    return figure


def error_rate_over_time(
    traces: Sequence[TraceMetrics],
    bucket_seconds: float | None = None,
    *,
    by: GroupBy = "tenant",
    top: int = 8,
) -> Figure:
    """The share of failed spans per time bucket, one line per group (``top`` and "other")."""
    go = _go()
    bucket = _bucket(traces, bucket_seconds)
    figure = go.Figure()
    groups = time_series_by(traces, by, bucket, top=top)
    rates = [p["error_rate"] for points in groups.values() for p in points]
    for index, (name, points) in enumerate(groups.items()):
        figure.add_trace(
            go.Scatter(
                x=[p["start"] for p in points],
                y=[p["error_rate"] for p in points],
                customdata=[[p["error_count"], p["count"]] for p in points],
                hovertemplate="%{y:.1%} (%{customdata[0]}/%{customdata[1]})",
                name=_label(name, 32),
                mode="lines+markers",
                line_color=_color(name, index),
            )
        )
    figure.update_layout(
        title=f"Error rate over time per {by}, every span ({_width(bucket)} buckets)",
        yaxis={**_rate_axis(rates), "title": "error rate"},
        xaxis_title="time (UTC)",
        legend_title_text=by,
    )
    return figure


def tenants_side_by_side(traces: Sequence[TraceMetrics], *, top: int = 20) -> Figure:
    """Tenants next to each other: span latency p50/p95, error rate and sessions."""
    go = _go()
    from plotly.subplots import make_subplots

    stats = tenant_comparison(traces)
    names = list(stats)[:top]
    labels = [_label(n, 24) for n in names]
    figure = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=("span latency (ms)", "span error rate", "sessions"),
        horizontal_spacing=0.08,
    )
    for key, name, color in (
        ("p50_latency", "p50", COLORWAY[0]),
        ("p95_latency", "p95", COLORWAY[1]),
    ):
        figure.add_trace(
            go.Bar(x=labels, y=[stats[n][key] for n in names], name=name, marker_color=color),  # type: ignore[literal-required]
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Bar(
            x=labels,
            y=[stats[n]["error_rate"] for n in names],
            text=[f"{stats[n]['failed_spans']:,}/{stats[n]['spans']:,}" for n in names],
            name="error rate",
            marker_color=COLORWAY[2],
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    figure.add_trace(
        go.Bar(
            x=labels,
            y=[stats[n]["sessions"] for n in names],
            name="sessions",
            marker_color=COLORWAY[3],
            showlegend=False,
        ),
        row=1,
        col=3,
    )
    shown = f"{len(names)} of {len(stats)}" if len(stats) > len(names) else f"{len(names)}"
    figure.update_layout(
        title=f"Tenants side by side ({shown} tenants, most spans first)",
        barmode="group",
        height=420,
    )
    figure.update_yaxes(_rate_axis([stats[n]["error_rate"] for n in names]), row=1, col=2)
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
