"""ASGI and WSGI middleware, served on loopback and called with httpx from another process."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Request

from servers import call_from_another_process, serve_asgi, serve_wsgi, wait_for_spans
from tenantrace import TelemetryConfig, TelemetryLevel, current_tenant
from tenantrace.layers import ASGITracingMiddleware, WSGITracingMiddleware, trace_function
from tenantrace.propagation import TenantTrustPolicy, get_trace_id
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
SECRET_HEADERS = {"authorization": "Bearer LEAKtoken", "cookie": "session=LEAKcookie"}


def page_size(limit: int = 10) -> int:
    return min(limit, 100)


async def get_item(
    item_id: int,
    request: Request,
    q: str | None = None,
    size: int = Depends(page_size),
    x_request_id: str | None = Header(default=None),
) -> dict[str, Any]:
    """Read one item."""
    return {
        "item_id": item_id,
        "q": q,
        "size": size,
        "request_id": x_request_id,
        "tenant": current_tenant(),
        "trace_id": get_trace_id(),
        "path": request.url.path,
    }


def build_app() -> FastAPI:
    app = FastAPI()
    app.get("/items/{item_id}")(trace_function(name="get_item")(get_item))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("endpoint failed")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418)

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise HTTPException(status_code=503)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"trace_id": get_trace_id() or ""}

    return app


@pytest.fixture
def fastapi_url(spans: SpanCapture) -> Iterator[str]:
    app = ASGITracingMiddleware(
        build_app(),
        trust=TenantTrustPolicy(allowed_tenants=frozenset({"acme"})),
        tenant_resolver=lambda scope: _header(scope, b"x-tenant"),
        excluded_paths=["/health"],
        capture_request_headers=["x-request-id", "authorization", "cookie"],
    )
    with serve_asgi(app) as url:
        yield url


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def test_signature_dependencies_and_openapi_are_unchanged() -> None:
    decorated = trace_function(name="get_item")(get_item)
    assert inspect.signature(decorated) == inspect.signature(get_item)
    assert inspect.iscoroutinefunction(decorated)
    schema = build_app().openapi()
    operation = schema["paths"]["/items/{item_id}"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"item_id", "q", "limit", "x-request-id"}
    assert operation["description"] == "Read one item."


def test_server_span_continues_the_remote_trace_with_http_conventions(
    spans: SpanCapture, fastapi_url: str
) -> None:
    [answer] = call_from_another_process(
        [
            {
                "url": f"{fastapi_url}/items/42?q=shoes&api_key=LEAKkey&limit=5",
                "headers": {
                    "traceparent": TRACEPARENT,
                    "baggage": "tenant.id=acme",
                    "x-request-id": "req-1",
                    **SECRET_HEADERS,
                },
            }
        ]
    )
    assert answer["status"] == 200
    assert answer["body"]["tenant"] == "acme"  # a claim the trust policy allows
    assert answer["body"]["trace_id"] == TRACE_ID
    assert (answer["body"]["size"], answer["body"]["request_id"]) == (5, "req-1")
    endpoint, server = wait_for_spans(spans, 2)
    port = int(fastapi_url.rsplit(":", 1)[1])
    assert server == CapturedSpan(
        name="GET /items/{item_id}",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=TRACE_ID,
        span_id=server.span_id,
        parent_id=CALLER_SPAN,
        kind="SERVER",
        status="UNSET",
        attributes={
            "tenant.id": "acme",
            "http.request.method": "GET",
            "url.path": "/items/42",
            "url.scheme": "http",
            "url.query": "q=shoes&api_key=REDACTED&limit=5",
            "server.address": "127.0.0.1",
            "server.port": port,
            "client.address": "127.0.0.1",
            "client.port": server.attributes["client.port"],
            "user_agent.original": server.attributes["user_agent.original"],
            "network.protocol.version": "1.1",
            "http.request.header.x-request-id": ("req-1",),
            "http.route": "/items/{item_id}",
            "http.response.status_code": 200,
        },
    )
    assert str(server.attributes["user_agent.original"]).startswith("python-httpx/")
    assert (endpoint.name, endpoint.parent_id, endpoint.tenant) == (
        "get_item",
        server.span_id,
        "acme",
    )
    assert "LEAK" not in repr([s.attributes for s in spans.spans()])


def test_untrusted_tenant_claim_gets_neither_the_trace_nor_the_tenant(
    spans: SpanCapture, fastapi_url: str
) -> None:
    [answer] = call_from_another_process(
        [
            {
                "url": f"{fastapi_url}/items/1",
                "headers": {"traceparent": TRACEPARENT, "baggage": "tenant.id=victim"},
            }
        ]
    )
    # One trace, one tenant: an untrusted caller's trace is linked, not continued.
    assert answer["body"]["tenant"] == "default" and answer["body"]["trace_id"] != TRACE_ID
    _, server = wait_for_spans(spans, 2)
    assert server.tenant == "default" and server.trace_id != TRACE_ID
    assert server.raw is not None
    assert [f"{link.context.trace_id:032x}" for link in server.raw.links] == [TRACE_ID]
    assert spans.manager.get_stats()["rejected_tenants"] == 1


def test_tenant_resolver_outranks_the_carrier(spans: SpanCapture, fastapi_url: str) -> None:
    [answer] = call_from_another_process(
        [
            {
                "url": f"{fastapi_url}/items/7",
                "headers": {"baggage": "tenant.id=acme", "x-tenant": "globex"},
            }
        ]
    )
    assert answer["body"]["tenant"] == "globex"
    endpoint, server = wait_for_spans(spans, 2)
    assert server.tenant == endpoint.tenant == "globex"
    assert server.parent_id is None  # no traceparent: a new trace


def test_statuses_errors_and_excluded_paths(spans: SpanCapture, fastapi_url: str) -> None:
    answers = call_from_another_process(
        [
            {"url": f"{fastapi_url}/boom"},
            {"url": f"{fastapi_url}/teapot"},
            {"url": f"{fastapi_url}/unavailable"},
            {"url": f"{fastapi_url}/nowhere"},
            {"url": f"{fastapi_url}/health", "headers": {"traceparent": TRACEPARENT}},
            {"method": "PURGE", "url": f"{fastapi_url}/items/1"},
        ]
    )
    assert [a["status"] for a in answers] == [500, 418, 503, 404, 200, 405]
    # Excluded from spans, the health check still runs in the caller's trace.
    assert answers[4]["body"]["trace_id"] == TRACE_ID
    boom, teapot, unavailable, nowhere, purge = wait_for_spans(spans, 5)
    assert (boom.name, boom.status, boom.attributes["http.response.status_code"]) == (
        "GET /boom",
        "ERROR",
        500,
    )
    assert boom.attributes["error.type"] == "RuntimeError" and boom.events == ["exception"]
    assert (teapot.status, teapot.attributes["http.response.status_code"]) == ("UNSET", 418)
    assert (unavailable.status, unavailable.attributes["error.type"]) == ("ERROR", "503")
    # No route matched: the span is named after the method only, never the raw path.
    assert nowhere.name == "GET" and "http.route" not in nowhere.attributes
    assert purge.attributes["http.request.method"] == "_OTHER"
    assert purge.attributes["http.request.method_original"] == "PURGE"


def test_level_gated_middleware_still_carries_the_callers_context() -> None:
    config = TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")
    app = ASGITracingMiddleware(build_app(), level=TelemetryLevel.DETAILED)
    with capture_spans(config) as cap, serve_asgi(app) as url:
        [answer] = call_from_another_process(
            [{"url": f"{url}/items/3", "headers": {"traceparent": TRACEPARENT}}]
        )
        assert answer["body"]["trace_id"] == TRACE_ID
        assert cap.names() == []  # neither the request nor the DETAILED endpoint span


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    with capture_spans() as cap:
        await ASGITracingMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        assert cap.spans() == []
    assert seen == ["lifespan"]


# ------------------------------------------------------------------------ WSGI


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/crash":
        raise ValueError("crashed before responding")
    if path == "/fail":
        start_response("502 Bad Gateway", [("content-type", "text/plain")])
        return iter([b"upstream down"])
    start_response("200 OK", [("content-type", "text/plain")])

    def body() -> Iterator[bytes]:
        yield f"tenant={current_tenant()};".encode()
        yield f"trace={get_trace_id()}".encode()

    return body()


def route_of(environ: dict[str, Any]) -> str | None:
    return "/orders/{order_id}" if environ["PATH_INFO"].startswith("/orders/") else None


def test_wsgi_middleware_under_a_real_server(spans: SpanCapture) -> None:
    app = WSGITracingMiddleware(
        wsgi_app, trust=True, route_resolver=route_of, capture_request_headers=["cookie"]
    )
    with serve_wsgi(app) as url:
        answers = call_from_another_process(
            [
                {
                    "method": "POST",
                    "url": f"{url}/orders/991?token=LEAKq",
                    "headers": {
                        "traceparent": TRACEPARENT,
                        "baggage": "tenant.id=acme",
                        **SECRET_HEADERS,
                    },
                },
                {"url": f"{url}/fail"},
                {"url": f"{url}/crash"},
            ]
        )
    assert answers[0]["status"] == 200
    assert answers[0]["body"] == f"tenant=acme;trace={TRACE_ID}"
    assert [a["status"] for a in answers[1:]] == [502, 500]
    order, fail, crash = wait_for_spans(spans, 3)
    port = int(url.rsplit(":", 1)[1])
    assert order == CapturedSpan(
        name="POST /orders/{order_id}",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=TRACE_ID,
        span_id=order.span_id,
        parent_id=CALLER_SPAN,
        kind="SERVER",
        status="UNSET",
        attributes={
            "tenant.id": "acme",
            "http.request.method": "POST",
            "url.path": "/orders/991",
            "url.scheme": "http",
            "url.query": "token=REDACTED",
            "server.address": "127.0.0.1",
            "server.port": port,
            "client.address": "127.0.0.1",
            "user_agent.original": order.attributes["user_agent.original"],
            "network.protocol.version": "1.1",
            "http.route": "/orders/{order_id}",
            "http.response.status_code": 200,
        },
    )
    assert (fail.name, fail.status, fail.attributes["error.type"]) == ("GET", "ERROR", "502")
    assert (crash.status, crash.attributes["error.type"]) == ("ERROR", "ValueError")
    assert crash.attributes["http.response.status_code"] == 500
    assert "LEAK" not in repr([s.attributes for s in spans.spans()])


def test_wsgi_body_closed_early_ends_the_span() -> None:
    closed: list[bool] = []

    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:
            try:
                yield from (b"chunk" for _ in range(100))
            finally:
                closed.append(True)

        return body()

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/stream", "wsgi.url_scheme": "http"}
    with capture_spans() as cap:
        body = WSGITracingMiddleware(streaming)(environ, lambda status, headers, *exc: None)
        assert next(iter(body)) == b"chunk"
        assert cap.spans() == []  # still streaming
        body.close()  # type: ignore[attr-defined]
        [span] = cap.spans()
    assert closed == [True]
    assert (span.name, span.attributes["http.response.status_code"]) == ("GET", 200)
