"""A dead, black-holed, overloaded or slow collector never reaches the user's code.

Every fault is real: the exporters speak OTLP over loopback to a closed port, a
socket that accepts and never answers, a receiver answering HTTP 503 / gRPC
UNAVAILABLE, or one that answers slowly. The promises checked: decorated calls
never raise and return their value; ``force_flush`` / ``shutdown`` / ``health``
return within their timeouts (plus a generous margin for a loaded CI machine);
retries are bounded; every span that could not be delivered is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from reliability_fakes import (
    BlackHole,
    ManagerFactory,
    OtlpGrpcCollector,
    OtlpHttpCollector,
    closed_port,
)

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import trace_function

# Scheduling on a loaded 2-core CI machine: how late a timed call may return.
MARGIN_S = 1.0
EXPORT_TIMEOUT_MS = 1000
# The OTLP exporters' own retry cap (opentelemetry-exporter-otlp 1.45: 6 attempts).
MAX_ATTEMPTS_PER_BATCH = 6
PROTOCOLS = ["http/protobuf", "grpc"]


@dataclass
class Fault:
    endpoint: str
    collector: OtlpHttpCollector | OtlpGrpcCollector | None = None


def _endpoint(protocol: str, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return base + "/v1/traces" if protocol == "http/protobuf" else base


@pytest.fixture
def collector_for() -> Iterator[dict[str, OtlpHttpCollector | OtlpGrpcCollector]]:
    made: dict[str, OtlpHttpCollector | OtlpGrpcCollector] = {}
    yield made
    for collector in made.values():
        collector.stop()


def _fault(
    kind: str,
    protocol: str,
    black_hole: BlackHole,
    made: dict[str, OtlpHttpCollector | OtlpGrpcCollector],
) -> Fault:
    if kind == "refused":
        return Fault(_endpoint(protocol, closed_port()))
    if kind == "black-holed":
        return Fault(_endpoint(protocol, black_hole.port))
    collector = (
        OtlpHttpCollector() if protocol == "http/protobuf" else OtlpGrpcCollector()
    ).start()
    made[protocol] = collector
    collector.mode = "unavailable"
    return Fault(collector.endpoint, collector)


def _run_calls(manager: TelemetryManager, count: int) -> list[int]:
    """Decorated calls and manager spans of two tenants; returns the calls' results."""

    @trace_function(name="checkout")
    def checkout(order: int) -> int:
        return order * 2

    previous = install_manager(manager)
    try:
        results = []
        for i in range(count):
            with tenant_scope(f"tenant-{i % 2}"):
                results.append(checkout(i))
                with manager.span("inner", attributes={"order": i}):
                    pass
        return results
    finally:
        install_manager(previous)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["refused", "black-holed", "unavailable"])
def test_dead_collector_never_reaches_user_code_and_losses_are_counted(
    kind: str,
    protocol: str,
    otlp_manager: ManagerFactory,
    black_hole: BlackHole,
    collector_for: dict[str, OtlpHttpCollector | OtlpGrpcCollector],
) -> None:
    fault = _fault(kind, protocol, black_hole, collector_for)
    # A long schedule delay: all spans go out in one batch, so one export attempt
    # sequence is measured and the test stays short.
    manager = otlp_manager(fault.endpoint, protocol, timeout_ms=EXPORT_TIMEOUT_MS, delay_ms=200)
    assert _run_calls(manager, 20) == [i * 2 for i in range(20)]

    started = time.monotonic()
    first = manager.force_flush(timeout_millis=300)
    assert time.monotonic() - started < 0.3 + MARGIN_S

    # Let the export attempt run out its own timeout; then every span is accounted for.
    second = manager.force_flush(timeout_millis=EXPORT_TIMEOUT_MS * 3 + 2000)
    # Nothing was exported: a flush says so (the first, if it saw the attempt end).
    assert not (first and second)
    stats = manager.get_stats()
    assert stats["spans_ended"] == 40
    assert stats["exported_spans"] == 0
    assert stats["export_failures"] >= 1
    assert stats["failed_export_spans"] == 40
    assert stats["dropped_spans"] == 40
    assert stats["dropped_spans_by_tenant"] == {"tenant-0": 20, "tenant-1": 20}
    if fault.collector is not None:  # retried, but boundedly
        assert 1 <= fault.collector.attempts <= MAX_ATTEMPTS_PER_BATCH * stats["export_failures"]
        assert fault.collector.spans() == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_and_health_return_in_time_with_a_black_holed_collector(
    protocol: str, otlp_manager: ManagerFactory, black_hole: BlackHole
) -> None:
    # The exporter's own timeout is long: shutdown must not wait for it.
    manager = otlp_manager(_endpoint(protocol, black_hole.port), protocol, timeout_ms=20_000)
    _run_calls(manager, 10)

    started = time.monotonic()
    health = manager.health(timeout_millis=300)
    assert time.monotonic() - started < 0.3 + MARGIN_S
    assert health["status"] == "degraded"

    _run_calls(manager, 10)  # queued behind the stuck export
    started = time.monotonic()
    assert manager.shutdown(timeout_millis=500) is False  # could not flush, says so
    assert time.monotonic() - started < 0.5 + MARGIN_S
    # After shutdown decorated calls still work (as no-ops).
    assert _run_calls(manager, 3) == [0, 2, 4]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_collector_within_the_timeout_gets_every_span(
    protocol: str,
    otlp_manager: ManagerFactory,
    collector_for: dict[str, OtlpHttpCollector | OtlpGrpcCollector],
) -> None:
    collector = (
        OtlpHttpCollector() if protocol == "http/protobuf" else OtlpGrpcCollector()
    ).start()
    collector_for[protocol] = collector
    collector.mode = "slow"
    collector.hold_s = 0.2
    manager = otlp_manager(collector.endpoint, protocol, timeout_ms=5000, delay_ms=10)
    assert _run_calls(manager, 30) == [i * 2 for i in range(30)]
    assert manager.force_flush(timeout_millis=10_000)
    received = collector.wait_for(60)
    assert len(received) == 60
    assert sorted({(s.tenant, s.project) for s in received}) == [
        ("tenant-0", "cogniverse-tenant~0"),
        ("tenant-1", "cogniverse-tenant~1"),
    ]
    stats = manager.get_stats()
    assert stats["exported_spans"] == 60
    assert stats["dropped_spans"] == 0


