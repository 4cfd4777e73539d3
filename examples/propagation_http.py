"""HTTP propagation: one trace across two services, the tenant honoured only where trusted.

One trace, one tenant: the orders service continues the caller's trace only when
it trusts the caller's tenant claim (and works for that tenant). A forged claim
is dropped: the request is the default tenant's, in a new trace of its own that
links back to the caller's span (``tenantrace.link=parent``), so nothing of it
can land in acme's trace, or in acme's project.

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
    print("forged claim       :", orders_service(forged), "(no token: dropped; new trace)")

    print()
    for span in spans.spans():
        parent = span.parent_id or "-"
        linked = [f"{link.context.span_id:016x}"[:8] for link in span.raw.links] if span.raw else []
        print(
            f"{span.name:15} tenant={span.tenant:8} project={span.project:20} "
            f"trace={span.trace_id[:8]} parent={parent[:8]:8} links={linked}"
        )
    stats = spans.manager.get_stats()
    print("rejected tenant claims:", stats["rejected_tenants"])

    root = spans.one("checkout")
    trusted, forged_call = spans.by_name("orders.create")
    # The trusted hop: acme's work, one trace across the services.
    assert (trusted.tenant, trusted.trace_id) == ("acme", root.trace_id)
    assert trusted.parent_id == root.span_id
    # The forged claim: the default tenant's work, in a trace of its own, linked to the caller.
    assert forged_call.tenant == "default"
    assert forged_call.trace_id != root.trace_id and forged_call.parent_id is None
    [link] = forged_call.raw.links if forged_call.raw else []
    assert f"{link.context.span_id:016x}" == root.span_id
    assert dict(link.attributes or {}) == {"tenantrace.link": "parent"}
    assert "baggage" not in external
    assert stats["rejected_tenants"] == 1
