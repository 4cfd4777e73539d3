"""Logs and metrics for tenantrace: log correlation, logs to the tenant's project, RED metrics.

- ``correlate_logs()``: every stdlib log record gets ``trace_id``, ``span_id``,
  ``tenant_id``, ``service_name`` and ``project_name`` (``logs``);
  ``add_log_correlation`` does the same as a structlog processor;
- ``TenantLogHandler``: log records exported over OTLP to the tenant's
  project, scrubbed, through one bounded queue and one thread (``log_export``);
- ``RedMetrics``: request, error and duration metrics per tenant, operation and
  span kind, computed on the export thread, over OTLP and Prometheus (``metrics``).

Names load on first use (PEP 562): importing this package imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenantrace.observe.log_export import (
        GrpcLogExporter,
        LogEntry,
        LogExporter,
        LogPipeline,
        TenantLogHandler,
        disable_log_export,
        enable_log_export,
    )
    from tenantrace.observe.logs import (
        CORRELATION_FIELDS,
        LOG_CORRELATION_ENV,
        CorrelatedLogRecord,
        CorrelationFilter,
        add_log_correlation,
        correlate_logs,
        correlate_logs_from_env,
        correlation_fields,
        log_correlation_enabled,
        uncorrelate_logs,
    )
    from tenantrace.observe.metrics import CardinalityLimiter, RedMetrics, RedMetricsExporter

__all__ = [
    "CORRELATION_FIELDS",
    "LOG_CORRELATION_ENV",
    "CardinalityLimiter",
    "CorrelatedLogRecord",
    "CorrelationFilter",
    "GrpcLogExporter",
    "LogEntry",
    "LogExporter",
    "LogPipeline",
    "RedMetrics",
    "RedMetricsExporter",
    "TenantLogHandler",
    "add_log_correlation",
    "correlate_logs",
    "correlate_logs_from_env",
    "correlation_fields",
    "disable_log_export",
    "enable_log_export",
    "log_correlation_enabled",
    "uncorrelate_logs",
]

_MODULES = {
    **dict.fromkeys(
        (
            "CORRELATION_FIELDS",
            "LOG_CORRELATION_ENV",
            "CorrelatedLogRecord",
            "CorrelationFilter",
            "add_log_correlation",
            "correlate_logs",
            "correlate_logs_from_env",
            "correlation_fields",
            "log_correlation_enabled",
            "uncorrelate_logs",
        ),
        "tenantrace.observe.logs",
    ),
    **dict.fromkeys(
        (
            "GrpcLogExporter",
            "LogEntry",
            "LogExporter",
            "LogPipeline",
            "TenantLogHandler",
            "disable_log_export",
            "enable_log_export",
        ),
        "tenantrace.observe.log_export",
    ),
    **dict.fromkeys(
        ("CardinalityLimiter", "RedMetrics", "RedMetricsExporter"), "tenantrace.observe.metrics"
    ),
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
