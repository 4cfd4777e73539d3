"""The RED metrics' own aggregation (data points handed to the readers) gives what the
SDK's instruments give for the same spans: the Prometheus text exposition, the OTLP
metrics a real receiver decodes, delta readers, and random batches (Hypothesis)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from observe_helpers import require_module
from observe_receivers import MetricsReceiver, attributes
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tenantrace.observe import RedMetrics
from tenantrace.observe.metrics import DURATION, DURATION_BUCKETS_S

_START = 1_700_000_000_000_000_000
_PROVIDERS: dict[str, TracerProvider] = {}


def _span(tenant: str, name: str, kind: SpanKind, code: StatusCode, ns: int) -> ReadableSpan:
    provider = _PROVIDERS.get(tenant)
    if provider is None:
        provider = _PROVIDERS[tenant] = TracerProvider(
            resource=Resource.create({"tenant.id": tenant})
        )
    span = provider.get_tracer("t").start_span(name, kind=kind, start_time=_START)
    if code is not StatusCode.UNSET:
        span.set_status(Status(code))
    span.end(end_time=_START + ns)
    return span  # type: ignore[return-value]


def _tenant_spans() -> list[ReadableSpan]:
    """Durations on, just off and far from the bounds; errors; folding (max_tenants=3)."""
    bounds = [round(bound * 1e9) for bound in DURATION_BUCKETS_S]
    durations = [0, 1, *bounds, *(b + 1 for b in bounds), *(b - 1 for b in bounds), 10**13]
    spans = []
    for index, ns in enumerate(durations * 3):
        tenant = f"t{index % 5}"
        kind = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL)[index % 3]
        code = (StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR)[index % 4 % 3]
        spans.append(_span(tenant, f"op{index % 4}", kind, code, ns))
    return spans


def _sdk_red(**options: Any) -> tuple[RedMetrics, InMemoryMetricReader]:
    """The SDK-instrument path (a provider of the caller's) with an in-memory reader."""
    reader = InMemoryMetricReader(**options)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "tenantrace-red-metrics"}),
        metric_readers=[reader],
        views=[
            View(
                instrument_name=DURATION,
                aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
            )
        ],
    )
    return RedMetrics(meter_provider=provider, max_tenants=3, max_operations=3), reader


def _points(data: Any) -> dict[tuple[str, tuple[Any, ...]], Any]:
    """Every data point by (metric, labels): values, bucket counts, min / max; sums
    approximately (ours add integer nanoseconds exactly, the SDK float seconds)."""
    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            assert scope.scope.name == "tenantrace.observe.metrics"
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = tuple(sorted((point.attributes or {}).items()))
                    key = (f"{metric.name}|{metric.unit}|{metric.description}", labels)
                    temporality = metric.data.aggregation_temporality
                    if hasattr(point, "bucket_counts"):
                        found[key] = (
                            temporality,
                            point.count,
                            pytest.approx(point.sum, rel=1e-12, abs=1e-15),
                            tuple(point.bucket_counts),
                            tuple(point.explicit_bounds),
                            point.min,
                            point.max,
                            tuple(point.exemplars),
                        )
                    else:
                        found[key] = (temporality, metric.data.is_monotonic, point.value)
    return found


def test_the_same_points_as_the_sdk_instruments() -> None:
    spans = _tenant_spans()
    sdk, sdk_reader = _sdk_red()
    reader = InMemoryMetricReader()
    ours = _own_with_reader(reader)
    for start in range(0, len(spans), 7):
        sdk.record_exported(spans[start : start + 7])
        ours.record_exported(spans[start : start + 7])
    expected = _points(sdk_reader.get_metrics_data())
    assert expected and _points(reader.get_metrics_data()) == expected
    assert ours.spans_recorded == sdk.spans_recorded == len(spans)
    assert ours.tenants.folded == sdk.tenants.folded > 0
    assert ours.operations.folded == sdk.operations.folded > 0
    sdk.shutdown()
    ours.shutdown()


