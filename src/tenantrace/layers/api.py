"""ASGI and WSGI middleware: one SERVER span per request, continuing the caller's trace.

::

    app = ASGITracingMiddleware(FastAPI(...))          # uvicorn, hypercorn...
    wsgi_app = WSGITracingMiddleware(flask_app.wsgi_app)

Per request the middleware extracts the incoming trace context and the tenant
(``tenantrace.propagation.extract_trace_context``: a tenant claimed in baggage
counts only where the trust policy accepts it; ``tenant_resolver`` can name the
tenant from the request itself, e.g. the authenticated principal), makes it
current for the application, and records a SERVER span with the HTTP semantic
conventions: ``http.request.method``, ``url.path``, ``url.scheme``,
``url.query`` (secret-looking parameters redacted), ``http.route`` (when the
framework knows it), ``http.response.status_code``, ``server.address``,
``server.port``, ``client.address``, ``user_agent.original``. A 5xx response
sets status ERROR. Authorization and cookie headers are never recorded.

The span is named ``{method} {http.route}`` (``GET /items/{item_id}``), or just
``{method}`` when the route is not known: never the raw path, which would make
one span name per item id.

FastAPI (0.165+) has native telemetry, on by default, which would re-extract the
caller's context from the headers, replacing the one the middleware made current
(the handler would lose the tenant), and start a second SERVER span beside this
one, outside the tenant. The ASGI middleware therefore marks each HTTP scope with
``"fastapi.telemetry"``, the key FastAPI itself uses to tell a mounted app that
the request's telemetry is handled already: FastAPI then records nothing for the
request (no span, metrics or logs). ``fastapi_telemetry=True`` leaves FastAPI's
telemetry on, for its metrics and logs, and is correct only with
``FastAPI(telemetry={"tracing": False})``; the middleware warns once when it
finds a SERVER span opened by another layer (FastAPI's, or an OpenTelemetry
middleware placed outside it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tenantrace.export.scrubbing import Scrubber
from tenantrace.export.secrets import QUERY_REDACTED, redact_url
from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import (
    TelemetryManager,
    get_telemetry_manager,
    instrumentation_suppressed,
)
from tenantrace.instrumentation.spans import activate_span, end_span_with
from tenantrace.instrumentation.tenants import is_valid_tenant_id, with_tenant

if TYPE_CHECKING:
    from tenantrace.propagation.trust import TrustArg

__all__ = ["ASGITracingMiddleware", "WSGITracingMiddleware"]

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
TenantResolver = Callable[[Mapping[str, Any]], str | None]
RouteResolver = Callable[[Mapping[str, Any]], str | None]

# opentelemetry.semconv.attributes (http, url, server, client, user_agent, network, error).
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL: Final = "http.request.method_original"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_QUERY: Final = "url.query"
URL_SCHEME: Final = "url.scheme"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CLIENT_ADDRESS: Final = "client.address"
CLIENT_PORT: Final = "client.port"
USER_AGENT_ORIGINAL: Final = "user_agent.original"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
ERROR_TYPE: Final = "error.type"
HEADER_PREFIX: Final = "http.request.header."

_KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
# Never recorded, whatever the caller asks for.
_NEVER_RECORDED: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
# Query parameters the HTTP conventions name as sensitive (url.query), beyond
# secret-looking names; compared in lower case.
# The ASGI scope key FastAPI's native telemetry (0.165+) keeps its request state
# in. FastAPI leaves a request whose scope already holds the key to whoever set
# it (mounted apps; ``None`` is what FastAPI stores for an excluded request).
FASTAPI_TELEMETRY_SCOPE_KEY: Final = "fastapi.telemetry"
_MAX_QUERY_CHARS: Final = 2048
_MAX_HEADER_CHARS: Final = 1024
_KEY_RULES: Final = Scrubber()


# ------------------------------------------------------------------ helpers


def _method(raw: str) -> tuple[str, str | None]:
    method = raw.upper()
    if method in _KNOWN_METHODS:
        return method, None
    return "_OTHER", raw[:64]


def _host_port(value: str) -> tuple[str | None, int | None]:
    value = value.strip()
    if not value:
        return None, None
    if value.startswith("["):  # [::1]:8000
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host[:255] or None, int(port) if port.isdigit() and len(port) <= 5 else None


def _redacted_query(query: str) -> str:
    """``url.query`` with secret parameters' values ``REDACTED``, as the export path
    would (its secret names, and any the scrubber's key rules name)."""
    parts = []
    for part in redact_url(query[:_MAX_QUERY_CHARS]).split("&"):
        name, sep, value = part.partition("=")
        secret = sep and value != QUERY_REDACTED and _KEY_RULES.is_secret(name)
        parts.append(f"{name}={QUERY_REDACTED}" if secret else part)
    return "&".join(parts)


def _header_names(names: Iterable[str]) -> frozenset[str]:
    wanted = {name.lower() for name in names}
    return frozenset(
        name for name in wanted if name not in _NEVER_RECORDED and not _KEY_RULES.is_secret(name)
    )


def _span_name(method: str, route: str | None) -> str:
    return f"{method} {route}" if route else method


class _Request:
    """What one request's span needs, from an ASGI scope or a WSGI environ."""

    __slots__ = ("attributes", "method", "path")

    def __init__(self, method: str, path: str, attributes: dict[str, AttributeValue]) -> None:
        self.method = method
        self.path = path
        self.attributes = attributes


@dataclass(frozen=True, slots=True)
class _RequestInfo:
    """The parts of an ASGI scope or WSGI environ the request span records."""

    method: str
    path: str
    scheme: str
    headers: Mapping[str, list[str]]
    client: tuple[str | None, int | None]
    server: tuple[str | None, int | None]
    query: str | None
    protocol: str | None
    capture: frozenset[str]


def _request_attributes(info: _RequestInfo) -> _Request:
    raw_method, path, headers = info.method, info.path, info.headers
    method, original = _method(raw_method)
    attributes: dict[str, AttributeValue] = {
        HTTP_REQUEST_METHOD: method,
        URL_PATH: path,
        URL_SCHEME: info.scheme,
    }
    if original is not None:
        attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
    if info.query:
        attributes[URL_QUERY] = _redacted_query(info.query)
    host = headers.get("host")
    address, port = _host_port(host[0]) if host else (None, None)
    if address is None:
        address, port = info.server
    if address:
        attributes[SERVER_ADDRESS] = address
    if port is not None:
        attributes[SERVER_PORT] = port
    if info.client[0]:
        attributes[CLIENT_ADDRESS] = info.client[0]
    if info.client[1] is not None:
        attributes[CLIENT_PORT] = info.client[1]
    agent = headers.get("user-agent")
    if agent:
        attributes[USER_AGENT_ORIGINAL] = agent[0][:_MAX_HEADER_CHARS]
    if info.protocol:
        attributes[NETWORK_PROTOCOL_VERSION] = info.protocol
    for name in info.capture:
        values = headers.get(name)
        if values:
            attributes[HEADER_PREFIX + name] = [v[:_MAX_HEADER_CHARS] for v in values[:8]]
    return _Request(method, path, attributes)


def _finish_attributes(span: Span, method: str, status: int | None, route: str | None) -> None:
    try:
        if route:
            span.set_attribute(HTTP_ROUTE, route)
            span.update_name(_span_name(method, route))
        if status is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
            if status >= 500:  # a server span: 4xx is the client's error, not ours
                span.set_attribute(ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR))
    except Exception:
        _logger.debug("tenantrace: could not finish the request span", exc_info=True)


