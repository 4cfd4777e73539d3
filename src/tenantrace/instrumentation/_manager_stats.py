"""``TelemetryManager.get_stats()`` and ``health()``: the counters and the export check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantrace.instrumentation.config import TelemetryLevel

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from tenantrace.export.pipeline import ExportPipeline
    from tenantrace.instrumentation.manager import TelemetryManager

__all__ = ["manager_health", "manager_stats"]


def manager_stats(manager: TelemetryManager) -> dict[str, Any]:
    """``TelemetryManager.get_stats()``: the registry's and the pipeline's counters."""
    registry = manager._registry
    pipeline = manager._pipeline if manager._pipeline is not None else manager._stats_pipeline
    pstats = pipeline.stats if pipeline is not None else None
    stats: dict[str, Any] = {
        "enabled": manager.enabled,
        "level": manager.config.level.value,
        "exporter": manager.exporter_name,
        "sync_export": manager.config.batch_config.use_sync_export,
        "cache_hits": registry.hits if registry else 0,
        "cache_misses": registry.misses if registry else 0,
        "cached_tenants": len(registry) if registry else 0,
        "max_cached_tenants": manager.config.max_cached_tenants,
        "evictions": registry.evictions if registry else 0,
        "providers_created": registry.providers_created if registry else 0,
        "failed_initializations": manager.failed_initializations,
        "rejected_tenants": manager.rejected_tenants,
        "spans_started": manager.spans_started,
        "spans_ended": pstats.spans_ended if pstats else 0,
        "exported_spans": pstats.exported_spans if pstats else 0,
        "dropped_spans": pstats.dropped_spans if pstats else 0,
        "dropped_spans_by_tenant": dict(pstats.dropped_by_tenant) if pstats else {},
        "export_failures": pstats.export_failures if pstats else 0,
        "failed_export_spans": pstats.failed_spans if pstats else 0,
        "repaired_spans": pstats.repaired_spans if pstats else 0,
        "unexportable_spans": pstats.unexportable_spans if pstats else 0,
        "transform_failures": pstats.transform_failures if pstats else 0,
        "skipped_spans": pstats.skipped_spans if pstats else 0,
        "export_paused": pipeline.breaker.is_open if pipeline else False,
        "queued_spans": pipeline.queued if pipeline else 0,
        "export_threads": 0
        if manager._pipeline is None or manager.config.batch_config.use_sync_export
        else 1,
    }
    stats.update(_transport_stats(manager._exporter))
    with manager._stats_lock:
        stats.update(manager.extra_counters)
    return stats


def manager_health(manager: TelemetryManager, timeout_millis: int) -> dict[str, Any]:
    """``TelemetryManager.health()``: a test span flushed through the real pipeline."""
    base = {
        "otlp_endpoint": manager.config.otlp_endpoint,
        "exporter": manager.config.effective_exporter,
    }
    if not manager.config.enabled or manager.config.level is TelemetryLevel.DISABLED:
        return {"status": "disabled", **base, "stats": manager.get_stats()}
    pipeline = manager._pipeline
    error = None
    if manager._is_shutdown:
        error = "telemetry is shut down"
    elif manager._registry is None or pipeline is None:
        error = "telemetry could not be initialised"
    elif not pipeline.worker_alive:
        error = "export thread is not running"
    if error is not None or pipeline is None:
        return {"status": "unhealthy", **base, "error": error, "stats": manager.get_stats()}
    error = _check_export(manager, pipeline, timeout_millis)
    report: dict[str, Any] = {"status": "healthy" if error is None else "degraded", **base}
    if error is not None:
        report["error"] = error
    report["stats"] = manager.get_stats()
    return report


def _check_export(
    manager: TelemetryManager, pipeline: ExportPipeline, timeout_millis: int
) -> str | None:
    """Send one test span (tenant ``system``); None if it was exported, else why not."""
    stats = pipeline.stats
    failures, skipped = stats.export_failures, stats.skipped_spans
    dropped = stats.dropped_by_tenant.get("system", 0)
    with manager.span("health_check", tenant_id="system"):
        pass
    # Waits for the test span's export without consuming force_flush()'s report
    # (in sync mode the span was exported, or skipped, as it ended).
    in_time = pipeline.drain(timeout_millis)
    if stats.skipped_spans != skipped:
        return (
            "exports are paused after a failed export (circuit breaker, "
            f"{pipeline.breaker.interval_s:g} s); the test span was skipped"
        )
    if stats.export_failures != failures:
        return "the export of the test span failed"
    if stats.dropped_by_tenant.get("system", 0) != dropped:
        return "the test span was dropped"
    if not in_time:
        return f"the test span was not exported within {timeout_millis} ms"
    return None


def _transport_stats(exporter: SpanExporter | None) -> dict[str, int]:
    """The OTLP transport's counters (requests, retries, bytes...), when it keeps any."""
    inner = getattr(exporter, "wrapped", exporter)  # the per-process wrapper's exporter
    stats = getattr(inner, "stats", None)
    if not callable(stats):
        return {}
    try:
        found = stats()
    except Exception:  # a counter must never break get_stats()
        return {}
    return dict(found) if isinstance(found, dict) else {}
