"""One of the two services of ``test_two_processes.py``, run as its own process under uvicorn.

``python two_process_app.py front --peer-port N`` or ``... back``. The process
binds a loopback port, prints it on stdout, then serves. Spans are captured
in memory in the process itself and read back through ``GET /spans``.

- back: ``POST /work`` extracts the caller's context; the claimed tenant is
  honoured only when the caller presents the internal service token (the
  trust policy's validator). ``GET /echo`` returns the headers it received.
- front: ``POST /checkout`` runs for the tenant named by ``X-Tenant`` (its
  "authenticated" caller), calls back's ``/work`` on 127.0.0.1 (on the egress
  allowlist) and back's ``/echo`` on localhost (not on it).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Mapping
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from opentelemetry.trace import SpanKind

from tenantrace import TelemetryConfig, current_tenant, tenant_scope
from tenantrace.layers import get_tracer
from tenantrace.propagation import (
    EgressPolicy,
    TenantTrustPolicy,
    extract_trace_context,
    get_trace_id,
    inject_trace_context,
    set_egress_policy,
)
from tenantrace.testing import SpanCapture, capture_spans

SERVICE_TOKEN = "internal-service-token"


def _from_our_services(tenant: str, headers: Mapping[str, str]) -> bool:
    return headers.get("x-internal-token") == SERVICE_TOKEN


def _span_dicts(capture: SpanCapture) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "tenant": s.tenant,
            "project": s.project,
            "trace_id": s.trace_id,
            "span_id": s.span_id,
            "parent_id": s.parent_id,
            "kind": s.kind,
            "linked_traces": [f"{link.context.trace_id:032x}" for link in s.raw.links]
            if s.raw is not None
            else [],
        }
        for s in capture.spans()
    ]


def build_app(role: str, capture: SpanCapture, peer_port: int | None) -> FastAPI:
    app = FastAPI()
    tracer = get_tracer(f"two_process.{role}")

    @app.get("/spans")
    def spans() -> list[dict[str, Any]]:
        return _span_dicts(capture)

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return capture.manager.get_stats()

    if role == "back":
        trust = TenantTrustPolicy(validator=_from_our_services)

        @app.post("/work")
        async def work(request: Request) -> dict[str, Any]:
            ctx = extract_trace_context(request.headers, trust=trust)
            with tracer.start_as_current_span("back.work", context=ctx, kind=SpanKind.SERVER):
                return {"tenant": current_tenant(ctx), "trace_id": get_trace_id()}

        @app.get("/echo")
        async def echo(request: Request) -> dict[str, str]:
            return dict(request.headers)

        return app

    assert peer_port is not None
    set_egress_policy(EgressPolicy.allow(["127.0.0.1"]))
    internal = f"http://127.0.0.1:{peer_port}"
    external = f"http://localhost:{peer_port}"

    @app.post("/checkout")
    async def checkout(request: Request) -> dict[str, Any]:
        token = SERVICE_TOKEN if request.query_params.get("forge") is None else "forged"
        async with (
            tenant_scope(request.headers["x-tenant"]),
            httpx.AsyncClient(timeout=10) as client,
        ):
            with tracer.start_as_current_span("front.checkout", kind=SpanKind.SERVER):
                work_url = f"{internal}/work"
                headers = inject_trace_context({"x-internal-token": token}, url=work_url)
                work = (await client.post(work_url, headers=headers)).json()
                echo_url = f"{external}/echo"
                echoed = (
                    await client.get(echo_url, headers=inject_trace_context(url=echo_url))
                ).json()
                return {"trace_id": get_trace_id(), "sent": headers, "work": work, "echo": echoed}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["front", "back"])
    parser.add_argument("--peer-port", type=int)
    args = parser.parse_args()
    config = TelemetryConfig(
        exporter_type="memory",
        service_name=args.role,
        tenant_project_template=f"{args.role}-{{tenant_id}}",
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # requests queue here until uvicorn serves them
    with capture_spans(config) as capture:
        app = build_app(args.role, capture, args.peer_port)
        print(sock.getsockname()[1], flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        server.run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
