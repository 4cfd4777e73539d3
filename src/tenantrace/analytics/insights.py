"""What people look for after the averages: trace-level figures, top errors, slowest traces.

All take the spans of a range (``PhoenixAnalytics.get_spans``) and work on
what they are given; error text is scrubbed of credentials
(``tenantrace.export.secrets.redact_text``) before it is returned.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from tenantrace.analytics._latency import latency_figures
from tenantrace.analytics.records import TraceMetrics
from tenantrace.analytics.summary import NONE, group_key
from tenantrace.export.secrets import redact_text

__all__ = [
    "ErrorGroup",
    "Overview",
    "RootStats",
    "SlowTrace",
    "TenantStats",
    "overview",
    "root_summary",
    "scrub",
    "slowest_traces",
    "tenant_comparison",
    "top_errors",
]

_MAX_MESSAGE = 300


def scrub(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Error text fit to show: credentials redacted, one line, at most ``limit`` characters."""
    flat = " ".join(redact_text(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Overview(TypedDict):
    """Counts of a set of spans, at span and at trace level."""

    spans: int
    failed_spans: int
    traces: int
    roots: int
    failed_roots: int
    traces_with_failed_span: int
    projects: int
    tenants: int
    first: datetime | None
    last: datetime | None


def overview(records: Sequence[TraceMetrics]) -> Overview:
    """Spans, traces, and failures counted both ways (any span, the root)."""
    failed_traces = {(r.project, r.trace_id) for r in records if r.status == "error"}
    root_records = [r for r in records if r.is_root]
    stamps = [r.timestamp for r in records]
    return Overview(
        spans=len(records),
        failed_spans=sum(1 for r in records if r.status == "error"),
        traces=len({(r.project, r.trace_id) for r in records}),
        roots=len(root_records),
        failed_roots=sum(1 for r in root_records if r.status == "error"),
        traces_with_failed_span=len(failed_traces),
        projects=len({r.project for r in records}),
        tenants=len({r.tenant_id or NONE for r in records}),
        first=min(stamps) if stamps else None,
        last=max(stamps) if stamps else None,
    )


class RootStats(TypedDict):
    """Trace-level figures of traces whose root is one operation."""

    traces: int
    failed_roots: int
    traces_with_failed_span: int
    p50_latency: float
    p95_latency: float
    max_latency: float


def root_summary(records: Sequence[TraceMetrics]) -> dict[str, RootStats]:
    """Per root operation: its traces, how many failed at the root, how many had any failed span.

    A trace whose root succeeded may still hold failed spans (a retried or
    tolerated failure below it): ``traces_with_failed_span`` counts those too.
    Most traces first.
    """
    failed = {(r.project, r.trace_id) for r in records if r.status == "error"}
    groups: dict[str, list[TraceMetrics]] = defaultdict(list)
    for record in records:
        if record.is_root:
            groups[record.operation].append(record)
    result: dict[str, RootStats] = {}
    for name in sorted(groups, key=lambda n: (-len(groups[n]), n)):
        members = groups[name]
        figures = latency_figures(sorted(r.duration_ms for r in members))
        result[name] = RootStats(
            traces=len(members),
            failed_roots=sum(1 for r in members if r.status == "error"),
            traces_with_failed_span=sum(1 for r in members if (r.project, r.trace_id) in failed),
            p50_latency=figures["p50_latency"],
            p95_latency=figures["p95_latency"],
            max_latency=figures["max_latency"],
        )
    return result


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Failed spans with the same exception type and (scrubbed) message."""

    error_type: str | None
    message: str
    count: int
    traces: int
    operations: dict[str, int]  # most frequent first
    tenants: dict[str, int]
    first: datetime
    last: datetime
    example: TraceMetrics  # the latest span of the group


def top_errors(records: Iterable[TraceMetrics], n: int = 10) -> list[ErrorGroup]:
    """The ``n`` most frequent errors of failed spans at any depth, most frequent first."""
    groups: dict[tuple[str | None, str], list[TraceMetrics]] = defaultdict(list)
    for record in records:
        if record.status == "error":
            message = scrub(record.error or record.error_type or "error")
            groups[(record.error_type, message)].append(record)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0][1]))
    result = []
    for (kind, message), members in ordered[:n]:
        tenant = group_key("tenant")
        result.append(
            ErrorGroup(
                error_type=kind,
                message=message,
                count=len(members),
                traces=len({(m.project, m.trace_id) for m in members}),
                operations=dict(Counter(m.operation for m in members).most_common()),
                tenants=dict(Counter(tenant(m) for m in members).most_common()),
                first=min(m.timestamp for m in members),
                last=max(m.timestamp for m in members),
                example=max(members, key=lambda m: m.timestamp),
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class SlowTrace:
    """One of the slowest traces: its root and what the trace held."""

    root: TraceMetrics
    spans: int
    failed_spans: int


def slowest_traces(records: Sequence[TraceMetrics], n: int = 10) -> list[SlowTrace]:
    """The ``n`` traces with the longest roots, slowest first (spans counted among ``records``).

    With no roots among the records (spans of one operation at depth), the
    slowest spans stand in for their traces.
    """
    per_trace: Counter[tuple[str | None, str]] = Counter()
    failed: Counter[tuple[str | None, str]] = Counter()
    for record in records:
        per_trace[(record.project, record.trace_id)] += 1
        if record.status == "error":
            failed[(record.project, record.trace_id)] += 1
    candidates = [r for r in records if r.is_root] or list(records)
    slowest = sorted(candidates, key=lambda r: (-r.duration_ms, r.timestamp))[:n]
    return [
        SlowTrace(
            root=r,
            spans=per_trace[(r.project, r.trace_id)],
            failed_spans=failed[(r.project, r.trace_id)],
        )
        for r in slowest
    ]


class TenantStats(TypedDict):
    """One tenant's figures, for putting tenants side by side."""

    spans: int
    failed_spans: int
    error_rate: float
    traces: int
    traces_with_failed_span: int
    sessions: int
    p50_latency: float
    p95_latency: float
    p99_latency: float


def tenant_comparison(records: Sequence[TraceMetrics]) -> dict[str, TenantStats]:
    """Per tenant: spans, errors, traces, sessions and span latency; most spans first."""
    tenant = group_key("tenant")
    groups: dict[str, list[TraceMetrics]] = defaultdict(list)
    for record in records:
        groups[tenant(record)].append(record)
    result: dict[str, TenantStats] = {}
    for name in sorted(groups, key=lambda t: (-len(groups[t]), t)):
        members = groups[name]
        failed = sum(1 for m in members if m.status == "error")
        figures = latency_figures(sorted(m.duration_ms for m in members))
        result[name] = TenantStats(
            spans=len(members),
            failed_spans=failed,
            error_rate=failed / len(members),
            traces=len({(m.project, m.trace_id) for m in members}),
            traces_with_failed_span=len(
                {(m.project, m.trace_id) for m in members if m.status == "error"}
            ),
            sessions=len({m.session_id for m in members if m.session_id}),
            p50_latency=figures["p50_latency"],
            p95_latency=figures["p95_latency"],
            p99_latency=figures["p99_latency"],
        )
    return result
