"""Federation sync spans: CLIENT kind, peer attributes, context injected into the real call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from servers import serve_asgi, wait_for_spans
from tenantrace import TelemetryConfig, TelemetryLevel, current_tenant, tenant_scope
from tenantrace.layers import (
    ASGITracingMiddleware,
    trace_federation_pull,
    trace_federation_push,
    trace_federation_sync,
)
from tenantrace.propagation import EgressPolicy, get_trace_id, set_egress_policy
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans


def peer_app() -> FastAPI:
    app = FastAPI()

    @app.post("/sync")
    async def sync(request: Request) -> dict[str, Any]:
        batch = await request.json()
        return {"received": len(batch), "tenant": current_tenant(), "trace_id": get_trace_id()}

    @app.get("/sync")
    async def pull() -> dict[str, Any]:
        return {"items": [1, 2, 3], "tenant": current_tenant()}

    return app


@pytest.fixture
def peer_url(spans: SpanCapture) -> Iterator[str]:
    # The peer is an internal hop of the same deployment: it trusts the tenant it is sent.
    with serve_asgi(ASGITracingMiddleware(peer_app(), trust=True)) as url:
        yield url


def test_push_injects_context_and_the_peer_continues_the_trace(
    spans: SpanCapture, peer_url: str
) -> None:
    set_egress_policy(EgressPolicy.allow(["127.0.0.1"]))
    url = f"{peer_url}/sync"
    headers = {"content-type": "application/json", "TraceParent": "00-stale-stale-00"}
    batch = [{"id": 1}, {"id": 2}]
    push_scope = trace_federation_push("peer-b", url=url, headers=headers, items=len(batch))
    with tenant_scope("acme"), push_scope as span:
        response = httpx.post(url, json=batch, headers=headers, timeout=10)
        span.set_attribute("federation.accepted", response.json()["received"])
    assert "TraceParent" not in headers  # the stale header was replaced, not duplicated
    assert response.json()["tenant"] == "acme"
    # The server span may end after the client has its response: find spans by name.
    wait_for_spans(spans, 2)
    push, server = spans.one("federation.sync.push"), spans.one("POST /sync")
    port = int(peer_url.rsplit(":", 1)[1])
    assert push == CapturedSpan(
        name="federation.sync.push",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=push.trace_id,
        span_id=push.span_id,
        parent_id=None,
        kind="CLIENT",
        status="UNSET",
        attributes={
            "tenant.id": "acme",
            "federation.direction": "push",
            "federation.peer": "peer-b",
            "service.peer.name": "peer-b",
            "server.address": "127.0.0.1",
            "server.port": port,
            "url.scheme": "http",
            "federation.items": 2,
            "federation.accepted": 2,
        },
    )
    assert (server.name, server.kind, server.tenant) == ("POST /sync", "SERVER", "acme")
    assert server.parent_id == push.span_id and server.trace_id == push.trace_id
    assert response.json()["trace_id"] == push.trace_id
    assert headers["traceparent"].startswith(f"00-{push.trace_id}-{push.span_id}-")


async def test_pull_async_without_egress_permission_sends_no_tenant(
    spans: SpanCapture, peer_url: str
) -> None:
    url = f"{peer_url}/sync"
    headers: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        with tenant_scope("acme"):
            async with trace_federation_pull("peer-c", url=url, headers=headers):
                response = await client.get(url, headers=headers)
    assert "baggage" not in headers  # the default egress policy allows no host
    assert response.json() == {"items": [1, 2, 3], "tenant": "default"}
    wait_for_spans(spans, 2)
    pull, server = spans.one("federation.sync.pull"), spans.one("GET /sync")
    assert pull.tenant == "acme"
    # No tenant went out, so nothing vouches for the trace: the peer starts its own,
    # linked to the pull (one trace, one tenant).
    assert server.tenant == "default" and server.parent_id is None
    assert server.raw is not None
    assert [f"{link.context.span_id:016x}" for link in server.raw.links] == [pull.span_id]


def test_sync_error_is_recorded_and_credentials_in_the_url_are_not(spans: SpanCapture) -> None:
    with (
        pytest.raises(httpx.ConnectError),
        trace_federation_sync(
            "push",
            "peer-d",
            url="http://user:LEAKpw@127.0.0.1:9/sync?token=LEAKq",
            tenant_id="acme",
        ),
    ):
        httpx.post("http://127.0.0.1:9/sync", timeout=2)
    [span] = spans.spans()
    assert span.status == "ERROR" and span.attributes["error.type"] == "ConnectError"
    assert span.attributes["server.port"] == 9
    assert "LEAK" not in repr(span.attributes)


def test_headers_are_injected_even_when_the_span_is_level_gated() -> None:
    config = TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")
    with capture_spans(config) as cap:
        with cap.manager.span("request", tenant_id="acme") as request_span:
            headers: dict[str, str] = {}
            with trace_federation_push("peer-e", headers=headers) as span:
                assert not span.is_recording()
        assert cap.names() == ["request"]
    trace_id = f"{request_span.get_span_context().trace_id:032x}"
    assert headers["traceparent"].split("-")[1] == trace_id  # the caller's trace goes on


def test_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="push"):
        trace_federation_sync("sideways", "peer")  # type: ignore[arg-type]
