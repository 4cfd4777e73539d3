"""Oversized spans: truncated to the configured limits; every export request fits gRPC's 4 MiB.

The SDK applies ``SpanLimits`` from the config (``max_attribute_length``,
``max_span_attributes``, ``max_span_events``), but a batch is a number of
spans, not of bytes: 512 spans at those limits can encode to far more than the
4 MiB a gRPC server accepts by default. The pipeline splits batches by
estimated encoded size and trims the rare span too large for a request on its
own, counting what it removed in OTLP's ``dropped_*_count`` fields.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from reliability_fakes import ManagerFactory, OtlpGrpcCollector

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.pipeline import ExportPipeline
from tenantrace.export.repair import fit_span
from tenantrace.export.sizing import (
    MAX_REQUEST_BYTES,
    REQUEST_BUDGET_BYTES,
    plain_span_size,
    resource_size,
    span_size,
)
from tenantrace.testing import SpanCapture

TEN_MB = 10 * 1024 * 1024


def _huge_span(manager: TelemetryManager, name: str = "huge") -> None:
    with manager.span(name, tenant_id="acme") as span:
        for i in range(10_000):
            span.set_attribute(f"attr.{i:05d}", f"value-{i}")
        for i in range(10_000):
            span.add_event(f"event-{i}", {"i": i})
        span.set_attribute("payload", "x" * TEN_MB)  # set last: the SDK evicts the oldest


def test_a_10_mb_value_10k_attributes_and_10k_events_are_cut_to_the_limits(
    spans: SpanCapture,
) -> None:
    _huge_span(spans.manager)
    [exported] = spans.spans()
    config = spans.manager.config
    assert (config.max_attribute_length, config.max_span_attributes, config.max_span_events) == (
        4096,
        128,
        128,
    )
    raw = exported.raw
    assert raw is not None
    assert len(exported.attributes) == config.max_span_attributes
    assert exported.attributes["payload"] == "x" * config.max_attribute_length
    assert all(len(str(v)) <= config.max_attribute_length for v in exported.attributes.values())
    # The SDK keeps the newest attributes and events; it counts what it dropped.
    assert raw.dropped_attributes == 1 + 10_000 + 1 - config.max_span_attributes
    assert exported.events == [f"event-{i}" for i in range(10_000 - config.max_span_events, 10_000)]
    assert raw.dropped_events == 10_000 - config.max_span_events
    assert exported.tenant == "acme" and exported.project == "cogniverse-acme"
    assert encode_spans([raw]).ByteSize() < 32 * 1024


class _Recorder(SpanExporter):
    """Encodes every request with the OTLP protobuf encoder and keeps its size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.spans: list[ReadableSpan] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        size = encode_spans(spans).ByteSize()
        with self.lock:
            self.sizes.append(size)
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _worst_case_span(manager: TelemetryManager, events: int = 0) -> ReadableSpan:
    """Every attribute at the length limit; ``events`` events, each with full attributes.

    Captured as the SDK ended it, before the pipeline's own trimming (the span
    transform hook sees it first)."""
    raw: list[ReadableSpan] = []

    def keep(span: ReadableSpan) -> ReadableSpan:
        raw.append(span)
        return span

    capture = TelemetryManager(manager.config, exporter=_Recorder(), span_transform=keep)
    with capture.span("worst", tenant_id="acme") as span:
        for i in range(200):
            span.set_attribute(f"a{i:03d}", "y" * TEN_MB)
        for i in range(events):
            span.add_event(f"e{i}", {f"k{j:03d}": "z" * 8192 for j in range(200)})
    assert capture.force_flush(10_000)
    capture.shutdown()
    return raw[0]


