"""The routing provider: any OpenTelemetry user is routed to the current tenant."""

from __future__ import annotations

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tenantrace import TenantRoutingTracerProvider, tenant_scope
from tenantrace.layers import get_tracer, trace_function
from tenantrace.testing import SpanCapture


def test_library_tracer_from_routing_provider_follows_the_tenant(spans: SpanCapture) -> None:
    provider = TenantRoutingTracerProvider()  # follows the process-wide manager
    library_tracer = provider.get_tracer("httpx-like-library", "1.0")
    for tenant in ("a", "b"):
        with (
            tenant_scope(tenant),
            library_tracer.start_as_current_span("GET /x", kind=trace_api.SpanKind.CLIENT),
        ):
            pass
    exported = spans.spans()
    assert [(s.name, s.tenant, s.kind) for s in exported] == [
        ("GET /x", "a", "CLIENT"),
        ("GET /x", "b", "CLIENT"),
    ]
    assert exported[0].raw is not None
    assert exported[0].raw.instrumentation_scope is not None
    assert exported[0].raw.instrumentation_scope.name == "httpx-like-library"


def test_seed_get_tracer_with_explicit_parent_context(spans: SpanCapture) -> None:
    tracer = get_tracer(__name__)
    with tenant_scope("t1"), tracer.start_as_current_span("process_memory") as span:
        span.set_attribute("data_size", 3)
        parent_ctx = trace_api.set_span_in_context(span)
    # A later span given the parent's context explicitly is its child, same tenant.
    with tracer.start_as_current_span("later", context=parent_ctx):
        pass
    parent, later = spans.spans()
    assert later.parent_id == parent.span_id
    assert later.tenant == "t1"  # the tenant travels inside the explicit context


def test_suppress_instrumentation_is_respected(spans: SpanCapture) -> None:
    @trace_function
    def traced() -> int:
        return 1

    with suppress_instrumentation():
        assert traced() == 1
    assert traced() == 1
    assert spans.names() == ["test_suppress_instrumentation_is_respected.<locals>.traced"]
