"""``WSGITracingMiddleware``, and how it reads a WSGI environ (see ``tenantrace.layers.api``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager
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

__all__ = ["WSGIApp", "WSGITracingMiddleware"]

# The middlewares' one logger, whichever of their modules logs.
_logger = logging.getLogger("tenantrace.layers.api")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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
        self._options = MiddlewareOptions(
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
            finish_attributes(span, request.method, code, options.route(environ))
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

    def _request(self, environ: Mapping[str, Any], path: str) -> Request:
        headers = _wsgi_headers(environ)
        protocol = str(environ.get("SERVER_PROTOCOL", ""))
        version = protocol.partition("/")[2] or None
        remote = environ.get("REMOTE_ADDR")
        server = environ.get("SERVER_NAME")
        return request_attributes(
            RequestInfo(
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
