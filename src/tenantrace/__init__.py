"""tenantrace: tenant-aware OpenTelemetry instrumentation.

Every span of tenant A lands in tenant A's project, through one shared export
pipeline; decorators and layer wrappers for your code; context and tenant
propagation across HTTP, queues, threads and tasks.

Every public name is importable from here (``from tenantrace import
trace_function``), as the seeds import theirs. Analytics and the test helpers
are loaded on first use (PEP 562), so ``import tenantrace`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tenantrace.instrumentation import (
    BatchExportConfig,
    InvalidTenantError,
    TelemetryConfig,
    TelemetryLevel,
    TelemetryManager,
    TenantRoutingTracerProvider,
    current_session,
    current_tenant,
    get_telemetry_manager,
    init_telemetry,
    install_routing_provider,
    tenant_scope,
    using_session,
)
from tenantrace.instrumentation.manager import on_install_global

if TYPE_CHECKING:
    from tenantrace.analytics import ModalityMetricsTracker, PhoenixAnalytics, TraceMetrics
    from tenantrace.layers import (
        ASGITracingMiddleware,
        WSGITracingMiddleware,
        get_current_span,
        get_tracer,
        record_cache_hit,
        record_cache_miss,
        trace_cache_operation,
        trace_federation_sync,
        trace_function,
        trace_learn,
        trace_query,
        trace_recall,
    )
    from tenantrace.propagation import (
        EgressPolicy,
        TenantPropagator,
        TenantTrustPolicy,
        baggage_scope,
        batch_span,
        create_carrier_from_span,
        extract_context_from_dict,
        extract_trace_context,
        get_baggage,
        get_trace_id,
        inject_trace_context,
        link_spans,
        message_span,
        propagate_context_to_dict,
        set_baggage,
        set_default_trust_policy,
        set_egress_policy,
    )
    from tenantrace.testing import capture_spans

__version__ = "0.1.0"

__all__ = [
    "ASGITracingMiddleware",
    "BatchExportConfig",
    "EgressPolicy",
    "InvalidTenantError",
    "ModalityMetricsTracker",
    "PhoenixAnalytics",
    "TelemetryConfig",
    "TelemetryLevel",
    "TelemetryManager",
    "TenantPropagator",
    "TenantRoutingTracerProvider",
    "TenantTrustPolicy",
    "TraceMetrics",
    "WSGITracingMiddleware",
    "__version__",
    "baggage_scope",
    "batch_span",
    "capture_spans",
    "create_carrier_from_span",
    "current_session",
    "current_tenant",
    "extract_context_from_dict",
    "extract_trace_context",
    "get_baggage",
    "get_current_span",
    "get_telemetry_manager",
    "get_trace_id",
    "get_tracer",
    "init_telemetry",
    "inject_trace_context",
    "install_routing_provider",
    "link_spans",
    "message_span",
    "propagate_context_to_dict",
    "record_cache_hit",
    "record_cache_miss",
    "set_baggage",
    "set_default_trust_policy",
    "set_egress_policy",
    "tenant_scope",
    "trace_cache_operation",
    "trace_federation_sync",
    "trace_function",
    "trace_learn",
    "trace_query",
    "trace_recall",
    "using_session",
]

_LAZY = {
    **dict.fromkeys(
        (
            "ASGITracingMiddleware",
            "WSGITracingMiddleware",
            "get_current_span",
            "get_tracer",
            "record_cache_hit",
            "record_cache_miss",
            "trace_cache_operation",
            "trace_federation_sync",
            "trace_function",
            "trace_learn",
            "trace_query",
            "trace_recall",
        ),
        "tenantrace.layers",
    ),
    **dict.fromkeys(
        (
            "EgressPolicy",
            "TenantPropagator",
            "TenantTrustPolicy",
            "baggage_scope",
            "batch_span",
            "create_carrier_from_span",
            "extract_context_from_dict",
            "extract_trace_context",
            "get_baggage",
            "get_trace_id",
            "inject_trace_context",
            "link_spans",
            "message_span",
            "propagate_context_to_dict",
            "set_baggage",
            "set_default_trust_policy",
            "set_egress_policy",
        ),
        "tenantrace.propagation",
    ),
    **dict.fromkeys(
        ("ModalityMetricsTracker", "PhoenixAnalytics", "TraceMetrics"), "tenantrace.analytics"
    ),
    "capture_spans": "tenantrace.testing",
}

# init_telemetry() installs the tenant-aware global propagator too. It lives in
# tenantrace.propagation, a layer above instrumentation, so the package wires
# it here, by name: it is imported only when init_telemetry() runs.
on_install_global("tenantrace.propagation.propagator:install_tenant_propagator")
# ... and log correlation when TENANTRACE_LOG_CORRELATION asks for it.
on_install_global("tenantrace.observe.logs:correlate_logs_from_env")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
