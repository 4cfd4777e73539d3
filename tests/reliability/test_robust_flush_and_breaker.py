"""Honest flush and stats; sync mode backs off from a dead collector.

- ``force_flush()`` returns False when an export failed since the previous
  flush (each loss reported once), in batch and in sync mode.
- Sync mode with no collector: a span's exit costs at most about the capped
  export timeout (1 s; it was ~16 s), then a circuit breaker skips exports for
  a growing interval, counting the spans dropped meanwhile, and lets one probe
  through after it: a real gRPC receiver stopped and restarted on the same port
  gets the spans again.
- ``get_stats()`` keeps its final figures after ``shutdown()``.
- ``health()`` and ``tenantrace doctor`` say what the stats say; doctor against
  a dead collector finishes in well under 3 s, and a gRPC exporter pointed at an
  HTTP port gets a protocol hint.
"""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from reliability_fakes import OtlpGrpcCollector, OtlpHttpCollector, closed_port

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.cli import main
from tenantrace.instrumentation.exporters import SYNC_EXPORT_TIMEOUT_MILLIS

PROTOCOLS = ["grpc", "http/protobuf"]
MODES = ["batch", "sync"]
# Slack for a loaded 2-core machine.
MARGIN_S = 1.0


def _endpoint(protocol: str, port: int) -> str:
    if protocol == "grpc":
        return f"127.0.0.1:{port}"
    return f"http://127.0.0.1:{port}/v1/traces"


def _manager(endpoint: str, protocol: str = "grpc", *, sync: bool = False) -> TelemetryManager:
    return TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,  # type: ignore[arg-type]
            batch_config=BatchExportConfig(
                use_sync_export=sync, export_timeout_millis=500, schedule_delay_millis=10
            ),
        )
    )


def _emit(manager: TelemetryManager, name: str, count: int = 1, tenants: int = 2) -> None:
    for i in range(count):
        with manager.span(name, tenant_id=f"tenant-{i % tenants}"):
            pass


# ------------------------------------------------------------------ flush


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_force_flush_says_false_when_nothing_could_be_exported(protocol: str, mode: str) -> None:
    manager = _manager(_endpoint(protocol, closed_port()), protocol, sync=mode == "sync")
    try:
        _emit(manager, "lost", 10)
        assert manager.force_flush(5000) is False
        stats = manager.get_stats()
        assert stats["exported_spans"] == 0
        assert stats["dropped_spans_by_tenant"] == {"tenant-0": 5, "tenant-1": 5}
        assert manager.force_flush(5000) is True  # each loss is reported once
    finally:
        manager.shutdown(timeout_millis=1000)


def test_force_flush_is_true_when_everything_went_out(grpc_collector: OtlpGrpcCollector) -> None:
    manager = _manager(grpc_collector.endpoint)
    try:
        _emit(manager, "kept", 10)
        assert manager.force_flush(5000) is True
        assert len(grpc_collector.wait_for(10)) == 10
    finally:
        manager.shutdown(timeout_millis=1000)


# ----------------------------------------------------- sync mode's breaker


def _timed(manager: TelemetryManager, name: str, tenant: str = "tenant-0") -> float:
    started = time.monotonic()
    with manager.span(name, tenant_id=tenant):
        pass
    return time.monotonic() - started


def test_sync_mode_backs_off_from_a_dead_collector_and_recovers_on_the_same_port() -> None:
    collector = OtlpGrpcCollector().start()
    restarted: OtlpGrpcCollector | None = None
    manager = TelemetryManager(
        TelemetryConfig(  # the default export timeout (30 s), capped in sync mode
            otlp_endpoint=collector.endpoint,
            batch_config=BatchExportConfig(use_sync_export=True),
        )
    )
    try:
        assert _timed(manager, "up") < 1.0
        assert [s.name for s in collector.wait_for(1)] == ["up"]

        collector.stop()
        # The first span after the collector died waits out one short, bounded attempt...
        assert _timed(manager, "first-failure") < SYNC_EXPORT_TIMEOUT_MILLIS / 1000 + MARGIN_S
        stats = manager.get_stats()
        assert stats["export_failures"] == 1 and stats["export_paused"] is True
        # ...then exports are skipped for a while: spans cost nothing and are counted.
        started = time.monotonic()
        _emit(manager, "skipped", 50)
        assert time.monotonic() - started < 0.5
        stats = manager.get_stats()
        assert stats["skipped_spans"] == 50
        assert stats["dropped_spans_by_tenant"] == {"tenant-0": 26, "tenant-1": 25}
        assert manager.force_flush() is False
        health = manager.health()
        assert health["status"] == "degraded" and "circuit breaker" in health["error"]

        restarted = OtlpGrpcCollector(collector.port).start()  # same port
        # After the interval one span goes through as a probe; it succeeds and the
        # breaker closes (a failed probe doubles the interval: 1 s, 2 s, 4 s...).
        deadline = time.monotonic() + 20
        while not restarted.spans() and time.monotonic() < deadline:
            assert _timed(manager, "probe") < SYNC_EXPORT_TIMEOUT_MILLIS / 1000 + MARGIN_S
            time.sleep(0.05)
        assert restarted.spans(), "the breaker never let a probe through to the collector"
        assert manager.get_stats()["export_paused"] is False
        _emit(manager, "after", 6)
        assert [s.name for s in restarted.wait_for(7)].count("after") == 6

        stats = manager.get_stats()
        assert stats["spans_ended"] == stats["exported_spans"] + stats["dropped_spans"]
        assert stats["exported_spans"] == 1 + 1 + 6  # up, the probe, after
        manager.force_flush()  # reports the probes skipped before the collector was back
        assert manager.force_flush() is True
    finally:
        manager.shutdown(timeout_millis=1000)
        collector.stop()
        if restarted is not None:
            restarted.stop()