def test_a_full_batch_of_the_largest_spans_the_limits_allow_fits_4_mib_requests() -> None:
    recorder = _Recorder()
    config = TelemetryConfig(
        batch_config=BatchExportConfig(max_export_batch_size=512, schedule_delay_millis=5)
    )
    manager = TelemetryManager(config, exporter=recorder)
    worst = _worst_case_span(manager)
    one = encode_spans([worst]).ByteSize()
    assert one > 128 * 4096  # 128 attributes of 4096 characters
    assert one * 512 > 60 * MAX_REQUEST_BYTES  # what one count-based batch would have been

    pipeline = manager._pipeline
    assert pipeline is not None
    for _ in range(512):
        pipeline.submit(worst, "acme")
    assert manager.force_flush(30_000)
    assert len(recorder.spans) == 512
    assert max(recorder.sizes) < MAX_REQUEST_BYTES
    assert len(recorder.sizes) >= one * 512 // MAX_REQUEST_BYTES
    stats = manager.get_stats()
    assert stats["exported_spans"] == 512 and stats["dropped_spans"] == 0
    manager.shutdown()


def test_a_span_too_large_for_any_request_is_trimmed_and_says_so() -> None:
    manager = TelemetryManager(TelemetryConfig(), exporter=_Recorder())
    worst = _worst_case_span(manager, events=128)  # 128 events x 128 attributes x 4096
    assert span_size(worst)[0] > 16 * MAX_REQUEST_BYTES  # 128 x 128 x 4096 characters
    fitted = fit_span(worst)
    size = encode_spans([fitted]).ByteSize()
    assert size < MAX_REQUEST_BYTES
    assert 0 < len(fitted.events) < 128
    assert fitted.dropped_events == 128 - len(fitted.events)
    assert dict(fitted.attributes or {}) == dict(worst.attributes or {})  # attributes kept
    assert (fitted.name, fitted.context, fitted.resource) == (
        worst.name,
        worst.context,
        worst.resource,
    )
    manager.shutdown()


def test_a_plain_span_too_large_for_a_request_is_trimmed_not_sent_whole() -> None:
    # Plain spans take the export thread's one-pass path; a huge name (span names
    # have no SDK limit) must still be trimmed, or the request would fail for every
    # tenant's spans in it.
    recorder = _Recorder()
    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(use_sync_export=True)), exporter=recorder
    )
    tracer = manager.tracer_for("acme")
    assert tracer is not None
    tracer.start_span("warm", attributes={"k": "v"}).end()  # the scope is known: plain path
    tracer.start_span("x" * 5_000_000, attributes={"k": "v"}).end()
    tracer.start_span("small", attributes={"k": "v"}).end()
    assert [len(s.name) < 5_000_000 for s in recorder.spans] == [True, True, True]
    assert max(recorder.sizes) < MAX_REQUEST_BYTES
    stats = manager.get_stats()
    assert stats["exported_spans"] == 3 and stats["dropped_spans"] == 0
    manager.shutdown()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "batch"])
def test_a_span_of_an_odd_shape_is_exported_and_never_raises(sync: bool) -> None:
    # A library passing name=None: the one-pass path cannot judge it, the full path
    # repairs it (a name that is not a string becomes its str()), and neither the
    # caller nor the rest of the batch suffers.
    recorder = _Recorder()
    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(use_sync_export=sync)), exporter=recorder
    )
    tracer = manager.tracer_for("acme")
    assert tracer is not None
    for name in ("warm", "ok-1", None, "ok-2"):
        with tracer.start_as_current_span(name):  # type: ignore[arg-type]
            pass
    assert manager.force_flush(5000)
    assert [s.name for s in recorder.spans] == ["warm", "ok-1", "None", "ok-2"]
    manager.shutdown()


