"""API layer: ASGI middleware on a FastAPI app and WSGI middleware on a plain WSGI app.

Run: python examples/layer_api.py  (no server: requests go through httpx's in-process
ASGI transport and wsgiref's test environ; under uvicorn or gunicorn nothing changes)
"""

import asyncio
from wsgiref.util import setup_testing_defaults

import httpx
from fastapi import FastAPI

from tenantrace import current_tenant
from tenantrace.layers import ASGITracingMiddleware, WSGITracingMiddleware, trace_function
from tenantrace.propagation import TenantTrustPolicy
from tenantrace.testing import capture_spans

api = FastAPI()


@api.get("/items/{item_id}")
@trace_function(name="get_item")  # the signature is kept: FastAPI still injects item_id
async def get_item(item_id: int) -> dict[str, object]:
    return {"item_id": item_id, "tenant": current_tenant()}


# The gateway in front of us is trusted to say which tenant a request is for.
app = ASGITracingMiddleware(api, trust=TenantTrustPolicy(allowed_tenants=frozenset({"acme"})))


def legacy_app(environ: dict, start_response):  # type: ignore[no-untyped-def]
    start_response("503 Service Unavailable", [("content-type", "text/plain")])
    return [b"maintenance"]


wsgi_app = WSGITracingMiddleware(legacy_app, route_resolver=lambda environ: "/legacy")


async def call_asgi() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.internal") as client:
        headers = {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "baggage": "tenant.id=acme",
            "authorization": "Bearer never-recorded",
        }
        response = await client.get("/items/42?q=shoes", headers=headers)
        print("ASGI response:", response.status_code, response.json())


def call_wsgi() -> None:
    environ: dict = {"PATH_INFO": "/legacy"}
    setup_testing_defaults(environ)
    body = wsgi_app(environ, lambda status, headers, *exc: print("WSGI status  :", status))
    print("WSGI body    :", b"".join(body))
    body.close()  # type: ignore[attr-defined]  # what a WSGI server does; ends the span


with capture_spans() as spans:
    asyncio.run(call_asgi())
    call_wsgi()
    for span in spans.spans():
        print(f"[{span.project}] {span.kind:8} {span.name:22} {span.status}")
    server = spans.one("GET /items/{item_id}")
    print("server span  :", {k: v for k, v in server.attributes.items() if k.startswith("http")})
    assert server.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server.tenant == "acme" and "never-recorded" not in str(server.attributes)
    assert spans.one("GET /legacy").status == "ERROR"
