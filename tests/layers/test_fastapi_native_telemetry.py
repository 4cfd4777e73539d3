"""FastAPI's native OpenTelemetry telemetry (0.165+) under the tenantrace ASGI middleware.

Left alone, FastAPI re-extracts the caller's context from the headers into a
fresh context, replacing the one the middleware made current (the handler
loses the tenant), and starts its own SERVER span beside the middleware's, in
the default tenant. The middleware marks the scope with ``"fastapi.telemetry"``
so FastAPI leaves the request to it. Served by uvicorn on loopback, called with
httpx from another process.

FastAPI traces only through a configured provider: the apps here get the
tenant-routing provider (what ``init_telemetry()`` makes global) explicitly, so
the process-wide provider stays untouched; one test sets it globally, in a
subprocess, as an application does.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind

from servers import call_from_another_process, serve_asgi, wait_for_spans
from tenantrace import current_tenant
from tenantrace.instrumentation.routing import TenantRoutingTracerProvider
from tenantrace.layers import ASGITracingMiddleware, WSGITracingMiddleware, trace_function
from tenantrace.layers.api import FASTAPI_TELEMETRY_SCOPE_KEY
from tenantrace.propagation import TenantTrustPolicy, get_trace_id
from tenantrace.testing import CapturedSpan, SpanCapture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
ACME = {
    "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
    "baggage": "tenant.id=acme",  # a claim TenantTrustPolicy(trusted=True) accepts
}
TRUSTED = TenantTrustPolicy(trusted=True)
ROUTING = TenantRoutingTracerProvider()  # follows the capturing manager of each test
APP_TRACER = ROUTING.get_tracer("shop.app")  # any OpenTelemetry library in the handler
WARNINGS = "tenantrace.instrumentation.manager"


def build_api(**telemetry: Any) -> FastAPI:
    """A FastAPI app whose native tracing is on (unless ``telemetry`` says otherwise)."""
    api = FastAPI(telemetry={"tracer_provider": ROUTING, **telemetry})

    @api.get("/items/{item_id}")
    @trace_function(name="get_item")
    async def get_item(item_id: int) -> dict[str, Any]:
        with APP_TRACER.start_as_current_span("load"):
            return {"item_id": item_id, "tenant": current_tenant(), "trace_id": get_trace_id()}

    @api.get("/sync")
    def sync_handler() -> dict[str, Any]:  # run in FastAPI's thread pool
        with APP_TRACER.start_as_current_span("sync-load"):
            return {"tenant": current_tenant(), "trace_id": get_trace_id()}

    @api.get("/health")
    async def health() -> dict[str, Any]:
        return {"tenant": current_tenant(), "trace_id": get_trace_id()}

    return api


@pytest.fixture
def served(spans: SpanCapture) -> Iterator[str]:
    """The app wrapped from outside, as documented: ``ASGITracingMiddleware(FastAPI())``."""
    app = ASGITracingMiddleware(build_api(), trust=TRUSTED, excluded_paths=["/health"])
    with serve_asgi(app) as url:
        yield url


def server_spans(captured: list[CapturedSpan]) -> list[CapturedSpan]:
    return [span for span in captured if span.kind == "SERVER"]


def continues_the_caller(span: CapturedSpan) -> bool:
    """A child of the caller's span, or (a tenant other than the caller's) linked to it."""
    if span.parent_id == CALLER_SPAN:
        return span.trace_id == TRACE_ID
    links = span.raw.links if span.raw is not None else ()
    return span.parent_id is None and any(
        f"{link.context.span_id:016x}" == CALLER_SPAN for link in links
    )


def assert_one_request_tree(captured: list[CapturedSpan], tenant: str) -> CapturedSpan:
    """One SERVER span continuing the caller; everything else below it, in ``tenant``."""
    [server] = server_spans(captured)
    assert continues_the_caller(server)
    assert {span.tenant for span in captured} == {tenant}
    assert {span.trace_id for span in captured} == {server.trace_id}
    ids = {span.span_id for span in captured}
    assert all(span.parent_id in ids for span in captured if span is not server)
    return server


# ----------------------------------------------------------------- the problem


def test_native_tracing_is_on_here_and_loses_the_tenant(spans: SpanCapture) -> None:
    """What the middleware is up against: a bare app traces, in the default tenant."""
    with serve_asgi(build_api()) as url:
        [answer] = call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}])
    assert answer["body"]["tenant"] in {None, "default"}  # nobody accepted the claim
    captured = wait_for_spans(spans, 6)
    [server] = server_spans(captured)
    assert server.raw is not None and server.raw.instrumentation_scope is not None
    assert server.raw.instrumentation_scope.name == "fastapi"
    assert server.tenant == "default" and continues_the_caller(server)
    assert {"fastapi.dependencies", "fastapi.endpoint", "fastapi.serialization"} <= {
        span.name for span in captured
    }


# --------------------------------------------------------------------- the fix


def test_the_accepted_tenant_reaches_the_handler_and_every_span(
    spans: SpanCapture, served: str
) -> None:
    answers = call_from_another_process(
        [
            {"url": f"{served}/items/42", "headers": ACME},
            {"url": f"{served}/sync", "headers": ACME},
        ]
    )
    for answer in answers:
        assert (answer["status"], answer["body"]["tenant"]) == (200, "acme")
    captured = wait_for_spans(spans, 5)
    items = [s for s in captured if s.name in {"GET /items/{item_id}", "get_item", "load"}]
    sync = [s for s in captured if s.name in {"GET /sync", "sync-load"}]
    assert len(items) + len(sync) == len(captured) == 5  # no fastapi.* span, no second server
    server = assert_one_request_tree(items, "acme")
    assert server.name == "GET /items/{item_id}"
    assert server.raw is not None and server.raw.instrumentation_scope is not None
    assert server.raw.instrumentation_scope.name != "fastapi"  # the middleware's own span
    get_item, load = (next(s for s in items if s.name == name) for name in ("get_item", "load"))
    assert (get_item.parent_id, load.parent_id) == (server.span_id, get_item.span_id)
    sync_server = assert_one_request_tree(sync, "acme")
    assert sync_server.name == "GET /sync"
    # The handlers ran in the middleware's trace.
    assert [a["body"]["trace_id"] for a in answers] == [server.trace_id, sync_server.trace_id]


def test_excluded_paths_get_the_callers_context_and_no_span_at_all(
    spans: SpanCapture, served: str
) -> None:
    [health, item] = call_from_another_process(
        [
            {"url": f"{served}/health", "headers": ACME},
            {"url": f"{served}/items/1", "headers": ACME},
        ]
    )
    assert (health["body"]["tenant"], health["body"]["trace_id"]) == ("acme", TRACE_ID)  # no span
    assert item["status"] == 200
    captured = wait_for_spans(spans, 3)
    # FastAPI records no span for the health check either: only the item's three.
    assert sorted(span.name for span in captured) == ["GET /items/{item_id}", "get_item", "load"]


def test_without_a_tenant_claim_still_one_server_span(spans: SpanCapture, served: str) -> None:
    [answer] = call_from_another_process([{"url": f"{served}/items/1"}])
    assert answer["body"]["tenant"] in {None, "default"}
    captured = wait_for_spans(spans, 3)
    [server] = server_spans(captured)
    assert server.parent_id is None and not server.links
    assert {span.tenant for span in captured} == {"default"}
    assert len(captured) == 3 and len({span.trace_id for span in captured}) == 1


def test_global_provider_as_init_telemetry_installs_it(tmp_path: Path) -> None:
    """The reported setup: FastAPI's defaults, the routing provider global, in a new process."""
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
            import httpx
            from fastapi import FastAPI
            from servers import serve_asgi, wait_for_spans
            from tenantrace import current_tenant
            from tenantrace.instrumentation.routing import install_routing_provider
            from tenantrace.layers import ASGITracingMiddleware
            from tenantrace.propagation import TenantTrustPolicy
            from tenantrace.testing import capture_spans

            assert install_routing_provider()
            api = FastAPI()  # native telemetry on, global provider

            @api.get("/items/{{item_id}}")
            async def get_item(item_id: int) -> dict:
                return {{"tenant": current_tenant()}}

            app = ASGITracingMiddleware(api, trust=TenantTrustPolicy(trusted=True))
            with capture_spans() as cap, serve_asgi(app) as url:
                body = httpx.get(f"{{url}}/items/1", headers={ACME!r}).json()
                wait_for_spans(cap, 1)
                found = [
                    [s.name, s.kind, s.tenant, s.parent_id or [
                        f"{{link.context.span_id:016x}}" for link in s.raw.links
                    ]]
                    for s in cap.spans()
                ]
            print(json.dumps({{"body": body, "spans": found}}))
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["body"] == {"tenant": "acme"}
    # One span: the middleware's, under (or, a new trace, linked to) the caller's.
    [[name, kind, tenant, caller]] = out["spans"]
    assert (name, kind, tenant) == ("GET /items/{item_id}", "SERVER", "acme")
    assert caller in (CALLER_SPAN, [CALLER_SPAN])


