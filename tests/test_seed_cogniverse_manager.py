"""The Cogniverse seed's TelemetryManager samples, imports changed to tenantrace."""

from __future__ import annotations

from typing import Any

from tenantrace import (
    BatchExportConfig,
    TelemetryConfig,
    TelemetryLevel,
    TelemetryManager,
    get_telemetry_manager,
)
from tenantrace.testing import SpanCapture


def route_query(query: str) -> Any:
    class Result:
        strategy = "keyword"
        latency = 12.5

    return Result()


def search(query: str) -> list[str]:
    return [query]


def test_usage_sample(spans: SpanCapture) -> None:
    # Get singleton instance
    telemetry = get_telemetry_manager()

    # Create tenant-specific span
    tenant_id = "tenant-123"
    with telemetry.span(
        name="cogniverse.routing",
        tenant_id=tenant_id,
        attributes={"routing.chosen_agent": "video_search", "routing.confidence": 0.95},
    ) as span:
        result = route_query("query")
        span.set_attribute("routing.strategy", result.strategy)
        span.set_attribute("routing.latency_ms", result.latency)

    exported = spans.one("cogniverse.routing")
    assert exported.project == telemetry.config.get_project_name("tenant-123")
    assert exported.attributes == {
        "tenant.id": "tenant-123",
        "routing.chosen_agent": "video_search",
        "routing.confidence": 0.95,
        "routing.strategy": "keyword",
        "routing.latency_ms": 12.5,
    }


def test_session_tracking_sample(spans: SpanCapture) -> None:
    telemetry = get_telemetry_manager()
    session_id = "user-session-uuid-123"
    with telemetry.session_span("search", tenant_id="acme", session_id=session_id) as span:
        span.set_attribute("query", "find basketball videos")
        search("find basketball videos")
    with telemetry.session_span("search", tenant_id="acme", session_id=session_id) as span:
        span.set_attribute("query", "show me dunks")
        search("show me dunks")
    turns = spans.by_name("search")
    assert [t.attributes["query"] for t in turns] == ["find basketball videos", "show me dunks"]
    assert {t.attributes["session.id"] for t in turns} == {f"acme:{session_id}"}
    assert {t.project for t in turns} == {"cogniverse-acme"}


def test_configuration_samples() -> None:
    config = TelemetryConfig(
        enabled=True,
        level=TelemetryLevel.DETAILED,
        otlp_endpoint="localhost:4317",
        otlp_enabled=True,
        tenant_service_template="cogniverse-{tenant_id}-{service}",
        max_cached_tenants=100,
    )
    telemetry = TelemetryManager(config)
    assert telemetry.config is config
    telemetry.shutdown(timeout_millis=500)

    config = TelemetryConfig(
        enabled=True,
        level=TelemetryLevel.DETAILED,
        otlp_enabled=True,
        otlp_endpoint="localhost:4317",
        batch_config=BatchExportConfig(use_sync_export=True),  # For tests
    )
    assert config.batch_config.use_sync_export


def check_telemetry_health() -> dict[str, Any]:
    telemetry = get_telemetry_manager()
    if not telemetry.config.enabled:
        return {"status": "disabled"}
    try:
        test_span = telemetry.span("health_check", tenant_id="system")
        with test_span:
            pass
        success = telemetry.force_flush(timeout_millis=5000)
        return {
            "status": "healthy" if success else "degraded",
            "otlp_endpoint": telemetry.config.otlp_endpoint,
            "stats": telemetry.get_stats(),
        }
    except Exception as e:
        return {"status": "unhealthy", "error": str(e)}


def test_health_check_sample(spans: SpanCapture) -> None:
    result = check_telemetry_health()
    assert result["status"] == "healthy"
    assert spans.one("health_check").tenant == "system"
    assert get_telemetry_manager().health()["status"] == "healthy"


def test_troubleshooting_samples(spans: SpanCapture) -> None:
    config = TelemetryConfig(max_cached_tenants=50)
    config.batch_config.max_queue_size = 1024
    config.validate()
    project_name = config.get_project_name("tenant-123", "video")
    assert project_name == "cogniverse-tenant-123-video"

    telemetry = get_telemetry_manager()
    with telemetry.span("test", tenant_id="tenant-123", project_name="video"):
        pass
    exported = spans.one("test")
    assert exported.project == "cogniverse-tenant-123-video"
    assert exported.attributes["tenant.id"] == "tenant-123"
    stats = telemetry.get_stats()
    assert stats.get("dropped_spans", 0) == 0


def test_multi_tenant_span_isolation_sample(spans: SpanCapture) -> None:
    telemetry = get_telemetry_manager()
    tenants = ["tenant-a", "tenant-b", "tenant-c"]
    for tenant in tenants:
        with telemetry.span("test_operation", tenant_id=tenant) as span:
            span.set_attribute("tenant.test_data", f"data-{tenant}")
    assert telemetry.force_flush(timeout_millis=5000)
    by_project = {s.project: s.attributes["tenant.test_data"] for s in spans.spans()}
    assert by_project == {telemetry.config.get_project_name(t): f"data-{t}" for t in tenants}
