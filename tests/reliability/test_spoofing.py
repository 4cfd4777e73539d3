"""Tenant spoofing, end to end: a carrier claiming another tenant cannot route spans there.

Through real HTTP (a FastAPI app under uvicorn on loopback, called with httpx)
and through a real queue (RabbitMQ via pika): a request or message whose
baggage says ``tenant.id=victim`` lands in the default tenant's project unless
the receiver's trust policy accepts the claim. The positive controls show the
same carrier honoured when the policy trusts it, so the test can fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from optional_api import require_api, require_port

from servers import serve_asgi
from tenantrace import current_tenant, tenant_scope
from tenantrace.layers import get_tracer
from tenantrace.testing import SpanCapture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
FORGED = {
    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    "baggage": "tenant.id=victim,other=1",
}


def _propagation() -> ModuleType:
    return require_api(
        "tenantrace.propagation",
        "extract_trace_context",
        "inject_trace_context",
        "propagate_context_to_dict",
        "extract_context_from_dict",
    )


def _trusting_policy(propagation: ModuleType) -> Any:
    """The trust policy of an internal hop that honours the carried tenant."""
    policy = getattr(propagation, "TenantTrustPolicy", None)
    if policy is None:
        pytest.fail("tenantrace.propagation has no TenantTrustPolicy", pytrace=False)
    return policy(trusted=True)


@pytest.fixture
def http_service(spans: SpanCapture) -> Iterator[str]:
    """A FastAPI app under uvicorn on a loopback port, extracting context as the seed does."""
    propagation = _propagation()
    trusting = _trusting_policy(propagation)
    tracer = get_tracer("spoof.service")
    app = FastAPI()

    @app.get("/public")
    async def public(request: Request) -> dict[str, Any]:
        ctx = propagation.extract_trace_context(dict(request.headers))
        with tracer.start_as_current_span("public-handler", context=ctx):
            return {"tenant": current_tenant(ctx)}

    @app.get("/internal")
    async def internal(request: Request) -> dict[str, Any]:
        ctx = propagation.extract_trace_context(dict(request.headers), trust=trusting)
        with tracer.start_as_current_span("internal-handler", context=ctx):
            return {"tenant": current_tenant(ctx)}

    with serve_asgi(app) as url:
        yield url


def test_forged_baggage_over_http_cannot_route_to_another_tenant(
    http_service: str, spans: SpanCapture
) -> None:
    rejected_before = spans.manager.get_stats()["rejected_tenants"]
    with httpx.Client(base_url=http_service, timeout=10) as client:
        answer = client.get("/public", headers=FORGED).json()
    assert answer == {"tenant": None}
    [handled] = spans.by_name("public-handler")
    # One trace, one tenant: the caller's trace is linked, never joined.
    assert handled.trace_id != TRACE_ID
    assert handled.raw is not None
    assert [f"{link.context.trace_id:032x}" for link in handled.raw.links] == [TRACE_ID]
    assert (handled.tenant, handled.project) == ("default", "cogniverse-default")
    assert "victim" not in json.dumps(handled.attributes)
    assert spans.manager.get_stats()["rejected_tenants"] == rejected_before + 1


def test_the_same_carrier_is_honoured_where_the_policy_trusts_it(
    http_service: str, spans: SpanCapture
) -> None:
    with httpx.Client(base_url=http_service, timeout=10) as client:
        answer = client.get("/internal", headers=FORGED).json()
    assert answer == {"tenant": "victim"}
    [handled] = spans.by_name("internal-handler")
    assert (handled.tenant, handled.project) == ("victim", "cogniverse-victim")


def test_a_tenant_injected_by_a_real_client_is_dropped_by_an_untrusting_receiver(
    http_service: str, spans: SpanCapture
) -> None:
    propagation = _propagation()
    with tenant_scope("acme"), spans.manager.span("client-call"):
        headers = propagation.inject_trace_context({})
    with httpx.Client(base_url=http_service, timeout=10) as client:
        assert client.get("/public", headers=headers).json() == {"tenant": None}
        assert client.get("/internal", headers=headers).json() == {"tenant": "acme"}
    assert spans.one("public-handler").tenant == "default"
    assert spans.one("internal-handler").tenant == "acme"
    # The untrusting receiver starts its own trace; the trusting one continues acme's.
    assert spans.one("public-handler").trace_id != spans.one("client-call").trace_id
    assert spans.one("internal-handler").trace_id == spans.one("client-call").trace_id


def _find_carrier(message: dict[str, Any]) -> dict[str, Any]:
    for value in message.values():
        if isinstance(value, dict) and "traceparent" in value:
            return value
    raise AssertionError(f"no trace carrier in {message!r}")


@pytest.mark.rabbitmq
def test_forged_baggage_through_rabbitmq_cannot_route_to_another_tenant(
    spans: SpanCapture,
) -> None:
    require_port("RabbitMQ", "127.0.0.1", 5672)
    import pika

    propagation = _propagation()
    trusting = _trusting_policy(propagation)
    tracer = get_tracer("spoof.consumer")
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    try:
        channel = connection.channel()
        queue = channel.queue_declare(queue="", exclusive=True).method.queue
        with tenant_scope("acme"), spans.manager.span("produce"):
            honest = propagation.propagate_context_to_dict({"order": 1})
            forged = propagation.propagate_context_to_dict({"order": 2})
        forged_carrier = _find_carrier(forged)
        forged_carrier["baggage"] = "tenant.id=victim"
        for message in (honest, forged):
            channel.basic_publish("", queue, json.dumps(message).encode())

        received: list[dict[str, Any]] = []
        for _ in range(2):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None
            received.append(json.loads(body))
    finally:
        connection.close()

    for message in received:
        order = message["order"]
        ctx = propagation.extract_context_from_dict(message)
        with tracer.start_as_current_span(f"untrusted-{order}", context=ctx):
            pass
        trusted_ctx = propagation.extract_context_from_dict(message, trust=trusting)
        with tracer.start_as_current_span(f"trusted-{order}", context=trusted_ctx):
            pass
    assert spans.one("untrusted-1").tenant == "default"
    assert spans.one("untrusted-2").tenant == "default"  # the forgery routes nowhere
    assert spans.one("trusted-1").tenant == "acme"
    assert spans.one("trusted-2").tenant == "victim"  # only a trusting consumer believes it
    produce = spans.one("produce")
    # Untrusted messages start traces of their own, linked to the producer.
    assert produce.trace_id not in {spans.one(f"untrusted-{i}").trace_id for i in (1, 2)}
    assert spans.one("trusted-1").trace_id == produce.trace_id  # acme's own, trusted
    # A consumer that trusts the queue believes a forged carrier whole, trace
    # included: the trust policy is what keeps forgeries out, not the trace rule.
    assert spans.one("trusted-2").trace_id == produce.trace_id
