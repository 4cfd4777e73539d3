"""The tenant on the wire: outbound order, gateway header, validators' view, the propagator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from tenantrace import (
    TelemetryConfig,
    TenantPropagator,
    TenantTrustPolicy,
    current_tenant,
    extract_trace_context,
    get_baggage,
    inject_trace_context,
    tenant_scope,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.propagation import baggage_scope, set_default_trust_policy, set_egress_policy
from tenantrace.propagation.carriers import header_view
from tenantrace.propagation.limits import MAX_BAGGAGE_BYTES
from tenantrace.testing import SpanCapture, capture_spans


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans() as capture:
        yield capture


# ------------------------------------------------------- outbound: tenant first

_FILLER = st.lists(
    st.tuples(
        st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=0, max_size=3000),
    ),
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(_FILLER)
def test_no_baggage_crowds_the_tenant_out(filler: list[tuple[str, str]]) -> None:
    with capture_spans(), tenant_scope("acme"), baggage_scope(dict(filler)):
        headers = inject_trace_context()
    baggage = headers["baggage"]
    assert baggage.startswith("tenant.id=acme")
    assert len(baggage.encode()) <= MAX_BAGGAGE_BYTES
    # And a trusted downstream service reads the tenant back.
    assert current_tenant(extract_trace_context(headers, trust=True)) == "acme"


def test_an_untrusted_callers_padding_forwarded_keeps_the_tenant(spans: SpanCapture) -> None:
    padding = ",".join(f"k{i}={'x' * 90}" for i in range(80))  # about 7.7 KB, within limits
    inbound = extract_trace_context({"baggage": padding})  # untrusted: pairs kept, no tenant
    from opentelemetry import context as otel_context

    token = otel_context.attach(inbound)
    try:
        with tenant_scope("acme"), spans.manager.span("forward"):
            headers = inject_trace_context()
    finally:
        otel_context.detach(token)
    assert current_tenant(extract_trace_context(headers, trust=True)) == "acme"


def test_the_default_tenant_is_sent_too(spans: SpanCapture) -> None:
    with spans.manager.span("job"):
        headers = inject_trace_context()
    assert headers["baggage"] == "tenant.id=default"


# ------------------------------------------------------- the gateway's header

GATEWAY = TenantTrustPolicy(tenant_header="X-Tenant-Id")


def test_the_gateway_header_names_the_tenant_and_beats_a_claim() -> None:
    ctx = extract_trace_context(
        {"x-tenant-id": "acme", "baggage": "tenant.id=globex"}, trust=GATEWAY
    )
    assert current_tenant(ctx) == "acme"
    assert get_baggage("tenant.id", ctx) == "acme"  # the claim does not travel on


@pytest.mark.parametrize(
    "headers",
    [
        {"baggage": "tenant.id=acme"},  # no header: the claim alone is refused
        {"x-tenant-id": "not a tenant!"},
        [("x-tenant-id", "acme"), ("x-tenant-id", "globex")],  # repeated: not the gateway alone
    ],
)
def test_no_gateway_value_no_tenant(headers: object) -> None:
    assert current_tenant(extract_trace_context(headers, trust=GATEWAY)) is None


def test_the_gateway_header_respects_allowed_tenants() -> None:
    policy = TenantTrustPolicy(tenant_header="x-tenant-id", allowed_tenants=frozenset({"acme"}))
    assert current_tenant(extract_trace_context({"x-tenant-id": "acme"}, trust=policy)) == "acme"
    assert current_tenant(extract_trace_context({"x-tenant-id": "globex"}, trust=policy)) is None


def test_no_padding_hides_the_gateway_header() -> None:
    junk = [(f"x-junk-{i}", "v" * 100) for i in range(2000)]
    headers = [*junk, ("x-tenant-id", "acme")]
    assert current_tenant(extract_trace_context(headers, trust=GATEWAY)) == "acme"


def test_the_gateway_header_from_the_environment() -> None:
    config = TelemetryConfig.from_env(
        {"TENANTRACE_TENANT_HEADER": "x-tenant-id"}, exporter_type="none"
    )
    with capture_spans(config):
        assert current_tenant(extract_trace_context({"x-tenant-id": "acme"})) == "acme"
    set_default_trust_policy(None)


# ------------------------------------------------- what a validator is shown


def _seen_by_validator(headers: object) -> Mapping[str, str]:
    seen: dict[str, str] = {}

    def validator(tenant: str, view: Mapping[str, str]) -> bool:
        seen.update(view)
        return view.get("x-auth-tenant") == tenant

    extract_trace_context(headers, trust=TenantTrustPolicy(validator=validator))
    return seen


def test_a_plain_mapping_cannot_forge_a_header_name() -> None:
    forged = {"HTTP_X_AUTH_TENANT": "victim", "baggage": "tenant.id=victim"}
    assert "x-auth-tenant" not in _seen_by_validator(forged)
    assert (
        current_tenant(
            extract_trace_context(
                forged, trust=TenantTrustPolicy(validator=lambda t, h: h.get("x-auth-tenant") == t)
            )
        )
        is None
    )


def test_a_wsgi_environ_shows_its_http_headers() -> None:
    environ = {
        "wsgi.version": (1, 0),
        "HTTP_X_AUTH_TENANT": "acme",
        "HTTP_BAGGAGE": "tenant.id=acme",
    }
    assert _seen_by_validator(environ)["x-auth-tenant"] == "acme"
    assert "wsgi.version" not in _seen_by_validator(environ)


def test_the_validators_view_is_not_cut_by_the_item_limit() -> None:
    headers = [*((f"x-pad-{i}", "p") for i in range(1000)), ("x-auth-tenant", "acme")]
    assert header_view(headers)["x-auth-tenant"] == "acme"


# ----------------------------------------------------- the global propagator


@pytest.fixture
def propagator() -> Iterator[TenantPropagator]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(TenantPropagator())
    try:
        yield TenantPropagator()
    finally:
        propagate.set_global_textmap(previous)
        set_egress_policy(None)
        set_default_trust_policy(None)


def test_extract_applies_the_trust_policy(propagator: TenantPropagator, spans: SpanCapture) -> None:
    claim = {"baggage": "tenant.id=acme"}
    assert current_tenant(propagate.extract(claim)) is None
    set_default_trust_policy(True)
    assert current_tenant(propagate.extract(claim)) == "acme"


def test_a_trusted_claim_puts_the_server_span_in_the_callers_trace(
    propagator: TenantPropagator, spans: SpanCapture
) -> None:
    set_default_trust_policy(True)
    with tenant_scope("acme"), spans.manager.span("client"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    server_ctx = propagate.extract(carrier, context=None)
    with trace.get_tracer("server-lib").start_as_current_span(
        "GET /", context=server_ctx, kind=SpanKind.SERVER
    ):
        pass
    client, server = spans.one("client"), spans.one("GET /")
    assert (server.tenant, server.trace_id, server.parent_id) == (
        "acme",
        client.trace_id,
        client.span_id,
    )


@pytest.mark.parametrize(
    ("attributes", "sends_baggage"),
    [
        ({"url.full": "http://orders.internal/v1"}, True),
        ({"http.url": "http://orders.internal:8080/v1"}, True),
        ({"server.address": "orders.internal", "server.port": 80}, True),
        ({"url.full": "https://partner.example/hook"}, False),
        ({"url.full": "http://127.0.0.1:9\\@orders.internal/"}, False),
        ({}, False),  # a CLIENT span whose destination cannot be told
    ],
)
def test_inject_follows_the_egress_policy_by_the_client_spans_url(
    propagator: TenantPropagator,
    spans: SpanCapture,
    attributes: dict[str, object],
    sends_baggage: bool,
) -> None:
    from tenantrace.propagation import EgressPolicy

    set_egress_policy(EgressPolicy.allow(["orders.internal"], baggage_without_url=True))
    tracer = trace.get_tracer("client-lib")
    with (
        tenant_scope("acme"),
        tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes=attributes,  # type: ignore[arg-type]
        ),
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert "traceparent" in carrier
    assert ("baggage" in carrier) == sends_baggage


def test_a_producer_span_follows_baggage_without_url(
    propagator: TenantPropagator, spans: SpanCapture
) -> None:
    from tenantrace.propagation import EgressPolicy

    tracer = trace.get_tracer("queue-lib")
    for allowed in (True, False):
        set_egress_policy(EgressPolicy(baggage_without_url=allowed))
        with tenant_scope("acme"), tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        assert ("baggage" in carrier) == allowed


def test_init_telemetry_installs_the_propagator() -> None:
    from tenantrace import init_telemetry

    previous = propagate.get_global_textmap()
    try:
        manager = init_telemetry(TelemetryConfig(exporter_type="none"))
        assert isinstance(propagate.get_global_textmap(), TenantPropagator)
        manager.shutdown()
    finally:
        propagate.set_global_textmap(previous)
        install_manager(None)


def test_the_entry_point_names_the_propagator() -> None:
    from importlib.metadata import entry_points

    (found,) = entry_points(group="opentelemetry_propagator", name="tenantrace")
    assert found.load() is TenantPropagator


def test_the_gateway_names_the_request_not_whose_trace_the_caller_is_in(
    spans: SpanCapture,
) -> None:
    from opentelemetry import context as otel_context

    policy = TenantTrustPolicy(trusted=True, tenant_header="x-gateway-tenant")
    with tenant_scope("acme"), spans.manager.span("acme call"):
        headers = inject_trace_context()  # claims acme, trusted
    for gateway, continued in (("globex", False), ("acme", True)):
        ctx = extract_trace_context({**headers, "x-gateway-tenant": gateway}, trust=policy)
        token = otel_context.attach(ctx)
        try:
            with spans.manager.span(f"{gateway} serve"):
                pass
        finally:
            otel_context.detach(token)
        served, call = spans.one(f"{gateway} serve"), spans.one("acme call")
        assert served.tenant == gateway
        assert (served.trace_id == call.trace_id) is continued


def test_the_propagators_validator_sees_the_carriers_headers_only_when_judging(
    propagator: TenantPropagator, spans: SpanCapture
) -> None:
    views: list[Mapping[str, str]] = []

    def validator(tenant: str, headers: Mapping[str, str]) -> bool:
        views.append(headers)
        return headers.get("x-auth-tenant") == tenant

    set_default_trust_policy(TenantTrustPolicy(validator=validator))
    assert current_tenant(propagate.extract({"x-auth-tenant": "acme"})) is None  # no claim
    assert views == []  # nothing to judge: no view built
    claim = {"baggage": "tenant.id=acme", "x-auth-tenant": "acme"}
    assert current_tenant(propagate.extract(claim)) == "acme"
    assert views[-1]["x-auth-tenant"] == "acme"
    forged = {"baggage": "tenant.id=acme", "HTTP_X_AUTH_TENANT": "acme"}  # not a WSGI environ
    assert current_tenant(propagate.extract(forged)) is None
