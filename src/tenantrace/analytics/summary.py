"""Figures from traces read back: latency percentiles and error rates per group, over time."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal, TypedDict

from tenantrace.analytics._latency import LatencyFigures, latency_figures
from tenantrace.analytics.phoenix import TraceMetrics

__all__ = ["GroupStats", "TimeBucket", "summarize", "time_series"]

GroupBy = Literal["operation", "tenant", "profile", "strategy", "session"]

_KEYS: dict[str, Callable[[TraceMetrics], str | None]] = {
    "operation": lambda t: t.operation,
    "tenant": lambda t: t.tenant_id,
    "profile": lambda t: t.profile,
    "strategy": lambda t: t.strategy,
    "session": lambda t: t.session_id,
}


class GroupStats(LatencyFigures):
    """Latency and errors of one group of traces."""

    count: int
    error_count: int
    error_rate: float


class TimeBucket(TypedDict):
    """One interval of a time series."""

    start: datetime
    count: int
    error_count: int
    error_rate: float
    p50_latency: float
    p95_latency: float


def _group_stats(traces: Sequence[TraceMetrics]) -> GroupStats:
    latencies = sorted(t.duration_ms for t in traces if math.isfinite(t.duration_ms))
    errors = sum(1 for t in traces if t.status == "error")
    return GroupStats(
        count=len(traces),
        error_count=errors,
        error_rate=errors / len(traces) if traces else 0.0,
        **latency_figures(latencies),
    )


def summarize(traces: Iterable[TraceMetrics], by: GroupBy = "operation") -> dict[str, GroupStats]:
    """Latency percentiles and error rate per operation, tenant, profile, strategy or session.

    Traces without a value for ``by`` (no profile, say) are grouped under ``"(none)"``.
    """
    if by not in _KEYS:
        raise ValueError(f"by must be one of {sorted(_KEYS)}, got {by!r}")
    key = _KEYS[by]
    groups: dict[str, list[TraceMetrics]] = defaultdict(list)
    for trace in traces:
        groups[key(trace) or "(none)"].append(trace)
    return {name: _group_stats(members) for name, members in sorted(groups.items())}


def time_series(
    traces: Iterable[TraceMetrics], bucket: timedelta = timedelta(minutes=1)
) -> list[TimeBucket]:
    """Traces counted per ``bucket`` (aligned to the epoch), oldest first, gaps left out."""
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, got {bucket}")
    width = bucket.total_seconds()
    groups: dict[float, list[TraceMetrics]] = defaultdict(list)
    for trace in traces:
        stamp = trace.timestamp.timestamp()
        groups[stamp - stamp % width].append(trace)
    series: list[TimeBucket] = []
    for start, members in sorted(groups.items()):
        figures = _group_stats(members)
        series.append(
            TimeBucket(
                start=datetime.fromtimestamp(start, tz=members[0].timestamp.tzinfo),
                count=figures["count"],
                error_count=figures["error_count"],
                error_rate=figures["error_rate"],
                p50_latency=figures["p50_latency"],
                p95_latency=figures["p95_latency"],
            )
        )
    return series
