"""A bad span never costs another span.

Several tenants' spans go out in one export request (OTLP groups them by
Resource). A span the OTLP encoder cannot encode used to fail that whole
request: every tenant's spans in it were lost. Now such a span is repaired
before export (or dropped alone, counted under its tenant), and a request that
still fails for a content reason is narrowed down to the span at fault, through
the real OTLP encoder and real OTLP receivers over gRPC and HTTP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from reliability_fakes import ManagerFactory, OtlpGrpcCollector, OtlpHttpCollector

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export import pipeline as pipeline_module
from tenantrace.export.pipeline import MAX_ISOLATION_ATTEMPTS
from tenantrace.export.repair import fit_span
from tenantrace.export.sizing import UnexportableSpanError

PROTOCOLS = ["grpc", "http/protobuf"]
TENANTS = [f"tenant-{i}" for i in range(5)]
# A long schedule delay: everything ended before force_flush goes out in one batch.
ONE_BATCH_MS = 10_000


@pytest.fixture(params=PROTOCOLS)
def collector(request: pytest.FixtureRequest) -> Iterator[OtlpGrpcCollector | OtlpHttpCollector]:
    made = OtlpGrpcCollector() if request.param == "grpc" else OtlpHttpCollector()
    made.start()
    yield made
    made.stop()


def _protocol(collector: OtlpGrpcCollector | OtlpHttpCollector) -> str:
    return "grpc" if isinstance(collector, OtlpGrpcCollector) else "http/protobuf"


def _good_spans(manager: TelemetryManager, name: str) -> None:
    for tenant in TENANTS:
        with manager.span(name, tenant_id=tenant, attributes={"ok": True}):
            pass


def _expected_good() -> list[tuple[str | None, str]]:
    return sorted((t, n) for t in TENANTS for n in ("before", "after"))


def test_a_span_named_by_an_int_costs_no_other_tenant_a_span(
    collector: OtlpGrpcCollector | OtlpHttpCollector, otlp_manager: ManagerFactory
) -> None:
    """The issue as reported: ``manager.span(12345, tenant_id="noisy")`` in a batch
    with five other tenants' spans: every span arrives, the int name as "12345"."""
    manager = otlp_manager(collector.endpoint, _protocol(collector), delay_ms=ONE_BATCH_MS)
    _good_spans(manager, "before")
    with manager.span(12345, tenant_id="noisy"):  # type: ignore[arg-type]
        pass
    _good_spans(manager, "after")
    assert manager.force_flush(5000)
    received = collector.wait_for(11)
    assert sorted((s.tenant, s.name) for s in received if s.tenant != "noisy") == _expected_good()
    assert [s.name for s in received if s.tenant == "noisy"] == ["12345"]
    stats = manager.get_stats()
    assert stats["exported_spans"] == 11 and stats["dropped_spans"] == 0
    assert stats["span_names_converted"] == 1


def _bad_content_spans(manager: TelemetryManager) -> None:
    """Spans the SDK accepts and the OTLP encoder refuses, from the SDK's own tracer
    (no tenantrace check at start): only the export path stands between them and
    the other tenants' spans."""
    tracer = manager.tracer_for("noisy")
    assert tracer is not None
    tracer.start_span(12345).end()  # type: ignore[arg-type]
    tracer.start_span("lone \ud800 surrogate").end()
    tracer.start_span(
        "big ints", attributes={"big": 10**30, "giant": 10**5000, "nan": math.nan}
    ).end()
    slipped = tracer.start_span("slipped in", attributes={"kept": "yes"})
    # Values the SDK would have refused, put in past its checks (its internals).
    slipped._attributes._dict["object"] = object()  # type: ignore[attr-defined]
    slipped._attributes._dict[7] = "an int key"  # type: ignore[attr-defined]
    slipped.end()
    tracer.start_span("float end time").end(end_time=float(time.time_ns()))  # type: ignore[arg-type]
    evented = tracer.start_span("odd event")
    evented.add_event("event \udcff", timestamp=float(time.time_ns()))  # type: ignore[arg-type]
    evented.end()
    errored = tracer.start_span("odd status")
    errored.set_status(Status(StatusCode.ERROR, "bad \udcff description"))
    errored.end()