class _Common:
    """Options shared by both middlewares."""

    def __init__(
        self,
        *,
        trust: TrustArg,
        tenant_resolver: TenantResolver | None,
        route_resolver: RouteResolver | None,
        excluded_paths: Iterable[str],
        capture_request_headers: Iterable[str],
        level: TelemetryLevel,
    ) -> None:
        self.trust = trust
        self.tenant_resolver = tenant_resolver
        self.route_resolver = route_resolver
        self.excluded_paths = frozenset(excluded_paths)
        self.capture = _header_names(capture_request_headers)
        self.level = TelemetryLevel.parse(level)

    def context_for(self, carrier: object, request: Mapping[str, Any]) -> Context:
        """The caller's context (trace, baggage, trusted tenant), plus the resolved tenant."""
        from tenantrace.propagation import extract_trace_context

        ctx = extract_trace_context(carrier, trust=self.trust)
        if self.tenant_resolver is None:
            return ctx
        manager = get_telemetry_manager()
        try:
            tenant = self.tenant_resolver(request)
        except Exception as exc:
            manager.warn_once("api.tenant_resolver", "tenantrace: tenant_resolver raised %r", exc)
            return ctx
        if tenant is None:
            return ctx
        if not is_valid_tenant_id(tenant):
            manager.record_rejected_tenant()
            return ctx
        # The application's own decision (e.g. the authenticated principal)
        # outranks anything the carrier claimed.
        return with_tenant(tenant, ctx)

    def warn_if_traced_outside(self, manager: TelemetryManager) -> None:
        """Warn once when another layer opened this request's SERVER span before the middleware.

        Ours would be its sibling, and the other one (started from the bare
        headers) is not in the tenant the middleware accepts.
        """
        span = trace_api.get_current_span()
        if span.is_recording() and getattr(span, "kind", None) is SpanKind.SERVER:
            manager.warn_once(
                "api.outer_server_span",
                "tenantrace: a SERVER span (%r) was already open when the request reached the "
                "tracing middleware: another layer traced it first, outside the tenant (FastAPI's "
                "native telemetry when the middleware is added with app.add_middleware, or an "
                "OpenTelemetry ASGI/WSGI middleware such as FastAPIInstrumentor's). Make the "
                "tenantrace middleware the outermost layer, e.g. ASGITracingMiddleware(app), or "
                "turn the other off, e.g. FastAPI(telemetry={'tracing': False})",
                getattr(span, "name", "?"),
            )

    def traced(self, manager: TelemetryManager, path: str, ctx: Context) -> bool:
        return (
            manager.is_enabled_for(self.level)
            and path not in self.excluded_paths
            and not instrumentation_suppressed(ctx)
        )

    def route(self, request: Mapping[str, Any]) -> str | None:
        if self.route_resolver is None:
            return None
        try:
            route = self.route_resolver(request)
        except Exception:
            return None
        return route if isinstance(route, str) and route else None

    def start(self, manager: TelemetryManager, request: _Request, ctx: Context) -> tuple[Span, str]:
        tenant = manager.resolve_tenant(None, ctx)
        span = manager.start_span(
            request.method, tenant, None, request.attributes, kind=SpanKind.SERVER, context=ctx
        )
        return span, tenant


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


