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

from tenantrace.layers._asgi import FASTAPI_TELEMETRY_SCOPE_KEY, ASGITracingMiddleware
from tenantrace.layers._wsgi import WSGITracingMiddleware

__all__ = ["FASTAPI_TELEMETRY_SCOPE_KEY", "ASGITracingMiddleware", "WSGITracingMiddleware"]