def test_spans_the_encoder_refuses_are_repaired_and_the_batch_survives(
    collector: OtlpGrpcCollector | OtlpHttpCollector, otlp_manager: ManagerFactory
) -> None:
    manager = otlp_manager(collector.endpoint, _protocol(collector), delay_ms=ONE_BATCH_MS)
    _good_spans(manager, "before")
    _bad_content_spans(manager)
    _good_spans(manager, "after")
    assert manager.force_flush(5000)
    received = collector.wait_for(17)
    assert sorted((s.tenant, s.name) for s in received if s.tenant != "noisy") == _expected_good()
    repaired = {s.name: s for s in received if s.tenant == "noisy"}
    assert set(repaired) == {
        "12345",
        "lone \ufffd surrogate",
        "big ints",
        "slipped in",
        "float end time",
        "odd event",
        "odd status",
    }
    big = repaired["big ints"].attributes
    assert big["big"] == str(10**30)  # beyond int64: its decimal string
    assert big["giant"].startswith("0x")  # past Python's digit limit: hexadecimal
    assert math.isnan(big["nan"])  # NaN encodes as it is
    slipped = repaired["slipped in"]
    assert slipped.attributes["kept"] == "yes" and "object" not in slipped.attributes
    assert slipped.dropped_attributes == 2  # the object value and the int key, counted
    assert repaired["odd event"].events == 1
    stats = manager.get_stats()
    assert stats["exported_spans"] == 17
    assert stats["dropped_spans"] == 0 and stats["export_failures"] == 0
    assert stats["repaired_spans"] == 7


def _made(**fields: object) -> ReadableSpan:
    """A span as a transform could make it, fields of any type."""
    values: dict[str, object] = {
        "name": "made",
        "context": SpanContext(1, 2, False),
        "resource": Resource({"tenant.id": "noisy"}),
        "start_time": 1,
        "end_time": 2,
    }
    values.update(fields)
    return ReadableSpan(**values)  # type: ignore[arg-type]


def test_every_field_the_encoder_refuses_is_repaired_or_the_span_refused() -> None:
    """What the SDK does not check and a span transform could produce: each repaired
    span encodes with the real OTLP encoder; a span without a readable context or
    start time cannot be repaired, and says so (the pipeline drops it alone)."""
    odd = _made(
        name=b"bytes name",
        kind="server",
        parent=SpanContext(2**200, 1, True),
        status=Status(StatusCode.ERROR, "fine"),
        links=[Link(SpanContext(2**200, 2**70, False)), Link(SpanContext(3, 4, False))],
        events=[Event("ev", {"k": 1}, timestamp="yesterday")],  # type: ignore[arg-type]
        start_time=1.5e18,
        instrumentation_scope=InstrumentationScope(42, None),  # type: ignore[arg-type]
    )
    with pytest.raises(Exception):  # noqa: B017 - any error: the encoder refuses it
        encode_spans([odd])
    fitted = fit_span(odd)
    encode_spans([fitted])  # raises if anything is still unencodable
    assert fitted.name == "bytes name" and fitted.kind is SpanKind.INTERNAL
    assert fitted.parent is None and fitted.start_time == 1_500_000_000_000_000_000
    assert len(fitted.links) == 1 and fitted.dropped_links == 1
    assert len(fitted.events) == 0 and fitted.dropped_events == 1
    assert fitted.status.description == "fine"
    assert fitted.instrumentation_scope is not None and fitted.instrumentation_scope.name == "42"
    for unrepairable in (_made(context=None), _made(start_time="now")):
        with pytest.raises(UnexportableSpanError):
            fit_span(unrepairable)


