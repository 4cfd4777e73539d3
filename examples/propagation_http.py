"""HTTP propagation: one trace across two services, the tenant honoured only where trusted.

Run: python examples/propagation_http.py  (no server: both "services" run in this
process and talk through header dicts; spans are captured in memory and printed)
"""

from collections.abc import Mapping

from tenantrace import current_tenant, tenant_scope
from tenantrace.layers import get_tracer
from tenantrace.propagation import (
    EgressPolicy,
    TenantTrustPolicy,
    extract_trace_context,
    inject_trace_context,
    set_egress_policy,
)
from tenantrace.testing import capture_spans

SERVICE_TOKEN = "s3cr3t-service-token"

# Baggage (and so the tenant) may only go to our own services.
set_egress_policy(EgressPolicy.allow(["orders.internal", "*.svc.cluster.local"]))


def from_our_gateway(tenant: str, headers: Mapping[str, str]) -> bool:
    """The receiver's trust rule: only callers holding the service token pick the tenant."""
    return headers.get("x-service-token") == SERVICE_TOKEN


ORDERS_TRUST = TenantTrustPolicy(validator=from_our_gateway)
tracer = get_tracer("examples.http")


def orders_service(headers: Mapping[str, str]) -> str | None:
    """The receiving side: continue the caller's trace, routed to the accepted tenant."""
    ctx = extract_trace_context(headers, trust=ORDERS_TRUST)
    with tracer.start_as_current_span("orders.create", context=ctx):
        return current_tenant(ctx)


with capture_spans() as spans:
    with tenant_scope("acme"), spans.manager.span("checkout") as checkout:
        url = "http://orders.internal/v1/orders"
        headers = inject_trace_context({"x-service-token": SERVICE_TOKEN}, url=url)
        shown = {k: v for k, v in headers.items() if k != "x-service-token"}
        print("to orders.internal :", shown, "(+ the service token)")
        print("  orders ran for   :", orders_service(headers))

        external = inject_trace_context(url="https://api.partner.example/hook")
        print("to a partner host  :", external, "(no baggage: not on the allowlist)")

    forged = {"traceparent": headers["traceparent"], "baggage": "tenant.id=globex"}
    print("forged claim       :", orders_service(forged), "(no token: claim dropped)")

    print()
    for span in spans.spans():
        parent = span.parent_id or "-"
        print(
            f"{span.name:15} tenant={span.tenant:8} project={span.project:20} "
            f"trace={span.trace_id[:8]} parent={parent[:8]}"
        )
    stats = spans.manager.get_stats()
    print("rejected tenant claims:", stats["rejected_tenants"])

    trace_ids = {span.trace_id for span in spans.spans()}
    assert len(trace_ids) == 1, "one trace across the services"
    assert [s.tenant for s in spans.by_name("orders.create")] == ["acme", "default"]
    assert "baggage" not in external
    assert stats["rejected_tenants"] == 1