def test_a_dead_collector_in_sync_mode_costs_each_span_at_most_the_capped_timeout() -> None:
    """Over three seconds of spans with nothing listening: a handful of attempts,
    each bounded, and every other span skipped at once."""
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=f"127.0.0.1:{closed_port()}",
            batch_config=BatchExportConfig(use_sync_export=True),
        )
    )
    try:
        costs = []
        stop_at = time.monotonic() + 3
        while time.monotonic() < stop_at:
            costs.append(_timed(manager, "span"))
            time.sleep(0.01)
        assert max(costs) < SYNC_EXPORT_TIMEOUT_MILLIS / 1000 + MARGIN_S
        stats = manager.get_stats()
        # The first failure, then the probes after 1 s and after 2 s more.
        failures = stats["export_failures"]
        assert 1 <= failures <= 3
        assert len([c for c in costs if c > 0.05]) <= failures  # a refusal can be quick too
        assert stats["skipped_spans"] == len(costs) - failures
        assert stats["dropped_spans"] == len(costs)
    finally:
        manager.shutdown(timeout_millis=1000)


# ---------------------------------------------------- stats after shutdown


@pytest.mark.parametrize("mode", MODES)
def test_get_stats_keeps_its_final_figures_after_shutdown(mode: str) -> None:
    memory = InMemorySpanExporter()
    manager = TelemetryManager(
        TelemetryConfig(
            batch_config=BatchExportConfig(use_sync_export=mode == "sync", schedule_delay_millis=10)
        ),
        exporter=memory,
    )
    _emit(manager, "work", 7)
    assert manager.shutdown(timeout_millis=5000)
    stats = manager.get_stats()
    assert stats["spans_started"] == 7
    assert stats["spans_ended"] == 7 and stats["exported_spans"] == 7
    assert stats["dropped_spans"] == 0 and stats["queued_spans"] == 0
    assert stats["enabled"] is False and stats["export_threads"] == 0
    assert len(memory.get_finished_spans()) == 7


def test_final_losses_are_still_counted_after_shutdown() -> None:
    manager = _manager(_endpoint("grpc", closed_port()))
    _emit(manager, "lost", 4)
    assert manager.shutdown(timeout_millis=5000) is False  # it could not deliver them
    stats = manager.get_stats()
    assert stats["dropped_spans"] == 4 and stats["export_failures"] >= 1
    health = manager.health()
    assert health["status"] == "unhealthy" and health["error"] == "telemetry is shut down"
    assert health["stats"]["dropped_spans"] == 4


# ------------------------------------------------------------- health


@pytest.mark.parametrize("mode", MODES)
def test_health_agrees_with_the_stats(mode: str) -> None:
    manager = _manager(_endpoint("grpc", closed_port()), sync=mode == "sync")
    try:
        health = manager.health(timeout_millis=3000)
        assert health["status"] == "degraded"
        assert health["error"] == "the export of the test span failed"
        assert health["stats"]["export_failures"] == 1
        assert health["stats"]["dropped_spans_by_tenant"] == {"system": 1}
        assert health["stats"] == {**manager.get_stats(), "queued_spans": 0}
    finally:
        manager.shutdown(timeout_millis=1000)


# ------------------------------------------------------------- doctor


def _doctor(
    endpoint: str, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Any, float]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    out = io.StringIO()
    started = time.monotonic()
    code = main(["doctor", "--endpoint", endpoint, "--json"], out=out)
    return code, json.loads(out.getvalue()), time.monotonic() - started


def test_doctor_against_a_dead_collector_is_quick_and_its_figures_agree(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tenantrace")
    code, report, elapsed = _doctor(f"127.0.0.1:{closed_port()}", "grpc", monkeypatch)
    assert elapsed < 3
    assert code == 1 and report["status"] == "degraded"
    assert report["error"] == "the endpoint does not accept connections"
    # The figures count the test span's failed export, as the exporter's log says.
    assert any("export of 1 spans failed" in r.getMessage() for r in caplog.records)
    stats = report["stats"]
    assert stats["export_failures"] == 1 and stats["failed_export_spans"] == 1
    assert stats["dropped_spans"] == 1 and stats["exported_spans"] == 0


def test_doctor_hints_at_the_protocol_when_grpc_points_at_an_http_port(
    http_collector: OtlpHttpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report, elapsed = _doctor(f"127.0.0.1:{http_collector.port}", "grpc", monkeypatch)
    assert elapsed < 3
    assert code == 1 and report["status"] == "degraded"
    assert report["endpoint"]["answers"] == "http/1.1"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in report["hint"]
    assert report["stats"]["export_failures"] == 1


def test_doctor_hints_at_the_protocol_when_http_points_at_a_grpc_port(
    grpc_collector: OtlpGrpcCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{grpc_collector.port}"
    code, report, elapsed = _doctor(endpoint, "http/protobuf", monkeypatch)
    assert elapsed < 3
    assert code == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in report["hint"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_doctor_is_healthy_against_a_live_collector(
    protocol: str,
    grpc_collector: OtlpGrpcCollector,
    http_collector: OtlpHttpCollector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = grpc_collector if protocol == "grpc" else http_collector
    code, report, _ = _doctor(_endpoint(protocol, collector.port), protocol, monkeypatch)
    assert code == 0 and report["status"] == "healthy", report
    assert "hint" not in report and "error" not in report
    assert report["stats"]["exported_spans"] == 1 and report["stats"]["export_failures"] == 0
    assert len(collector.wait_for(1)) == 1