def test_a_span_the_checks_miss_is_dropped_alone_by_the_real_encoder(
    collector: OtlpGrpcCollector | OtlpHttpCollector,
    otlp_manager: ManagerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety net: as if the pipeline's own checks had a gap, a span the encoder
    refuses reaches the exporter (gRPC's raises, HTTP's returns FAILURE). The real
    encoder, run locally, finds it; it alone is dropped, the rest is sent once more."""
    monkeypatch.setattr(
        pipeline_module, "plain_span_size", lambda span, keys=None, unchanged=None: 300
    )
    manager = otlp_manager(collector.endpoint, _protocol(collector), delay_ms=ONE_BATCH_MS)
    _good_spans(manager, "before")
    tracer = manager.tracer_for("noisy")
    assert tracer is not None
    tracer.start_span(12345).end()  # type: ignore[arg-type]
    _good_spans(manager, "after")
    assert manager.force_flush(5000)  # a span's content is not a collector failure
    received = collector.wait_for(10)
    assert sorted((s.tenant, s.name) for s in received) == _expected_good()
    stats = manager.get_stats()
    assert stats["exported_spans"] == 10
    assert stats["unexportable_spans"] == 1
    assert stats["dropped_spans_by_tenant"] == {"noisy": 1}
    assert stats["export_failures"] == 0


def test_sync_mode_repairs_too_and_a_bad_span_never_trips_the_breaker(
    grpc_collector: OtlpGrpcCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        pipeline_module, "plain_span_size", lambda span, keys=None, unchanged=None: 300
    )
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=grpc_collector.endpoint,
            batch_config=BatchExportConfig(use_sync_export=True),
        )
    )
    try:
        tracer = manager.tracer_for("noisy")
        assert tracer is not None
        with manager.span("first", tenant_id="tenant-0"):
            pass
        tracer.start_span(12345).end()  # type: ignore[arg-type]
        started = time.monotonic()
        with manager.span("next", tenant_id="tenant-1"):
            pass
        assert time.monotonic() - started < 0.5
        stats = manager.get_stats()
        assert stats["export_paused"] is False and stats["skipped_spans"] == 0
        assert stats["unexportable_spans"] == 1
        assert sorted(s.name for s in grpc_collector.wait_for(2)) == ["first", "next"]
        assert manager.force_flush()
    finally:
        manager.shutdown(timeout_millis=1000)


# ------------------------------------------- exporters other than OTLP's


class _Picky(SpanExporter):
    """Raises on any request holding a span named "poison" (a serialiser bug)."""

    def __init__(self) -> None:
        self.calls = 0
        self.exported: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if any(span.name == "poison" for span in spans):
            raise ValueError("cannot serialise a poison span")
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _Failing(SpanExporter):
    """A collector failure: returns FAILURE, or raises ``error``, on every call."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


def _manager(exporter: SpanExporter) -> TelemetryManager:
    config = TelemetryConfig(batch_config=BatchExportConfig(schedule_delay_millis=ONE_BATCH_MS))
    return TelemetryManager(config, exporter=exporter)


def _spans(manager: TelemetryManager, count: int, poison: Sequence[int] = ()) -> None:
    for i in range(count):
        name, tenant = ("poison", "noisy") if i in poison else ("work", TENANTS[i % 5])
        with manager.span(name, tenant_id=tenant):
            pass


def test_an_exporter_that_raises_on_one_span_has_the_request_bisected() -> None:
    exporter = _Picky()
    manager = _manager(exporter)
    _spans(manager, 40, poison=(7, 31))
    assert manager.force_flush(5000)
    assert len(exporter.exported) == 38
    assert {s.name for s in exporter.exported} == {"work"}
    stats = manager.get_stats()
    assert stats["unexportable_spans"] == 2
    assert stats["dropped_spans_by_tenant"] == {"noisy": 2}
    assert stats["export_failures"] == 0
    # Each part is sent at most once: two bad spans in 40 cost about 2 x 2 log2(40) calls.
    assert exporter.calls <= 1 + 2 * 2 * 6
    manager.shutdown()


@pytest.mark.parametrize(
    "error",
    [None, ConnectionRefusedError("collector down")],
    ids=["returns-failure", "raises-transport-error"],
)
def test_a_collector_failure_is_never_retried_by_the_pipeline(error: Exception | None) -> None:
    """A transient failure (the exporter's own bounded retries already ran) costs the
    request, once: no bisection, no retry, counted, and force_flush says so."""
    exporter = _Failing(error)
    manager = _manager(exporter)
    _spans(manager, 40)
    assert manager.force_flush(5000) is False
    assert exporter.calls == 1
    stats = manager.get_stats()
    assert stats["export_failures"] == 1 and stats["failed_export_spans"] == 40
    assert stats["unexportable_spans"] == 0
    manager.shutdown()


def test_an_exporter_that_raises_on_everything_is_a_failure_not_bad_content() -> None:
    """Nothing went through: the exporter failed, not the spans. Bounded attempts."""
    exporter = _Failing(RuntimeError("exporter bug"))
    manager = _manager(exporter)
    _spans(manager, 100)
    assert manager.force_flush(5000) is False
    assert exporter.calls <= 1 + MAX_ISOLATION_ATTEMPTS
    stats = manager.get_stats()
    assert stats["unexportable_spans"] == 0
    assert stats["failed_export_spans"] == 100 and stats["dropped_spans"] == 100
    manager.shutdown()
