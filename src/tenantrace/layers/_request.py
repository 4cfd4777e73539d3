"""What both middlewares share: a request's span attributes (the HTTP semantic
conventions), its name and end, and the options that pick its context and tenant."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

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
from tenantrace.instrumentation.tenants import is_valid_tenant_id, with_tenant

if TYPE_CHECKING:
    from tenantrace.propagation.trust import TrustArg

__all__ = [
    "MiddlewareOptions",
    "Request",
    "RequestInfo",
    "RouteResolver",
    "TenantResolver",
    "finish_attributes",
    "request_attributes",
]

# The middlewares' one logger, whichever of their modules logs.
_logger = logging.getLogger("tenantrace.layers.api")

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
_MAX_QUERY_CHARS: Final = 2048
_MAX_HEADER_CHARS: Final = 1024
_KEY_RULES: Final = Scrubber()


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


class Request:
    """What one request's span needs, from an ASGI scope or a WSGI environ."""

    __slots__ = ("attributes", "method", "path")

    def __init__(self, method: str, path: str, attributes: dict[str, AttributeValue]) -> None:
        self.method = method
        self.path = path
        self.attributes = attributes


@dataclass(frozen=True, slots=True)
class RequestInfo:
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


def request_attributes(info: RequestInfo) -> Request:
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
    return Request(method, path, attributes)


def finish_attributes(span: Span, method: str, status: int | None, route: str | None) -> None:
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


class MiddlewareOptions:
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

    def start(self, manager: TelemetryManager, request: Request, ctx: Context) -> tuple[Span, str]:
        tenant = manager.resolve_tenant(None, ctx)
        span = manager.start_span(
            request.method, tenant, None, request.attributes, kind=SpanKind.SERVER, context=ctx
        )
        return span, tenant