# ----------------------------------------------------------- the scope marker


async def _noop_receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _call(app: ASGITracingMiddleware, scope: dict[str, Any]) -> None:
    async def send(message: Any) -> None:
        return None

    await app(scope, _noop_receive, send)


@pytest.mark.parametrize(
    ("options", "before", "during", "after"),
    [
        ({}, "absent", None, "absent"),  # marked for the request, then removed
        ({"fastapi_telemetry": True}, "absent", "absent", "absent"),
        ({}, "outer FastAPI's", "outer FastAPI's", "outer FastAPI's"),  # never overwritten
        ({"excluded_paths": ["/x"]}, "absent", None, "absent"),  # untraced requests too
    ],
)
async def test_the_scope_marker(
    spans: SpanCapture, options: dict[str, Any], before: str, during: str, after: str
) -> None:
    seen: list[object] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get(FASTAPI_TELEMETRY_SCOPE_KEY, "absent"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    if before != "absent":
        scope[FASTAPI_TELEMETRY_SCOPE_KEY] = before
    await _call(ASGITracingMiddleware(app, **options), scope)
    assert seen == [during]
    assert scope.get(FASTAPI_TELEMETRY_SCOPE_KEY, "absent") == after


# ------------------------------------------- keeping FastAPI's metrics and logs


def test_fastapi_telemetry_true_with_tracing_off_keeps_fastapis_metrics(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    try:
        api = build_api(tracing=False, meter_provider=meters)
        app = ASGITracingMiddleware(api, trust=TRUSTED, fastapi_telemetry=True)
        with caplog.at_level(logging.WARNING, WARNINGS), serve_asgi(app) as url:
            [answer] = call_from_another_process([{"url": f"{url}/items/3", "headers": ACME}])
            assert_one_request_tree(wait_for_spans(spans, 3), "acme")
        assert answer["body"]["tenant"] == "acme"
        data = reader.get_metrics_data()
        assert data is not None
        names = {
            metric.name
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }
        assert "http.server.request.duration" in names
        assert "tenantrace" not in caplog.text
    finally:
        meters.shutdown()


def test_fastapi_telemetry_true_with_tracing_on_warns_once(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    app = ASGITracingMiddleware(build_api(), trust=TRUSTED, fastapi_telemetry=True)
    with caplog.at_level(logging.WARNING, WARNINGS), serve_asgi(app) as url:
        call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}] * 2)
        wait_for_spans(spans, 2 * 7)
    warnings = [r.getMessage() for r in caplog.records if r.name == WARNINGS]
    assert len(warnings) == 1
    assert "telemetry={'tracing': False}" in warnings[0]
    assert "fastapi_telemetry=True" in warnings[0]