def _own_with_reader(reader: Any, **options: Any) -> RedMetrics:
    """A RedMetrics with its own provider whose reader is ``reader`` (as if it had made
    it like its Prometheus or OTLP reader)."""
    original = RedMetrics._prometheus_reader

    def made(self: RedMetrics, port: int, host: str) -> Any:
        return reader

    RedMetrics._prometheus_reader = made  # type: ignore[method-assign]
    try:
        red = RedMetrics(prometheus_port=0, max_tenants=3, max_operations=3, **options)
    finally:
        RedMetrics._prometheus_reader = original  # type: ignore[method-assign]
    assert red._sdk is None
    return red


def _prometheus_text(red: RedMetrics) -> list[str]:
    from prometheus_client import generate_latest

    text = generate_latest(red.registry).decode()
    lines = []
    for line in text.splitlines():
        match = re.match(r"^(\S+_sum\{.*\}) (\S+)$", line)
        # sums: the same to 12 digits (integer nanoseconds vs float seconds)
        lines.append(f"{match.group(1)} {float(match.group(2)):.12g}" if match else line)
    return sorted(lines)


def test_the_same_prometheus_text_as_the_sdk_instruments() -> None:
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus")
    spans = _tenant_spans()
    ours = RedMetrics(prometheus_port=0, max_tenants=3, max_operations=3)
    assert ours._sdk is None
    sdk = RedMetrics(prometheus_port=0, max_tenants=3, max_operations=3)
    from tenantrace.observe._red_sdk import SdkRecorder

    sdk._sdk = SdkRecorder(sdk.meter_provider, sdk.tenants, sdk.operations, None)
    try:
        for start in range(0, len(spans), 11):
            ours.wrap(_Null()).export(spans[start : start + 11])
            sdk.wrap(_Null()).export(spans[start : start + 11])
        expected = _prometheus_text(sdk)
        assert any(line.startswith("tenantrace_errors_total{") for line in expected)
        assert any('le="0.005"' in line for line in expected)
        assert _prometheus_text(ours) == expected
    finally:
        ours.shutdown()
        sdk.shutdown()


