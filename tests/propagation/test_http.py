"""HTTP carriers: header maps of every shape, inject/extract, and the tenant on the wire."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from starlette.datastructures import Headers

from tenantrace import current_tenant, tenant_scope
from tenantrace.propagation import (
    attach_trace_context,
    extract_trace_context,
    get_baggage,
    inject_trace_context,
)
from tenantrace.testing import SpanCapture

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


def remote(ctx: otel_context.Context) -> tuple[str, str] | None:
    span_context = trace_api.get_current_span(ctx).get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


# ---------------------------------------------------------------- header shapes


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT},
        {"Traceparent": TRACEPARENT},
        {"TRACEPARENT": TRACEPARENT.encode()},
        {b"traceparent": TRACEPARENT.encode()},
        {"traceparent": [TRACEPARENT]},
        {"traceparent": (TRACEPARENT,)},
        [("traceparent", TRACEPARENT)],
        [(b"traceparent", TRACEPARENT.encode())],  # ASGI scope["headers"]
        {"HTTP_TRACEPARENT": TRACEPARENT, "wsgi.version": (1, 0)},  # WSGI environ
        Headers({"traceparent": TRACEPARENT}),  # Starlette
        httpx.Headers({"TraceParent": TRACEPARENT}),
        {f"x-other-{i}": "v" for i in range(20)} | {"TraceParent": TRACEPARENT},
    ],
    ids=[
        "dict",
        "capitalised",
        "upper+bytes",
        "bytes-key",
        "list-value",
        "tuple-value",
        "pairs",
        "asgi",
        "wsgi",
        "starlette",
        "httpx",
        "many-headers",
    ],
)
def test_any_header_mapping_is_understood(headers: object) -> None:
    assert remote(extract_trace_context(headers)) == (TRACE, PARENT)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        "traceparent",
        b"traceparent",
        42,
        [TRACEPARENT],
        [("traceparent",)],
        {"traceparent": None},
        {"traceparent": 7},
        {"traceparent": [[[TRACEPARENT]]]},  # nested deeper than any header list
        {None: TRACEPARENT},
    ],
)
def test_anything_else_gives_a_fresh_context(headers: object) -> None:
    ctx = extract_trace_context(headers)
    assert remote(ctx) is None
    assert current_tenant(ctx) is None


def test_repeated_fields_in_starlette_headers_are_seen() -> None:
    raw = [(b"traceparent", TRACEPARENT.encode()), (b"traceparent", TRACEPARENT.encode())]
    assert remote(extract_trace_context(Headers(raw=raw))) is None  # W3C: two = invalid


def test_repeated_baggage_fields_are_combined() -> None:
    raw = [(b"baggage", b"a=1"), (b"Baggage", b"b=2")]
    ctx = extract_trace_context(raw)
    assert (get_baggage("a", ctx), get_baggage("b", ctx)) == ("1", "2")


def test_the_extracted_context_does_not_inherit_the_current_span(spans: SpanCapture) -> None:
    with spans.manager.span("local"):
        ctx = extract_trace_context({"traceparent": "garbage"})
    assert remote(ctx) is None  # a malformed carrier starts a new trace, not a local child


def test_extraction_does_not_log_per_call(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            extract_trace_context(
                {"traceparent": TRACEPARENT, "tracestate": "BAD KEY=1", "baggage": "==,;;"}
            )
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


# ----------------------------------------------------------------------- inject


def test_inject_outside_a_span_writes_nothing() -> None:
    assert inject_trace_context() == {}


def test_inject_returns_a_new_dict_and_leaves_the_input_alone(spans: SpanCapture) -> None:
    given = {"Accept": "application/json", "TraceParent": "00-stale"}
    with spans.manager.span("client") as span:
        out = inject_trace_context(given)
    assert given == {"Accept": "application/json", "TraceParent": "00-stale"}
    assert out["Accept"] == "application/json"
    assert "TraceParent" not in out  # the stale spelling is replaced, not duplicated
    ctx = span.get_span_context()
    assert out["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


@pytest.mark.parametrize(
    "headers",
    [
        [("Accept", "x")],
        httpx.Headers({"Accept": "x"}),
        {b"Accept": b"x"},
        {"Accept": "x", "X-Count": 3},
    ],
)
def test_inject_takes_any_header_mapping(spans: SpanCapture, headers: object) -> None:
    with spans.manager.span("client"):
        out = inject_trace_context(headers)
    assert {k.lower(): v for k, v in out.items()}["accept"] == "x"  # httpx lowercases names
    assert "traceparent" in out
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


def test_forwarded_propagation_headers_are_replaced_not_passed_on(spans: SpanCapture) -> None:
    inbound = {
        "Accept": "x",
        "TraceParent": f"00-{TRACE}-{PARENT}-01",
        "Baggage": "tenant.id=acme,secret.note=1",
        "X-B3-TraceId": TRACE,
        "tracestate": "congo=1",
    }
    with spans.manager.span("proxy"):
        out = inject_trace_context(inbound, url="https://api.partner.example/")
    assert out.keys() == {"Accept", "traceparent"}  # no baggage toward this host
    assert TRACE not in out["traceparent"]  # the current span's context, not the inbound one


@pytest.mark.parametrize(
    "bad", [{"X-Evil": "a\r\nSet-Cookie: x"}, {"X Bad": "1"}, {"X-Nul": "a\x00b"}, {"": "1"}]
)
def test_inject_never_returns_a_header_with_a_control_byte(
    spans: SpanCapture, bad: dict[str, str]
) -> None:
    with spans.manager.span("client"):
        out = inject_trace_context({"Accept": "x", **bad})
    assert out.keys() == {"Accept", "traceparent", "baggage"}


# ----------------------------------------------------------------------- tenant


def test_the_tenant_travels_as_baggage(spans: SpanCapture) -> None:
    with tenant_scope("acme"), spans.manager.span("client"):
        out = inject_trace_context()
    assert out["baggage"] == "tenant.id=acme"


def test_the_default_tenant_is_claimed_downstream(spans: SpanCapture) -> None:
    # The default tenant is a tenant like any other: a trusted callee keeps the
    # caller's trace only when it knows the trace is that tenant's.
    with spans.manager.span("client") as span:  # routed to the default tenant
        out = inject_trace_context()
    assert spans.one("client").tenant == "default"
    assert out["baggage"] == "tenant.id=default"
    assert span.get_span_context().is_valid


def test_outside_any_span_or_scope_no_tenant_is_claimed(spans: SpanCapture) -> None:
    assert inject_trace_context() == {}


def test_the_current_tenant_overrides_a_stale_tenant_in_baggage(spans: SpanCapture) -> None:
    stale = otel_baggage.set_baggage("tenant.id", "other")
    token = otel_context.attach(stale)
    try:
        with tenant_scope("acme"), spans.manager.span("client"):
            out = inject_trace_context()
    finally:
        otel_context.detach(token)
    assert out["baggage"] == "tenant.id=acme"


def test_an_untrusted_claim_is_dropped_and_counted(spans: SpanCapture) -> None:
    ctx = extract_trace_context({"traceparent": TRACEPARENT, "baggage": "tenant.id=acme,k=v"})
    assert current_tenant(ctx) is None
    assert get_baggage("tenant.id", ctx) is None  # removed, not passed on downstream
    assert get_baggage("k", ctx) == "v"
    assert remote(ctx) == (TRACE, PARENT)
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_a_trusted_claim_routes_the_spans(spans: SpanCapture) -> None:
    ctx = extract_trace_context(
        {"traceparent": TRACEPARENT, "baggage": "tenant.id=acme"}, trust=True
    )
    assert current_tenant(ctx) == "acme"
    with spans.manager.span("server", context=ctx):
        pass
    server = spans.one("server")
    assert (server.tenant, server.project, server.trace_id) == ("acme", "cogniverse-acme", TRACE)
    assert spans.manager.get_stats()["rejected_tenants"] == 0


@pytest.mark.parametrize(
    "claim", ["a%0D%0Ab", "x" * 129, "has%20space", "semi%3Bcolon", "%C3%A9", "a/b"]
)
def test_an_invalid_claim_is_refused_even_when_trusted(spans: SpanCapture, claim: str) -> None:
    ctx = extract_trace_context({"baggage": f"tenant.id={claim}"}, trust=True)
    assert current_tenant(ctx) is None
    assert get_baggage("tenant.id", ctx) is None
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_a_local_tenant_scope_outranks_a_trusted_claim(spans: SpanCapture) -> None:
    with tenant_scope("local"):
        ctx = extract_trace_context({"baggage": "tenant.id=remote"}, trust=True)
    assert current_tenant(ctx) == "local"


def test_an_untrusted_claim_leaves_the_local_tenant(spans: SpanCapture) -> None:
    with tenant_scope("local"):
        ctx = extract_trace_context({"baggage": "tenant.id=remote"})
    assert current_tenant(ctx) == "local"
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_round_trip_between_two_tenants_never_mixes(spans: SpanCapture) -> None:
    carriers = {}
    for tenant in ("acme", "globex"):
        with tenant_scope(tenant), spans.manager.span(f"client-{tenant}"):
            carriers[tenant] = inject_trace_context()
    for tenant, carrier in carriers.items():
        with spans.manager.span(
            f"server-{tenant}", context=extract_trace_context(carrier, trust=True)
        ):
            pass
    for tenant in ("acme", "globex"):
        client, server = spans.one(f"client-{tenant}"), spans.one(f"server-{tenant}")
        assert server.tenant == client.tenant == tenant
        assert (server.trace_id, server.parent_id) == (client.trace_id, client.span_id)


# --------------------------------------------------------------- attach helper


def test_attach_makes_the_carried_context_current_and_restores(spans: SpanCapture) -> None:
    headers = {"traceparent": TRACEPARENT, "baggage": "tenant.id=acme,k=v"}
    with attach_trace_context(headers, trust=True) as ctx:
        assert current_tenant() == "acme"
        assert get_baggage("k") == "v"
        assert remote(otel_context.get_current()) == (TRACE, PARENT)
        with spans.manager.span("inside"):
            pass
    assert current_tenant() is None
    assert current_tenant(ctx) == "acme"
    inside = spans.one("inside")
    assert (inside.tenant, inside.trace_id, inside.parent_id) == ("acme", TRACE, PARENT)


async def test_attach_works_as_an_async_context_manager(spans: SpanCapture) -> None:
    async with attach_trace_context({"traceparent": TRACEPARENT}) as ctx:
        await asyncio.sleep(0)
        assert remote(otel_context.get_current()) == remote(ctx) == (TRACE, PARENT)
    assert remote(otel_context.get_current()) is None


def test_attach_detaches_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), attach_trace_context({"traceparent": TRACEPARENT}):
        raise RuntimeError("user error")
    assert remote(otel_context.get_current()) is None


def test_children_of_a_span_started_with_the_extracted_context_keep_its_tenant(
    spans: SpanCapture,
) -> None:
    from tenantrace.layers import get_tracer

    tracer = get_tracer("nested")
    ctx = extract_trace_context(
        {"traceparent": TRACEPARENT, "baggage": "tenant.id=acme"}, trust=True
    )
    with tracer.start_as_current_span("handler", context=ctx), tracer.start_as_current_span("db"):
        pass
    assert spans.one("handler").tenant == "acme"
    assert spans.one("db").tenant == "acme"