# --------------------------------------------- the middleware inside FastAPI


def test_added_inside_fastapi_with_its_tracing_on_warns_once(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """``app.add_middleware`` runs after FastAPI started its span: only a setting helps."""
    api = build_api()
    api.add_middleware(ASGITracingMiddleware, trust=TRUSTED)
    with caplog.at_level(logging.WARNING, WARNINGS), serve_asgi(api) as url:
        call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}] * 2)
        # FastAPI's span, the middleware's, get_item, load (FastAPI's operation
        # spans are gone: the middleware's context hides FastAPI's request state).
        captured = wait_for_spans(spans, 2 * 4)
    assert sorted(span.tenant or "" for span in server_spans(captured)) == [
        "acme",
        "acme",
        "default",
        "default",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.name == WARNINGS]
    assert len(warnings) == 1
    assert "outermost" in warnings[0] and "telemetry={'tracing': False}" in warnings[0]


def test_added_inside_fastapi_with_its_tracing_off(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    api = build_api(tracing=False)
    api.add_middleware(ASGITracingMiddleware, trust=TRUSTED)
    with caplog.at_level(logging.WARNING, WARNINGS), serve_asgi(api) as url:
        [answer] = call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}])
        captured = wait_for_spans(spans, 3)
    assert answer["body"]["tenant"] == "acme"
    assert len(captured) == 3
    assert_one_request_tree(captured, "acme")
    assert "tenantrace" not in caplog.text


