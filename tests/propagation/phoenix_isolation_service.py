"""Process B of ``test_phoenix_isolation.py``: an ASGI service under uvicorn exporting to Phoenix.

``python phoenix_isolation_service.py --phoenix http://127.0.0.1:PORT --default-tenant T``
binds a loopback port, prints it on stdout, then serves. Its spans go to the
given Phoenix over OTLP/HTTP, one export per ended span. Three doors, one
handler, each behind its own ``ASGITracingMiddleware``:

- ``POST /same``: ``trust=True`` (an internal hop): the caller's tenant claim is
  the request's tenant;
- ``POST /resolved``: ``trust=True`` and a ``tenant_resolver`` that takes the
  tenant from ``x-authenticated-tenant`` (the application's own decision);
- ``POST /gateway``: ``TenantTrustPolicy(tenant_header="x-gateway-tenant")``, the
  header a trusted gateway sets to the request's tenant.

The handler opens ``b.work`` under the SERVER span, then ``b.thread`` in a
worker thread and ``b.task`` in an asyncio task under it, and answers with
what each span is (ids, parent, tenant, links), read in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from opentelemetry import trace as trace_api

from tenantrace import (
    ASGITracingMiddleware,
    BatchExportConfig,
    TelemetryConfig,
    TenantTrustPolicy,
    current_tenant,
    get_telemetry_manager,
    init_telemetry,
)
from tenantrace.instrumentation.tenants import span_tenant

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def describe(span: Any) -> dict[str, Any]:
    """A span as the test compares it with what Phoenix holds (Phoenix keeps no links)."""
    context = span.get_span_context()
    parent = getattr(span, "parent", None)
    return {
        "name": getattr(span, "name", "?"),
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
        "tenant": span_tenant(span),
        "project": span.resource.attributes.get("openinference.project.name"),
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": dict(link.attributes or {}),
            }
            for link in getattr(span, "links", ())
        ],
    }


def _in_thread() -> dict[str, Any]:
    with get_telemetry_manager().span("b.thread") as span:
        return describe(span)


async def _in_task() -> dict[str, Any]:
    async with get_telemetry_manager().span("b.task") as span:
        await asyncio.sleep(0)
        return describe(span)


async def handler(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    answer: dict[str, Any] = {
        "server": describe(trace_api.get_current_span()),
        "tenant": current_tenant(),
    }
    with get_telemetry_manager().span("b.work") as work:
        answer["work"] = describe(work)
        answer["thread"] = await asyncio.to_thread(_in_thread)
        answer["task"] = await asyncio.create_task(_in_task())
    body = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _authenticated(scope: Any) -> str | None:
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == b"x-authenticated-tenant":
            return bytes(value).decode("latin-1")
    return None


def _path(scope: Any) -> str | None:
    return str(scope.get("path") or "") or None


DOORS = {
    "/same": ASGITracingMiddleware(handler, trust=True, route_resolver=_path),
    "/resolved": ASGITracingMiddleware(
        handler, trust=True, tenant_resolver=_authenticated, route_resolver=_path
    ),
    "/gateway": ASGITracingMiddleware(
        handler,
        trust=TenantTrustPolicy(tenant_header="x-gateway-tenant"),
        route_resolver=_path,
    ),
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    door = DOORS.get(str(scope.get("path")))
    if scope.get("type") != "http" or door is None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await door(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phoenix", required=True)
    parser.add_argument("--default-tenant", required=True)
    args = parser.parse_args()
    init_telemetry(
        TelemetryConfig(
            service_name="isolation-service-b",
            otlp_endpoint=f"{args.phoenix}/v1/traces",
            otlp_protocol="http/protobuf",
            default_tenant_id=args.default_tenant,
            batch_config=BatchExportConfig(use_sync_export=True, export_timeout_millis=10_000),
        )
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # requests queue here until uvicorn serves them
    print(sock.getsockname()[1], flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    get_telemetry_manager().shutdown(timeout_millis=5000)
    sys.exit(0)


if __name__ == "__main__":
    main()
