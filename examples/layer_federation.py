"""Federation layer: a push to a peer carries the trace (and, where allowed, the tenant).

Run: python examples/layer_federation.py  (no server: the peer is an ASGI app reached
through httpx's in-process transport; spans of both sides are captured and printed)
"""

import asyncio

import httpx
from fastapi import FastAPI, Request

from tenantrace import current_tenant, tenant_scope
from tenantrace.layers import ASGITracingMiddleware, trace_federation_push
from tenantrace.propagation import EgressPolicy, set_egress_policy
from tenantrace.testing import capture_spans

peer = FastAPI()


@peer.post("/sync")
async def receive(request: Request) -> dict[str, object]:
    return {"stored": len(await request.json()), "tenant": current_tenant()}


# The peer is one of our own nodes: it honours the tenant we send it.
peer_app = ASGITracingMiddleware(peer, trust=True)
# Baggage (the tenant) may go to our peers only; any other host gets the trace context alone.
set_egress_policy(EgressPolicy.allow(["*.federation.internal"]))


async def push(batch: list[dict[str, int]]) -> dict[str, object]:
    url = "http://peer-b.federation.internal/sync"
    headers = {"content-type": "application/json"}
    transport = httpx.ASGITransport(app=peer_app)
    # On entry the span is current and `headers` get its traceparent (and baggage).
    sync = trace_federation_push("peer-b", url=url, headers=headers, items=len(batch))
    async with httpx.AsyncClient(transport=transport) as http, sync:
        response = await http.post(url, json=batch, headers=headers)
    print("injected     :", sorted(headers))
    return dict(response.json())


with capture_spans() as spans:
    with tenant_scope("acme"):
        answer = asyncio.run(push([{"id": 1}, {"id": 2}]))
    print("peer answered:", answer)
    push_span, server = spans.one("federation.sync.push"), spans.one("POST /sync")
    for span in (push_span, server):
        print(f"[{span.project}] {span.kind:6} {span.name:20} parent={span.parent_id}")
    assert server.parent_id == push_span.span_id and server.tenant == "acme"
    assert answer == {"stored": 2, "tenant": "acme"}