# ------------------------------------------ opentelemetry-instrumentation-fastapi


@pytest.fixture
def instrumentor() -> Any:
    module = pytest.importorskip("opentelemetry.instrumentation.fastapi")
    return module.FastAPIInstrumentor


def test_fastapi_instrumentor_inside_the_middleware_stays_in_the_tenant(
    spans: SpanCapture, instrumentor: Any
) -> None:
    """Its ASGI middleware finds the request span current: an INTERNAL child, same tenant."""
    api = build_api()
    instrumentor.instrument_app(api, tracer_provider=ROUTING)
    try:
        app = ASGITracingMiddleware(api, trust=TRUSTED)
        with serve_asgi(app) as url:
            [answer] = call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}])
            captured = wait_for_spans(spans, 6)
    finally:
        instrumentor.uninstrument_app(api)
    assert answer["body"]["tenant"] == "acme"
    server = assert_one_request_tree(captured, "acme")
    # FastAPI's native telemetry stands aside for the instrumentor; the
    # instrumentor's own request span is an INTERNAL child of the middleware's.
    assert not [span for span in captured if span.name.startswith("fastapi.")]
    [inner] = [s for s in captured if s.name == server.name and s is not server]
    assert (inner.kind, inner.parent_id) == ("INTERNAL", server.span_id)


def test_fastapi_instrumentor_outside_the_middleware_warns_once(
    spans: SpanCapture, instrumentor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = build_api()
    api.add_middleware(ASGITracingMiddleware, trust=TRUSTED)
    instrumentor.instrument_app(api, tracer_provider=ROUTING)  # wraps the whole stack
    try:
        with caplog.at_level(logging.WARNING, WARNINGS), serve_asgi(api) as url:
            call_from_another_process([{"url": f"{url}/items/1", "headers": ACME}] * 2)
            # The instrumentor's SERVER span (default tenant), the middleware's, two
            # "http send" spans (under the middleware's), get_item, load.
            wait_for_spans(spans, 2 * 6)
    finally:
        instrumentor.uninstrument_app(api)
    warnings = [r.getMessage() for r in caplog.records if r.name == WARNINGS]
    assert len(warnings) == 1 and "FastAPIInstrumentor" in warnings[0]


def test_wsgi_middleware_warns_too_when_a_server_span_is_already_open(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    """E.g. OpenTelemetry's WSGI middleware (a Flask instrumentor) placed outside it."""

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    app = WSGITracingMiddleware(wsgi_app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    with caplog.at_level(logging.WARNING, WARNINGS):
        for _ in range(2):
            with APP_TRACER.start_as_current_span("outer", kind=SpanKind.SERVER):
                body = app(dict(environ), lambda *args: None)
                assert list(body) == [b"ok"]
    warnings = [r.getMessage() for r in caplog.records if r.name == WARNINGS]
    assert len(warnings) == 1 and "'outer'" in warnings[0]
