"""Figures from spans read back: latency percentiles and error rates per group, over time.

Every function takes the records it is given as they are: give it every span
(``PhoenixAnalytics.get_spans``) to count failures at any depth, or the roots
only (``get_traces``, or ``roots()``) for trace-level figures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal, TypedDict

from tenantrace.analytics._latency import LatencyFigures, latency_figures
from tenantrace.analytics.records import TraceMetrics

__all__ = [
    "OTHER",
    "GroupStats",
    "TimeBucket",
    "choose_bucket",
    "group_key",
    "group_stats",
    "ranked_groups",
    "roots",
    "summarize",
    "time_series",
    "time_series_by",
]

GroupBy = Literal["operation", "tenant", "profile", "strategy", "session"]
NONE = "(none)"
OTHER = "other"

_KEYS: dict[str, Callable[[TraceMetrics], str | None]] = {
    "operation": lambda t: t.operation,
    "tenant": lambda t: t.tenant_id,
    "profile": lambda t: t.profile,
    "strategy": lambda t: t.strategy,
    "session": lambda t: t.session_id,
}
# Bucket widths a time series may take: the first giving at most ~60 points.
_BUCKETS = tuple(
    timedelta(seconds=s)
    for s in (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800)
)


class GroupStats(LatencyFigures):
    """Latency and errors of one group of spans."""

    count: int
    error_count: int
    error_rate: float
    trace_count: int


class TimeBucket(TypedDict):
    """One interval of a time series."""

    start: datetime
    count: int
    error_count: int
    error_rate: float
    p50_latency: float
    p95_latency: float


def group_key(by: GroupBy) -> Callable[[TraceMetrics], str]:
    """The group a record falls in for ``by`` (``"(none)"`` when it has no value)."""
    if by not in _KEYS:
        raise ValueError(f"by must be one of {sorted(_KEYS)}, got {by!r}")
    key = _KEYS[by]
    return lambda record: key(record) or NONE


def roots(records: Iterable[TraceMetrics]) -> list[TraceMetrics]:
    """The records that are their trace's root (one per trace, as the project sees it)."""
    return [record for record in records if record.is_root]


def group_stats(traces: Sequence[TraceMetrics]) -> GroupStats:
    latencies = sorted(t.duration_ms for t in traces if math.isfinite(t.duration_ms))
    errors = sum(1 for t in traces if t.status == "error")
    return GroupStats(
        count=len(traces),
        error_count=errors,
        error_rate=errors / len(traces) if traces else 0.0,
        trace_count=len({t.trace_id for t in traces}),
        **latency_figures(latencies),
    )


def summarize(traces: Iterable[TraceMetrics], by: GroupBy = "operation") -> dict[str, GroupStats]:
    """Latency percentiles and error rate per operation, tenant, profile, strategy or session.

    Records without a value for ``by`` (no profile, say) are grouped under ``"(none)"``.
    ``count`` counts records (spans); ``trace_count`` the distinct traces among them.
    """
    key = group_key(by)
    groups: dict[str, list[TraceMetrics]] = defaultdict(list)
    for trace in traces:
        groups[key(trace)].append(trace)
    return {name: group_stats(members) for name, members in sorted(groups.items())}


def ranked_groups(
    records: Iterable[TraceMetrics], by: GroupBy, top: int
) -> list[tuple[str, list[TraceMetrics]]]:
    """The ``top`` largest groups (most records first, then by name), then ``"other"``.

    ``"other"`` holds every record of the remaining groups, and is left out
    when there are none; its name says how many groups it holds.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    key = group_key(by)
    groups: dict[str, list[TraceMetrics]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    order = sorted(groups, key=lambda name: (-len(groups[name]), name))
    ranked = [(name, groups[name]) for name in order[:top]]
    rest = order[top:]
    if rest:
        others = [record for name in rest for record in groups[name]]
        noun = f"{by}s" if len(rest) > 1 else by
        ranked.append((f"{OTHER} ({len(rest)} {noun})", others))
    return ranked


def choose_bucket(records: Iterable[TraceMetrics], points: int = 60) -> timedelta:
    """The narrowest bucket width that gives a time series at most about ``points`` points."""
    stamps = [record.timestamp.timestamp() for record in records]
    if not stamps:
        return _BUCKETS[0]
    span = max(stamps) - min(stamps)
    for bucket in _BUCKETS:
        if span / bucket.total_seconds() <= points:
            return bucket
    return _BUCKETS[-1]


def time_series(
    traces: Iterable[TraceMetrics], bucket: timedelta = timedelta(minutes=1)
) -> list[TimeBucket]:
    """Records counted per ``bucket`` (aligned to the epoch), oldest first, gaps left out."""
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, got {bucket}")
    width = bucket.total_seconds()
    groups: dict[float, list[TraceMetrics]] = defaultdict(list)
    for trace in traces:
        stamp = trace.timestamp.timestamp()
        groups[stamp - stamp % width].append(trace)
    series: list[TimeBucket] = []
    for start, members in sorted(groups.items()):
        figures = group_stats(members)
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


def time_series_by(
    records: Iterable[TraceMetrics],
    by: GroupBy,
    bucket: timedelta = timedelta(minutes=1),
    *,
    top: int = 8,
) -> dict[str, list[TimeBucket]]:
    """One time series per group: the ``top`` largest groups, then ``"other"`` (as ranked)."""
    return {name: time_series(members, bucket) for name, members in ranked_groups(records, by, top)}
