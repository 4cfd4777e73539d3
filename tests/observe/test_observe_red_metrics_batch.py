"""RED metrics counted per batch (grouped by series) equal the same spans counted one
by one: the counters, the histogram's buckets / sum / count / min / max, the folding."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from tenantrace.observe import RedMetrics
from tenantrace.observe.metrics import DURATION, DURATION_BUCKETS_S

_START = 1_700_000_000_000_000_000
# Durations (ns) across the buckets, on and off their bounds.
_DURATIONS = [200_000, 1_000_000, 3_000_000, 10_000_000, 70_000_000, 1_500_000_000, 20 * 10**9]


def _red(max_tenants: int = 100) -> tuple[RedMetrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "test"}),
        metric_readers=[reader],
        views=[
            View(
                instrument_name=DURATION,
                aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
            )
        ],
    )
    return RedMetrics(meter_provider=provider, max_tenants=max_tenants), reader


def _spans() -> list[ReadableSpan]:
    """Many spans of one series (acme/checkout/server), a few of others, some failing."""
    providers = {
        tenant: TracerProvider(resource=Resource.create({"tenant.id": tenant}))
        for tenant in ("acme", "globex", "initech")
    }
    plan: list[tuple[str, str, SpanKind]] = [("acme", "checkout", SpanKind.SERVER)] * 300
    plan += [("acme", "lookup", SpanKind.CLIENT)] * 20
    plan += [("globex", "checkout", SpanKind.SERVER)] * 15
    plan += [("initech", "checkout", SpanKind.SERVER)] * 10  # folded when max_tenants=2
    spans: list[ReadableSpan] = []
    for index, (tenant, name, kind) in enumerate(plan):
        span = providers[tenant].get_tracer("t").start_span(name, kind=kind, start_time=_START)
        if index % 7 == 0:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_START + _DURATIONS[index % len(_DURATIONS)] + index)
        spans.append(span)  # type: ignore[arg-type]
    return spans


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = tuple(sorted((point.attributes or {}).items()))
                    if hasattr(point, "bucket_counts"):
                        value: Any = (
                            point.count,
                            round(point.sum, 9),
                            tuple(point.bucket_counts),
                            tuple(point.explicit_bounds),
                            point.min,
                            point.max,
                        )
                    else:
                        value = point.value
                    found[(metric.name, labels)] = value
    return found


def test_a_batch_counts_like_its_spans_one_by_one() -> None:
    spans = _spans()
    batched, batched_reader = _red(max_tenants=2)
    single, single_reader = _red(max_tenants=2)
    batched.record_once(spans + spans[:50])  # repeats in one batch: counted once
    for span in spans:
        single.record_once([span])
    single.record_once(spans[:50])  # a later batch of repeats: not counted again
    batched_points, single_points = _points(batched_reader), _points(single_reader)
    assert batched_points == single_points
    requests = {k[1]: v for k, v in batched_points.items() if k[0] == "tenantrace.requests"}
    server = (("operation", "checkout"), ("span_kind", "server"))
    assert requests[(server[0], server[1], ("tenant_id", "acme"))] == 300
    assert requests[(server[0], server[1], ("tenant_id", "other"))] == 10  # initech, folded
    histogram = batched_points[
        ("tenantrace.request.duration", (server[0], server[1], ("tenant_id", "acme")))
    ]
    assert histogram[0] == 300
    assert sum(histogram[2]) == 300
    assert batched.spans_recorded == single.spans_recorded == len(spans)
    assert batched.tenants.folded == single.tenants.folded == 10  # folded spans, not values
    batched.shutdown()
    single.shutdown()


def test_batches_add_up_across_calls() -> None:
    spans = _spans()
    batched, batched_reader = _red()
    single, single_reader = _red()
    for start in range(0, len(spans), 64):
        batched.record_once(spans[start : start + 64])
    for span in spans:
        single.record(span)
    assert _points(batched_reader) == _points(single_reader)
    batched.shutdown()
    single.shutdown()


def test_a_broken_span_costs_only_itself() -> None:
    spans = _spans()[:5]
    red, reader = _red()
    red.record_once([object(), *spans, None])  # type: ignore[list-item]
    assert red.spans_recorded == 5
    requests = {k: v for k, v in _points(reader).items() if k[0] == "tenantrace.requests"}
    assert sum(requests.values()) == 5
    red.shutdown()