class _Null(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _otlp(receiver: MetricsReceiver) -> dict[tuple[str, tuple[Any, ...]], Any]:
    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    request = receiver.requests[-1]
    for resource_metrics in request.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for point in data.data_points:
                    labels = tuple(sorted(attributes(point.attributes).items()))
                    key = (f"{scope.scope.name}|{metric.name}|{metric.unit}", labels)
                    if kind == "histogram":
                        found[key] = (
                            data.aggregation_temporality,
                            point.count,
                            pytest.approx(point.sum, rel=1e-12),
                            tuple(point.bucket_counts),
                            tuple(point.explicit_bounds),
                            point.min,
                            point.max,
                        )
                    else:
                        found[key] = (data.aggregation_temporality, data.is_monotonic, point.as_int)
    return found


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_the_same_otlp_metrics_as_the_sdk_instruments(
    temporality: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality)
    spans = _tenant_spans()
    received: list[dict[tuple[str, tuple[Any, ...]], Any]] = []
    for use_sdk in (True, False):
        receiver = MetricsReceiver()
        red = RedMetrics(
            otlp_endpoint=receiver.endpoint,
            export_interval_millis=3_600_000,
            max_tenants=3,
            max_operations=3,
        )
        if use_sdk:
            from tenantrace.observe._red_sdk import SdkRecorder

            red._sdk = SdkRecorder(red.meter_provider, red.tenants, red.operations, None)
        try:
            red.wrap(_Null()).export(spans[:40])
            red.force_flush(10_000)
            red.wrap(_Null()).export(spans[40:])  # a delta reader: only these
            red.force_flush(10_000)
            assert receiver.wait_for(lambda r=receiver: len(r.requests) >= 2)  # type: ignore[misc]
            received.append(_otlp(receiver))
        finally:
            red.shutdown()
            receiver.stop()
    assert received[0] and received[1] == received[0]
    temporalities = {value[0] for value in received[0].values()}
    assert temporalities == {1 if temporality == "delta" else 2}


def test_a_delta_reader_and_a_cumulative_reader_of_the_same_metrics() -> None:
    delta = InMemoryMetricReader(
        preferred_temporality={
            Counter: AggregationTemporality.DELTA,
            Histogram: AggregationTemporality.DELTA,
        }
    )
    red = _own_with_reader(delta)
    cumulative = red._readers[0]
    assert cumulative is delta
    first, second = _tenant_spans()[:20], _tenant_spans()[20:30]
    red.record_exported(first)
    one = _points(delta.get_metrics_data())
    red.record_exported(second)
    two = _points(delta.get_metrics_data())
    assert _points(delta.get_metrics_data()) == {}  # nothing since: no points
    sdk, sdk_reader = _sdk_red(preferred_temporality=delta._preferred_temporality)
    sdk.record_exported(first)
    assert _points(sdk_reader.get_metrics_data()) == one
    sdk.record_exported(second)
    assert _points(sdk_reader.get_metrics_data()) == two
    requests = sum(v[2] for k, v in two.items() if k[0].startswith("tenantrace.requests"))
    assert requests == 10  # the second batch alone
    red.shutdown()
    sdk.shutdown()


_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "other"])
_BOUNDS_NS = [round(bound * 1e9) for bound in DURATION_BUCKETS_S]
_DURATIONS = st.one_of(
    st.sampled_from([0, 1, 10**15, *_BOUNDS_NS, *(b + 1 for b in _BOUNDS_NS)]),
    st.integers(min_value=0, max_value=20 * 10**9),
)
_SPANS = st.lists(
    st.tuples(
        _NAMES,
        _NAMES,
        st.sampled_from(list(SpanKind)),
        st.sampled_from(list(StatusCode)),
        _DURATIONS,
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(_SPANS, min_size=1, max_size=4))
def test_random_batches_give_the_sdk_points(batches: list[list[Any]]) -> None:
    sdk, sdk_reader = _sdk_red()
    reader = InMemoryMetricReader()
    ours = _own_with_reader(reader)
    try:
        for batch in batches:
            spans = [_span(*fields) for fields in batch]
            sdk.record_exported(spans)
            ours.record_exported(spans)
            ours.record_exported(spans[: len(spans) // 2])  # re-sent: not counted again
        assert _points(reader.get_metrics_data()) == _points(sdk_reader.get_metrics_data())
        assert ours.spans_recorded == sdk.spans_recorded
    finally:
        sdk.shutdown()
        ours.shutdown()


def test_bounds_in_nanoseconds_bucket_like_float_seconds() -> None:
    from tenantrace.observe._red_aggregate import bounds_ns

    bounds = (0.001, 0.1, 0.3, 1e-9, 2.5, 1e30, -1.0)
    thresholds = bounds_ns(bounds)
    for bound, threshold in zip(bounds, thresholds, strict=True):
        if 0 <= threshold < 2**64:
            assert threshold / 1e9 <= bound < (threshold + 1) / 1e9
        elif bound < 0:
            assert threshold == -1
        else:
            assert math.isinf(bound) or bound * 1e9 >= 2.0**64


def test_without_the_readers_collect_callback_the_sdk_instruments_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SDK whose readers do not keep what ``RedProducer`` reads: the SDK path."""
    from tenantrace.observe import _red_producer

    def moved(reader: Any) -> Any:
        raise AttributeError("_instrument_class_temporality")

    monkeypatch.setattr(_red_producer, "_temporalities", moved)
    reader = InMemoryMetricReader()
    monkeypatch.setattr(RedMetrics, "_prometheus_reader", lambda self, port, host: reader)
    red = RedMetrics(prometheus_port=0)
    assert red._sdk is not None
    red.record_exported(_tenant_spans()[:10])
    assert red.spans_recorded == 10
    red.shutdown()


def test_a_span_re_sent_after_a_failed_export_is_counted_once() -> None:
    """The pipeline's narrowing (export/_delivery.py) re-sends the same span objects."""
    reader = InMemoryMetricReader()
    red = _own_with_reader(reader)
    spans = _tenant_spans()[:16]
    exporter = red.wrap(_Null())
    exporter.export(spans)
    exporter.export(spans[:8])
    exporter.export(spans[8:12])
    exporter.export([spans[3], spans[3]])
    assert red.spans_recorded == 16
    red.shutdown()