def test_oversized_spans_reach_a_real_grpc_collector_with_its_default_4_mib_limit(
    otlp_manager: ManagerFactory, grpc_collector: OtlpGrpcCollector
) -> None:
    manager = otlp_manager(grpc_collector.endpoint, "grpc", timeout_ms=10_000, delay_ms=50)
    worst = _worst_case_span(manager)
    huge = _worst_case_span(manager, events=40)
    pipeline = manager._pipeline
    assert pipeline is not None
    for i in range(40):
        pipeline.submit(huge if i == 0 else worst, "acme")
    assert manager.force_flush(30_000)
    received = grpc_collector.wait_for(40)
    assert len(received) == 40
    assert max(grpc_collector.request_sizes) < MAX_REQUEST_BYTES
    assert len(grpc_collector.request_sizes) > 1
    trimmed = [s for s in received if s.dropped_events]
    assert len(trimmed) == 1 and trimmed[0].events + trimmed[0].dropped_events == 40
    stats = manager.get_stats()
    assert stats["exported_spans"] == 40
    assert stats["dropped_spans"] == 0
    assert stats["export_failures"] == 0


def test_a_span_name_protobuf_cannot_encode_does_not_sink_the_batch() -> None:
    """A lone surrogate (from surrogateescape-decoded bytes) in one tenant's span name
    would make the OTLP encoder reject the whole batch: every tenant's spans."""
    recorder = _Recorder()
    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(schedule_delay_millis=5)), exporter=recorder
    )
    for tenant in ("a", "b", "c"):
        with manager.span("GET /caf\udce9", tenant_id=tenant, attributes={"k\ud800": "v\udfff"}):
            pass
        with manager.span("fine", tenant_id=tenant, attributes={"big": 2**70}):
            pass
    assert manager.force_flush(5000)
    assert sorted(s.name for s in recorder.spans) == ["GET /caf\ufffd"] * 3 + ["fine"] * 3
    assert {
        dict(s.attributes or {}).get("k\ufffd") for s in recorder.spans if s.name != "fine"
    } == {"v\ufffd"}
    assert {dict(s.attributes or {}).get("big") for s in recorder.spans if s.name == "fine"} == {
        str(2**70)
    }
    assert manager.get_stats()["dropped_spans"] == 0
    manager.shutdown()


# -------------------------------------------------------------- properties

_text = (
    st.text(st.characters(codec="utf-8"), max_size=300)
    | st.text(string.printable, max_size=3000)
    | st.sampled_from(["\ud800", "caf\udce9", "\udfff\ud800"])  # protobuf cannot encode these
)
_scalar = _text | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
_value = (
    _scalar | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20) | st.lists(_text, max_size=5)
)
_attributes = st.dictionaries(st.text(min_size=1, max_size=40), _value, max_size=12)


_RESOURCE = Resource(
    {"service.name": "prop", "tenant.id": "prop", "openinference.project.name": "cogniverse-prop"}
)


@st.composite
def _spans(draw: st.DrawFn) -> ReadableSpan:
    """Any span the SDK could hand the pipeline (ids drawn, not random)."""
    ids = st.integers(1, 2**64 - 1)
    context = SpanContext(draw(ids), draw(ids), False, TraceFlags(1))
    links = [
        Link(SpanContext(draw(ids), draw(ids), True, TraceFlags(1)), draw(_attributes))
        for _ in range(draw(st.integers(0, 3)))
    ]
    events = [
        Event(draw(_text), draw(_attributes), timestamp=draw(st.integers(0, 2**63 - 1)))
        for _ in range(draw(st.integers(0, 4)))
    ]
    status = Status(StatusCode.ERROR, draw(_text)) if draw(st.booleans()) else Status()
    return ReadableSpan(
        name=draw(_text),
        context=context,
        parent=SpanContext(context.trace_id, draw(ids), True) if draw(st.booleans()) else None,
        resource=_RESOURCE,
        attributes=BoundedAttributes(None, draw(_attributes)),
        events=events,
        links=links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=status,
        start_time=draw(st.integers(0, 2**63 - 1)),
        end_time=draw(st.integers(0, 2**63 - 1)),
        instrumentation_scope=InstrumentationScope(draw(_text), draw(_text)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=_spans())
def test_the_size_estimate_is_an_upper_bound_of_the_real_encoding(span: ReadableSpan) -> None:
    estimate, encodable = span_size(span)
    if not encodable:  # the estimate knows: the pipeline repairs such a span first
        span = fit_span(span)
    encoded = encode_spans([span]).ByteSize()
    assert estimate + resource_size(span.resource) >= encoded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=_spans(), budget=st.integers(2_000, 40_000))
