"""Every name the seeds import comes from ``tenantrace`` itself; the heavy parts load lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tenantrace

SEED_NAMES = [
    "ModalityMetricsTracker",
    "PhoenixAnalytics",
    "TraceMetrics",
    "trace_function",
    "get_tracer",
    "get_current_span",
    "trace_recall",
    "trace_learn",
    "trace_query",
    "trace_cache_operation",
    "record_cache_hit",
    "record_cache_miss",
    "inject_trace_context",
    "extract_trace_context",
    "propagate_context_to_dict",
    "extract_context_from_dict",
    "set_baggage",
    "get_baggage",
    "link_spans",
    "create_carrier_from_span",
    "get_trace_id",
    # ... and the other public names users reach for.
    "TenantTrustPolicy",
    "EgressPolicy",
    "tenant_scope",
    "baggage_scope",
    "capture_spans",
    "ASGITracingMiddleware",
    "WSGITracingMiddleware",
    "TenantPropagator",
    "init_telemetry",
    "get_telemetry_manager",
    "TelemetryConfig",
]


@pytest.mark.parametrize("name", SEED_NAMES)
def test_the_name_is_importable_from_the_top_level(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from tenantrace import {name}", namespace)
    assert namespace[name] is getattr(tenantrace, name)
    assert name in tenantrace.__all__


def test_every_name_in_all_resolves() -> None:
    for name in tenantrace.__all__:
        assert getattr(tenantrace, name) is not None, name
    assert set(tenantrace.__all__) <= set(dir(tenantrace))


def test_import_tenantrace_loads_no_analytics_layers_or_propagation() -> None:
    code = (
        "import sys, tenantrace; "
        "print(sorted(m for m in sys.modules if m.startswith(('tenantrace.analytics', "
        "'tenantrace.layers', 'tenantrace.propagation', 'plotly', 'httpx', 'pytest'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", out


def test_a_lazy_name_is_the_subpackages_own() -> None:
    from tenantrace.analytics import PhoenixAnalytics
    from tenantrace.layers import trace_function

    assert tenantrace.PhoenixAnalytics is PhoenixAnalytics
    assert tenantrace.trace_function is trace_function


SUBPACKAGES = [
    "tenantrace.instrumentation",
    "tenantrace.export",
    "tenantrace.layers",
    "tenantrace.propagation",
    "tenantrace.analytics",
    "tenantrace.observe",
    "tenantrace.testing",
]


@pytest.mark.parametrize("module_name", SUBPACKAGES)
def test_every_public_name_of_a_subpackage_is_a_top_level_name(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert name in tenantrace.__all__, f"{module_name}.{name} is not in tenantrace.__all__"
        assert getattr(tenantrace, name) is getattr(module, name), name


def test_the_logs_and_metrics_names_load_lazily() -> None:
    code = (
        "import sys, tenantrace; "
        "print(sorted(m for m in sys.modules if m.startswith(('tenantrace.observe', "
        "'opentelemetry.sdk.metrics', 'prometheus_client')))); "
        "from tenantrace import correlate_logs, RedMetrics; "
        "import tenantrace.observe.logs as logs, tenantrace.observe.metrics as metrics; "
        "print(correlate_logs is logs.correlate_logs, RedMetrics is metrics.RedMetrics)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]", out
    assert out[1] == "True True", out
