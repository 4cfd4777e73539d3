"""``ASGITracingMiddleware``, and how it reads an ASGI scope (see ``tenantrace.layers.api``).

It marks each HTTP scope with ``"fastapi.telemetry"``, the key FastAPI (0.165+)
itself uses to tell a mounted app that the request's telemetry is handled
already: FastAPI's native telemetry would otherwise re-extract the caller's
context from the headers, replacing the one the middleware made current (the
handler would lose the tenant), and start a second SERVER span beside this
one, outside the tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import TelemetryManager, get_telemetry_manager
from tenantrace.instrumentation.spans import activate_span, end_span_with
from tenantrace.layers._request import (
    MiddlewareOptions,
    Request,
    RequestInfo,
    RouteResolver,
    TenantResolver,
    finish_attributes,
    request_attributes,
)

if TYPE_CHECKING:
    from tenantrace.propagation.trust import TrustArg

__all__ = ["FASTAPI_TELEMETRY_SCOPE_KEY", "ASGIApp", "ASGITracingMiddleware"]

# The middlewares' one logger, whichever of their modules logs.
_logger = logging.getLogger("tenantrace.layers.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The ASGI scope key FastAPI's native telemetry (0.165+) keeps its request state
# in. FastAPI leaves a request whose scope already holds the key to whoever set
# it (mounted apps; ``None`` is what FastAPI stores for an excluded request).
FASTAPI_TELEMETRY_SCOPE_KEY: Final = "fastapi.telemetry"


def _asgi_headers(scope: Scope) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for item in scope.get("headers") or ():
        try:
            name, value = item
            key = bytes(name).decode("latin-1").lower()
            headers.setdefault(key, []).append(bytes(value).decode("latin-1"))
        except Exception:  # a malformed header item is not recorded
            continue
    return headers


def _asgi_address(value: object) -> tuple[str | None, int | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
        return (
            str(host) if host else None,
            port if isinstance(port, int) and not isinstance(port, bool) else None,
        )
    return None, None


def _fastapi_span_started(scope: Mapping[str, Any]) -> bool:
    """Whether FastAPI's native telemetry started its own span for this request."""
    return getattr(scope.get(FASTAPI_TELEMETRY_SCOPE_KEY), "span", None) is not None


def _starlette_route(scope: Mapping[str, Any]) -> str | None:
    """The route template Starlette / FastAPI store in the scope once routing matched."""
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str) or not path:
        return None
    root = scope.get("root_path")
    return f"{root}{path}" if isinstance(root, str) and not path.startswith(root) else path


class ASGITracingMiddleware:
    """Pure ASGI middleware (no framework dependency): a SERVER span per HTTP request.

    ``trust`` is the tenant trust policy for inbound baggage (default: the
    process policy, which accepts no claim); ``tenant_resolver(scope)`` may
    return the tenant of the request; ``route_resolver(scope)`` the route
    template (default: Starlette/FastAPI's matched route);
    ``excluded_paths`` get the caller's context but no span (health checks);
    ``capture_request_headers`` names headers to record (never authorization
    or cookies). Spans have ``level`` BASIC by default: the request span is
    the root of everything else. Non-HTTP scopes pass through.

    Unless ``fastapi_telemetry`` is True, each HTTP scope gets the
    ``"fastapi.telemetry"`` key, so that FastAPI's native telemetry (0.165+)
    leaves the request to this middleware: otherwise FastAPI would replace the
    context made current here (the handler would lose the tenant) and start a
    second SERVER span outside the tenant. ``fastapi_telemetry=True`` keeps
    FastAPI's metrics and logs, and needs ``FastAPI(telemetry={"tracing": False})``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: TrustArg = None,
        tenant_resolver: TenantResolver | None = None,
        route_resolver: RouteResolver | None = _starlette_route,
        excluded_paths: Iterable[str] = (),
        capture_request_headers: Iterable[str] = (),
        level: TelemetryLevel = TelemetryLevel.BASIC,
        fastapi_telemetry: bool = False,
    ) -> None:
        self.app = app
        self.fastapi_telemetry = fastapi_telemetry
        self._options = MiddlewareOptions(
            trust=trust,
            tenant_resolver=tenant_resolver,
            route_resolver=route_resolver,
            excluded_paths=excluded_paths,
            capture_request_headers=capture_request_headers,
            level=level,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        options = self._options
        try:
            ctx = options.context_for(scope.get("headers") or [], scope)
            manager = get_telemetry_manager()
            path = str(scope.get("path") or "/")
            traced = options.traced(manager, path, ctx)
            options.warn_if_traced_outside(manager)
        except Exception as exc:  # never fail a request because of telemetry
            _logger.debug("tenantrace: ASGI context extraction failed (%r)", exc)
            await self.app(scope, receive, send)
            return
        # Present already: a FastAPI app outside this middleware handles it.
        # Else marked for excluded and untraced requests too: FastAPI would
        # still replace the caller's context the middleware hands the application.
        unclaimed = FASTAPI_TELEMETRY_SCOPE_KEY not in scope
        marked = unclaimed and not self.fastapi_telemetry
        if marked:
            scope[FASTAPI_TELEMETRY_SCOPE_KEY] = None
        token = otel_context.attach(ctx)
        try:
            if traced:
                watch = unclaimed and self.fastapi_telemetry
                await self._traced(manager, scope, receive, send, ctx, watch_fastapi=watch)
            else:
                await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
            if marked:
                scope.pop(FASTAPI_TELEMETRY_SCOPE_KEY, None)

    async def _traced(
        self,
        manager: TelemetryManager,
        scope: Scope,
        receive: Receive,
        send: Send,
        ctx: Context,
        *,
        watch_fastapi: bool,
    ) -> None:
        options = self._options
        try:
            request = self._request(scope)
            span, tenant = options.start(manager, request, ctx)
        except Exception as exc:
            manager.warn_once("api.start", "tenantrace: request span not started (%r)", exc)
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def send_with_status(message: Message) -> None:
            if message.get("type") == "http.response.start" and not status:
                code = message.get("status")
                if isinstance(code, int):
                    status.append(code)
                if watch_fastapi and _fastapi_span_started(scope):
                    manager.warn_once(
                        "api.fastapi_span",
                        "tenantrace: FastAPI's native tracing started a second SERVER span "
                        "under ASGITracingMiddleware(fastapi_telemetry=True), outside the tenant, "
                        "and the handler runs in FastAPI's context, without it: pass "
                        "telemetry={'tracing': False} to FastAPI(), or drop fastapi_telemetry=True",
                    )
            await send(message)

        token = activate_span(span, tenant)
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            error = exc
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            code = status[0] if status else (500 if error is not None else None)
            finish_attributes(span, request.method, code, options.route(scope))
            end_span_with(span, error)

    def _request(self, scope: Scope) -> Request:
        headers = _asgi_headers(scope)
        raw_query = scope.get("query_string") or b""
        query = bytes(raw_query).decode("latin-1") if raw_query else None
        version = scope.get("http_version")
        return request_attributes(
            RequestInfo(
                method=str(scope.get("method") or "GET"),
                path=str(scope.get("path") or "/"),
                scheme=str(scope.get("scheme") or "http"),
                headers=headers,
                client=_asgi_address(scope.get("client")),
                server=_asgi_address(scope.get("server")),
                query=query,
                protocol=str(version) if version else None,
                capture=self._options.capture,
            )
        )