def test_a_fitted_span_always_encodes_and_fits_its_budget(span: ReadableSpan, budget: int) -> None:
    fitted = fit_span(span, budget)
    encoded = encode_spans([fitted]).SerializeToString()  # raises if not encodable
    assert len(encoded) <= max(budget, span_size(span)[0]) + resource_size(span.resource)
    assert span_size(fitted)[1]  # encodable
    if span_size(span)[0] > budget:  # what cannot be trimmed: the envelope, name, status
        unremovable = 1024 + 3 * (len(span.name) + len(span.status.description or ""))
        assert span_size(fitted)[0] <= budget + unremovable


def test_the_default_budget_leaves_room_under_the_grpc_limit() -> None:
    assert REQUEST_BUDGET_BYTES < MAX_REQUEST_BYTES == 4 * 1024 * 1024
    assert ExportPipeline.__init__.__kwdefaults__["max_request_bytes"] == REQUEST_BUDGET_BYTES


# The export thread's one-pass path for plain spans must agree with the full one.

_ascii = st.text(string.printable, max_size=200)
_plain_value = _ascii | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()


_plain_attributes = st.dictionaries(
    st.text(string.ascii_letters + ".", min_size=1, max_size=40), _plain_value, max_size=12
)


@st.composite
def _plain_spans(draw: st.DrawFn) -> ReadableSpan:
    """Spans with ASCII text and scalar attributes only (events and links too)."""
    ids = st.integers(1, 2**64 - 1)
    events = [
        Event(draw(_ascii), draw(_plain_attributes), timestamp=draw(st.integers(0, 2**63 - 1)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    links = [
        Link(SpanContext(draw(ids), draw(ids), True, TraceFlags(1)), draw(_plain_attributes))
        for _ in range(draw(st.integers(0, 2)))
    ]
    return ReadableSpan(
        name=draw(_ascii),
        context=SpanContext(draw(ids), draw(ids), False, TraceFlags(1)),
        resource=_RESOURCE,
        attributes=BoundedAttributes(None, draw(_plain_attributes)),
        events=events,
        links=links,
        status=Status(StatusCode.ERROR, draw(_ascii)) if draw(st.booleans()) else Status(),
        instrumentation_scope=_PLAIN_SCOPE,
    )


_PLAIN_SCOPE = InstrumentationScope("plain", "1.0")


def _all_keys(span: ReadableSpan) -> set[str]:
    keys = set(dict(span.attributes or {}))
    for item in (*span.events, *span.links):
        keys.update(dict(item.attributes or {}))
    return keys


@settings(max_examples=200, deadline=None)
@given(span=_plain_spans())
def test_a_plain_span_is_sized_in_one_pass_exactly_as_by_the_full_path(span: ReadableSpan) -> None:
    full, encodable = span_size(span)  # the first span of a scope takes the full path
    assert encodable
    assert plain_span_size(span) == full
    keys = _all_keys(span)
    free_text = bool(span.status.description or span.events or span.links)
    if free_text:  # judged by its shape: a scrubber sees every such span
        assert plain_span_size(span, keys) is None
        return
    assert plain_span_size(span, keys) == full
    for missing in keys:  # a key the transform has not cleared: the full path
        assert plain_span_size(span, keys - {missing}) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span=_spans())
def test_any_span_the_one_pass_path_takes_is_sized_as_by_the_full_path(span: ReadableSpan) -> None:
    full, encodable = span_size(span)
    plain = plain_span_size(span)
    assert plain is None or (plain == full and encodable)
    if not encodable:
        assert plain is None