def test_an_outage_is_logged_a_bounded_number_of_times(
    otlp_manager: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten failed batches: tenantrace logs the failure once, not per batch or per span."""
    caplog.set_level(logging.WARNING)
    manager = otlp_manager(_endpoint("http/protobuf", closed_port()), timeout_ms=200, delay_ms=5)
    for _ in range(10):
        _run_calls(manager, 5)
        assert manager.force_flush(timeout_millis=3000) is False  # each round's loss is reported
    stats = manager.get_stats()
    assert stats["export_failures"] >= 10
    ours = [r for r in caplog.records if r.name.startswith("tenantrace")]
    assert len(ours) == 1
    assert "counted in get_stats()" in ours[0].getMessage()
    # The OTLP exporter's own log lines are rate limited too: far fewer than one per batch.
    theirs = [r for r in caplog.records if r.name.startswith("opentelemetry")]
    assert len(theirs) <= 3, [r.getMessage() for r in theirs]


def test_a_blocking_queue_stops_blocking_callers_once_the_collector_is_down(
    otlp_manager: ManagerFactory,
) -> None:
    """``drop_on_queue_full=False`` applies back-pressure to a healthy collector only:
    with a dead one, a full queue drops at once instead of stalling every call."""
    manager = otlp_manager(
        _endpoint("http/protobuf", closed_port()), timeout_ms=2000, delay_ms=5, queue=20, batch=10
    )
    assert manager._pipeline is not None
    manager._pipeline._config.drop_on_queue_full = False
    _run_calls(manager, 10)
    assert manager.force_flush(5000) is False  # the first export fails: the collector is down
    assert manager.get_stats()["export_failures"] >= 1
    started = time.monotonic()
    assert _run_calls(manager, 100) == [i * 2 for i in range(100)]
    # 180 spans beyond a queue of 20: blocking 2 s for each would take minutes.
    assert time.monotonic() - started < 10
    assert manager.get_stats()["dropped_spans"] >= 100


def test_a_span_transform_that_raises_drops_only_that_span_never_sends_it_raw(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Scrubbing runs as the pipeline's span transform; if it fails on a span, that
    span is dropped and counted (sending it unscrubbed could leak a secret), the
    export thread survives, and the rest of the batch goes out."""
    memory = InMemorySpanExporter()

    def scrub(span: ReadableSpan) -> ReadableSpan:
        if span.name == "poison":
            raise RuntimeError("scrubber bug")
        return span

    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(schedule_delay_millis=5)),
        exporter=memory,
        span_transform=scrub,
    )
    for tenant in ("a", "b"):
        for name in ("ok-1", "poison", "ok-2"):
            with manager.span(name, tenant_id=tenant, attributes={"password": "hunter2"}):
                pass
    assert manager.force_flush(5000)
    assert sorted(s.name for s in memory.get_finished_spans()) == ["ok-1", "ok-1", "ok-2", "ok-2"]
    stats = manager.get_stats()
    assert stats["dropped_spans_by_tenant"] == {"a": 1, "b": 1}
    assert manager._pipeline is not None and manager._pipeline.stats.transform_failures == 2
    assert manager.health()["status"] == "healthy"  # the export thread is alive
    assert len([r for r in caplog.records if "span transform raised" in r.getMessage()]) == 1
    manager.shutdown()