# --------------------------------------------------------------------- ASGI


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
        self._options = _Common(
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
            _finish_attributes(span, request.method, code, options.route(scope))
            end_span_with(span, error)

    def _request(self, scope: Scope) -> _Request:
        headers = _asgi_headers(scope)
        raw_query = scope.get("query_string") or b""
        query = bytes(raw_query).decode("latin-1") if raw_query else None
        version = scope.get("http_version")
        return _request_attributes(
            _RequestInfo(
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


# --------------------------------------------------------------------- WSGI


def _wsgi_headers(environ: Mapping[str, Any]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for key, value in environ.items():
        if isinstance(key, str) and key.startswith("HTTP_") and isinstance(value, str):
            headers[key[5:].replace("_", "-").lower()] = [value]
    return headers


def _port(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) <= 5 else None


class _TracedBody:
    """The application's response iterable; ends the request span when closed or exhausted.

    The span is current while each chunk is produced (a streaming body runs
    application code), never between chunks.
    """

    def __init__(
        self, body: Iterable[bytes], active: Context, finish: Callable[[BaseException | None], None]
    ) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._active = active
        self._finish = finish

    def __iter__(self) -> _TracedBody:
        return self

    def __next__(self) -> bytes:
        token = otel_context.attach(self._active)
        try:
            if self._iterator is None:
                self._iterator = iter(self._body)
            return next(self._iterator)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        finally:
            otel_context.detach(token)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)


class WSGITracingMiddleware:
    """WSGI middleware: a SERVER span per request, ended when the response is closed.

    Options as for ``ASGITracingMiddleware``; resolvers receive the WSGI
    environ. WSGI has no standard route, so ``http.route`` is set only by a
    ``route_resolver`` (called once the response is done).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        trust: TrustArg = None,
        tenant_resolver: TenantResolver | None = None,
        route_resolver: RouteResolver | None = None,
        excluded_paths: Iterable[str] = (),
        capture_request_headers: Iterable[str] = (),
        level: TelemetryLevel = TelemetryLevel.BASIC,
    ) -> None:
        self.app = app
        self._options = _Common(
            trust=trust,
            tenant_resolver=tenant_resolver,
            route_resolver=route_resolver,
            excluded_paths=excluded_paths,
            capture_request_headers=capture_request_headers,
            level=level,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        options = self._options
        try:
            ctx = options.context_for(environ, environ)
            manager = get_telemetry_manager()
            path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "") or "/")
            traced = options.traced(manager, path, ctx)
            options.warn_if_traced_outside(manager)
            request = self._request(environ, path) if traced else None
            started = options.start(manager, request, ctx) if request is not None else None
        except Exception as exc:  # never fail a request because of telemetry
            _logger.debug("tenantrace: WSGI request span not started (%r)", exc)
            return self.app(environ, start_response)
        outer = otel_context.attach(ctx)
        if started is None or request is None:
            try:
                return self.app(environ, start_response)
            finally:
                otel_context.detach(outer)
        span, tenant = started
        status: list[int] = []
        done: list[bool] = []

        def start_with_status(status_line: str, headers: Any, *exc_info: Any) -> Any:
            code = str(status_line)[:3]
            if code.isdigit():
                status[:] = [int(code)]
            return start_response(status_line, headers, *exc_info)

        def finish(error: BaseException | None) -> None:
            if done:
                return
            done.append(True)
            code = status[0] if status else (500 if error is not None else None)
            _finish_attributes(span, request.method, code, options.route(environ))
            end_span_with(span, error)

        inner = activate_span(span, tenant)
        try:
            body = self.app(environ, start_with_status)
            active = otel_context.get_current()
        except BaseException as exc:
            finish(exc)
            raise
        finally:
            otel_context.detach(inner)  # type: ignore[arg-type]
            otel_context.detach(outer)
        return _TracedBody(body, active, finish)

    def _request(self, environ: Mapping[str, Any], path: str) -> _Request:
        headers = _wsgi_headers(environ)
        protocol = str(environ.get("SERVER_PROTOCOL", ""))
        version = protocol.partition("/")[2] or None
        remote = environ.get("REMOTE_ADDR")
        server = environ.get("SERVER_NAME")
        return _request_attributes(
            _RequestInfo(
                method=str(environ.get("REQUEST_METHOD") or "GET"),
                path=path,
                scheme=str(environ.get("wsgi.url_scheme") or "http"),
                headers=headers,
                client=(str(remote) if remote else None, _port(environ.get("REMOTE_PORT"))),
                server=(str(server) if server else None, _port(environ.get("SERVER_PORT"))),
                query=str(environ.get("QUERY_STRING") or "") or None,
                protocol=version,
                capture=self._options.capture,
            )
        )
