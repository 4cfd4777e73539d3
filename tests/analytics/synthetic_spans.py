"""Spans as PhoenixAnalytics.get_spans returns them, made up with known figures.

Each trace is an ``agent.turn`` root with a ``rerank`` child and a few more
children drawn from ``operations`` other operations. The root never fails;
``rerank`` fails in every ``rerank_failure_every``-th trace, so failures exist
only below the roots, as in the issue that hid them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tenantrace.analytics.records import TraceMetrics

START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Made:
    spans: list[TraceMetrics]
    traces: int
    rerank_failures: int


def make_spans(
    traces: int = 200,
    *,
    tenants: tuple[str, ...] = ("acme", "globex", "initech"),
    operations: int = 34,
    children: int = 3,
    rerank_failure_every: int = 7,
    minutes: float = 60.0,
    seed: int = 7,
) -> Made:
    rng = random.Random(seed)
    names = [f"tool.step_{i:02d}" for i in range(operations)]
    spans: list[TraceMetrics] = []
    failures = 0
    for n in range(traces):
        tenant = tenants[n % len(tenants)]
        project = f"cogniverse-{tenant}"
        trace_id = f"{n + 1:032x}"
        began = START + timedelta(seconds=n * minutes * 60 / traces)
        root_ms = 50 + rng.random() * 400 + (2000 if n % 97 == 0 else 0)
        common = {
            "trace_id": trace_id,
            "profile": None,
            "strategy": None,
            "tenant_id": tenant,
            "project": project,
            "project_id": f"UHJvamVjdDo{tenants.index(tenant) + 1}",
            "session_id": f"{tenant}:s{n % 5}",
        }
        spans.append(
            TraceMetrics(
                timestamp=began,
                duration_ms=root_ms,
                operation="agent.turn",
                status="success",
                error=None,
                metadata={},
                span_id=f"{n:08x}00000000",
                parent_id=None,
                is_root=True,
                phoenix_id=f"U3Bhbjo{n}r",
                **common,
            )
        )
        failed = n % rerank_failure_every == 0
        failures += failed
        spans.append(
            TraceMetrics(
                timestamp=began + timedelta(milliseconds=5),
                duration_ms=root_ms / 3,
                operation="rerank",
                status="error" if failed else "success",
                error="rerank backend refused: api_key=sk-live-SECRET123 at https://u:pw@h/x"
                if failed
                else None,
                error_type="ConnectionError" if failed else None,
                metadata={},
                span_id=f"{n:08x}00000001",
                parent_id=f"{n:08x}00000000",
                is_root=False,
                phoenix_id=f"U3Bhbjo{n}a",
                **common,
            )
        )
        for c in range(children):
            spans.append(
                TraceMetrics(
                    timestamp=began + timedelta(milliseconds=10 + c),
                    duration_ms=rng.random() * 30,
                    operation=names[(n * children + c) % operations],
                    status="success",
                    error=None,
                    metadata={},
                    span_id=f"{n:08x}{c + 2:08x}",
                    parent_id=f"{n:08x}00000000",
                    is_root=False,
                    phoenix_id=f"U3Bhbjo{n}c{c}",
                    **common,
                )
            )
    spans.sort(key=lambda s: s.timestamp)
    return Made(spans=spans, traces=traces, rerank_failures=failures)
