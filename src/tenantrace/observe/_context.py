"""What the log and metric helpers read from OpenTelemetry and tenantrace, cheaply.

- ``get_context()``: the current OpenTelemetry ``Context``, read straight from
  its ``ContextVar`` when the API keeps it where it does today (one C call),
  else through ``opentelemetry.context.get_current()``;
- ``correlation(ctx)``: the five correlation strings of a context (trace id,
  span id, tenant, service name, project name), empty where there are none;
  ``SPAN_KEY`` and ``TENANT_KEY``: the two keys it starts from (None when a
  release moved them): a context with neither has none (the log correlation's
  no-span path checks them inline);
- ``load(name)``: a module of tenantrace's export side, wherever it lives now
  (``tenantrace.export.<name>``, else ``tenantrace.instrumentation.<name>``):
  the secrets, scrubbing and exporters modules are being moved, and this
  package must not break when they are.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context

from tenantrace import current_tenant

__all__ = [
    "EMPTY",
    "SPAN_KEY",
    "TENANT_KEY",
    "correlation",
    "get_context",
    "load",
    "resource_names",
    "span_of",
]

EMPTY: Final = ("", "", "", "", "")
PROJECT_NAME_ATTRIBUTE: Final = "openinference.project.name"
SERVICE_NAME_ATTRIBUTE: Final = "service.name"
TENANT_ID_ATTRIBUTE: Final = "tenant.id"


def _context_getter() -> Callable[[], Mapping[str, object]]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if isinstance(variable, ContextVar):
        return cast(Callable[[], Mapping[str, object]], variable.get)
    return otel_context.get_current  # pragma: no cover - an API that moved its variable


get_context: Final = _context_getter()

# Where trace.set_span_in_context keeps the current span (read directly: hot).
_SPAN_KEY: Final[str | None] = getattr(
    importlib.import_module("opentelemetry.trace.propagation"), "_SPAN_KEY", None
)


def span_of(ctx: Mapping[str, object]) -> object:
    """The span current in ``ctx`` (None when there is none)."""
    if _SPAN_KEY is not None:
        return ctx.get(_SPAN_KEY)
    return trace_api.get_current_span(cast(Context, ctx))  # pragma: no cover


# Resource -> (service name, project name), by identity; the Resource is kept in
# the entry so an id is never reused while its entry lives. Bounded.
_NAMES: dict[int, tuple[object, str, str]] = {}
_MAX_NAMES: Final = 4096


def resource_names(resource: object) -> tuple[str, str]:
    """``service.name`` and the project (``TenantResource.project_name`` or
    ``openinference.project.name``) of a Resource; empty strings when absent."""
    entry = _NAMES.get(id(resource))
    if entry is not None and entry[0] is resource:
        return entry[1], entry[2]
    attributes = getattr(resource, "attributes", None) or {}
    service = attributes.get(SERVICE_NAME_ATTRIBUTE)
    project = getattr(resource, "project_name", None) or attributes.get(PROJECT_NAME_ATTRIBUTE)
    names = (
        service if isinstance(service, str) else "",
        project if isinstance(project, str) else "",
    )
    if len(_NAMES) >= _MAX_NAMES:
        _NAMES.clear()
    _NAMES[id(resource)] = (resource, *names)
    return names


_tenants = importlib.import_module("tenantrace.instrumentation.tenants")
# tenantrace's context keys: the tenant, and the span current when it was set
# (its anchor: see tenantrace.instrumentation.tenants). When a release moves the
# anchor, current_tenant() itself is called (slower by about 0.15 us).
_TENANT_KEY: Final[str | None] = getattr(_tenants, "TENANT_CONTEXT_KEY", None)
_ANCHOR_KEY: Final[str | None] = getattr(_tenants, "_ANCHOR_KEY", None)
_span_tenant: Final[Callable[[object], str | None]] = _tenants.span_tenant
# Public within the package: a context holding neither key correlates to EMPTY.
SPAN_KEY: Final = _SPAN_KEY
TENANT_KEY: Final = _TENANT_KEY


def _tenant(ctx: Any, span: object, span_tenant: str | None) -> str:
    """``current_tenant(ctx)``, knowing the current span and its tenant."""
    if _TENANT_KEY is None or _ANCHOR_KEY is None:  # pragma: no cover - a moved key
        return current_tenant(ctx) or ""
    if span is not None and span_tenant is not None and span is not ctx.get(_ANCHOR_KEY):
        return span_tenant
    value = ctx.get(_TENANT_KEY)
    return value if isinstance(value, str) else ""


# Span -> (span, trace id hex, span id hex, service, project, tenant), by identity: a
# span logs many records, and its ids and Resource never change. The span is
# kept in the entry (so its id is not reused while the entry lives). Bounded.
_SPANS: dict[int, tuple[object, str, str, str, str, str | None]] = {}
_MAX_SPANS: Final = 1024


def _span_fields(span: Any) -> tuple[object, str, str, str, str, str | None]:
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return (span, "", "", "", "", _span_tenant(span))
    resource = getattr(span, "resource", None)
    service, project = resource_names(resource) if resource is not None else ("", "")
    entry = (
        span,
        f"{span_context.trace_id:032x}",
        f"{span_context.span_id:016x}",
        service,
        project,
        _span_tenant(span),
    )
    if len(_SPANS) >= _MAX_SPANS:
        _SPANS.clear()
    _SPANS[id(span)] = entry
    return entry


def correlation(ctx: Any) -> tuple[str, str, str, str, str]:
    """``(trace_id, span_id, tenant_id, service_name, project_name)`` of ``ctx``.

    The ids are those of the span current in ``ctx`` (hex, as OTLP and the
    backends show them), the tenant is ``current_tenant(ctx)`` (a
    ``tenant_scope()`` without a span has a tenant and no ids), the names come
    from the current span's Resource. Anything absent is ``""``; never raises.
    """
    if not ctx:
        return EMPTY
    try:
        span = ctx.get(_SPAN_KEY) if _SPAN_KEY is not None else span_of(ctx)
        if span is None:
            tenant = _tenant(ctx, None, None)
            return ("", "", tenant, "", "") if tenant else EMPTY
        entry = _SPANS.get(id(span))
        if entry is None or entry[0] is not span:
            entry = _span_fields(span)
        tenant = _tenant(ctx, span, entry[5])
        return (entry[1], entry[2], tenant, entry[3], entry[4])
    except Exception:  # logging must never fail over telemetry
        return EMPTY


def load(name: str) -> ModuleType:
    """``tenantrace.export.<name>`` if it exists, else ``tenantrace.instrumentation.<name>``."""
    error: ModuleNotFoundError | None = None
    for package in ("tenantrace.export", "tenantrace.instrumentation"):
        module = f"{package}.{name}"
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            error = exc
    assert error is not None
    raise error


def redact_text(text: str) -> str:
    """tenantrace's secrets-by-shape redaction of free text (``secrets.redact_text``)."""
    function: Any = _REDACT.get("text")
    if function is None:
        function = _REDACT["text"] = load("secrets").redact_text
    return cast(str, function(text))


def redact_url(text: str) -> str:
    """tenantrace's URL redaction (userinfo, secret query parameters)."""
    function: Any = _REDACT.get("url")
    if function is None:
        function = _REDACT["url"] = load("secrets").redact_url
    return cast(str, function(text))


_REDACT: dict[str, Any] = {}
