"""The RED aggregation's raw-key table: a restart never costs a batch its count, and
spans of kinds not counted are told apart by identity."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from tenantrace.instrumentation.providers import TenantResource
from tenantrace.observe import RedMetrics, _red_aggregate
from tenantrace.observe._red_aggregate import (
    DURATION_BUCKETS_S,
    CardinalityLimiter,
    SeriesAggregator,
)

_RESOURCE = TenantResource(Resource({}), "t", "p")


def _span(name: str, kind: SpanKind = SpanKind.SERVER, tenant: str = "t") -> ReadableSpan:
    resource = _RESOURCE if tenant == "t" else TenantResource(Resource({}), tenant, "p")
    return ReadableSpan(
        name=name,
        context=SpanContext(1, 2, False),
        resource=resource,
        start_time=0,
        end_time=10,
        kind=kind,
    )


@pytest.mark.parametrize("table", [1, 2, 4, 5, 7])
def test_a_table_restart_never_loses_a_batch(monkeypatch: pytest.MonkeyPatch, table: int) -> None:
    monkeypatch.setattr(_red_aggregate, "_MAX_SLOTS", table)
    aggregator = SeriesAggregator(
        CardinalityLimiter(100), CardinalityLimiter(100), DURATION_BUCKETS_S, None
    )
    batches = [[_span(name) for name in "abc"], [_span(name) for name in "defg"], [_span("a")]]
    for batch in batches:
        aggregator.add(batch)
    aggregator.flush()
    counts = {labels[1]: series.count for labels, series in aggregator.series.items()}
    assert counts == {"a": 2, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1}
    assert aggregator.spans_recorded == 8


def test_many_raw_tenants_past_the_table_are_all_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_red_aggregate, "_MAX_SLOTS", 64)
    red = RedMetrics(max_tenants=5)
    spans = [_span(f"op-{i % 7}", tenant=f"tenant-{i}") for i in range(2000)]
    for start in range(0, len(spans), 512):
        red.observe_batch(spans[start : start + 512])
    red.force_flush()
    assert red.spans_recorded == 2000
    assert sum(series.count for series in red._aggregator.series.values()) == 2000
    red.shutdown()


def test_spans_of_kinds_not_counted_are_told_apart_by_identity() -> None:
    red = RedMetrics(span_kinds=[SpanKind.SERVER])
    red.observe_batch([_span("op", SpanKind.SERVER), _span("op", SpanKind.CLIENT)])
    red.force_flush()
    assert red.spans_recorded == 1
    assert [series.count for series in red._aggregator.series.values()] == [1]
    red.shutdown()
