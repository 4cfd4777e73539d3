"""The tenant-aware global propagator, for auto-instrumented and zero-code services.

Instrumentation libraries propagate through OpenTelemetry's global propagator:
the server instrumentations (FastAPI, Flask, Django, aiohttp, gRPC, Celery)
call ``propagate.extract(carrier)`` and start their SERVER or CONSUMER span
under the result; the client ones (httpx, requests, aiohttp-client, Celery's
publish) call ``propagate.inject(headers)`` inside their CLIENT or PRODUCER
span. ``TenantPropagator`` is that global propagator made tenant-aware:

- extract applies the trust policy (and its gateway header), so the tenant is
  in the context, and on the remote parent, before the server span starts;
  a claim the policy refuses is dropped and counted;
- inject sends baggage, the tenant first, only where the egress policy allows:
  the destination is read from the current CLIENT span's URL attributes
  (``url.full``, ``http.url``, ``server.address``); a CLIENT span with none of
  them gets no baggage; spans of other kinds (a queue message) follow the
  policy's ``baggage_without_url``.

The formats are those of ``OTEL_PROPAGATORS`` (where the name ``tenantrace``
stands for ``tracecontext,baggage``). ``init_telemetry()`` and the
``tenantrace`` configurator install it; ``OTEL_PROPAGATORS=tenantrace`` names
it for ``opentelemetry-instrument``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.propagators import textmap
from opentelemetry.trace import SpanKind

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.propagation.carriers import (
    PROPAGATION_FIELDS,
    Fields,
    collect_fields,
    header_view,
    is_wsgi_environ,
)
from tenantrace.propagation.http import extract_fields, inject_context
from tenantrace.propagation.propagators import current_propagators
from tenantrace.propagation.trust import resolve_trust

__all__ = ["TenantPropagator", "destination_of", "install_tenant_propagator"]

_logger = logging.getLogger(__name__)

# A destination no host matches: a CLIENT span whose URL is unknown gets no baggage.
_UNKNOWN_DESTINATION: Final = ""
_URL_ATTRIBUTES: Final = ("url.full", "http.url")
_HOST_ATTRIBUTES: Final = ("server.address", "net.peer.name", "http.host")
_PORT_ATTRIBUTES: Final = ("server.port", "net.peer.port")


def destination_of(ctx: Context) -> str | None:
    """The URL the current span of ``ctx`` sends to, for the egress policy.

    None for no destination (no span, or a span that is not a CLIENT span);
    an empty string for a CLIENT span whose URL cannot be told.
    """
    span = trace_api.get_current_span(ctx)
    if getattr(span, "kind", None) is not SpanKind.CLIENT:
        return None
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return _UNKNOWN_DESTINATION
    for key in _URL_ATTRIBUTES:
        url = attributes.get(key)
        if isinstance(url, str) and url:
            return url
    host = next((attributes.get(k) for k in _HOST_ATTRIBUTES if attributes.get(k)), None)
    if not isinstance(host, str):
        return _UNKNOWN_DESTINATION
    port = next((attributes.get(k) for k in _PORT_ATTRIBUTES if attributes.get(k)), None)
    scheme = attributes.get("url.scheme") or attributes.get("http.scheme") or "http"
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}:{port}/" if isinstance(port, int) else f"{scheme}://{netloc}/"


def _getter_values(carrier: Any, getter: textmap.Getter[Any], name: str) -> list[str] | str | None:
    values = getter.get(carrier, name)
    if values is None or isinstance(values, str):
        return values
    return list(values)


def _getter_pairs(
    carrier: Any, getter: textmap.Getter[Any], names: Iterable[str]
) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []
    for name in names:
        values = _getter_values(carrier, getter, name)
        if values is not None:
            pairs.append((name, values))
    return pairs


def _validator_view(carrier: Any, getter: textmap.Getter[Any]) -> Mapping[str, str]:
    """What a trust validator is shown: every header the getter can list, real names only.
    Built only when a validator asks (most requests have no claim to judge)."""
    if is_wsgi_environ(carrier):
        return header_view(carrier)
    try:
        pairs = _getter_pairs(carrier, getter, getter.keys(carrier))
    except Exception:  # a getter that cannot list its carrier: the validator sees nothing
        pairs = []
    return header_view(pairs)


class TenantPropagator(textmap.TextMapPropagator):
    """W3C Trace Context, W3C Baggage and B3, with the tenant trust and egress policies."""

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        base = otel_context.get_current() if context is None else context
        try:
            propagators = current_propagators()
            if not propagators.extract_trace:
                return base
            if propagators.wanted is None:
                names: Iterable[str] = getter.keys(carrier)
            else:
                names = propagators.wanted
            fields: Fields = collect_fields(_getter_pairs(carrier, getter, names))
            tenant_header = resolve_trust(None).tenant_header
            gateway = None
            if tenant_header is not None:
                values = _getter_values(carrier, getter, tenant_header)
                if values is not None:
                    gateway = collect_fields(
                        [(tenant_header, values)], frozenset((tenant_header,)), bounded=False
                    ).get(tenant_header)
            if not fields and gateway is None:
                return base
            return extract_fields(
                fields, base, None, carrier, gateway, view=lambda: _validator_view(carrier, getter)
            )
        except Exception as exc:  # a propagator must never break the server it runs in
            get_telemetry_manager().warn_once(
                "propagation.extract", "tenantrace: trace context extraction failed (%r)", exc
            )
            return base

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        ctx = otel_context.get_current() if context is None else context
        try:
            headers = inject_context(ctx, destination_of(ctx))
            for name, value in headers.items():
                setter.set(carrier, name, value)
        except Exception as exc:
            get_telemetry_manager().warn_once(
                "propagation.inject", "tenantrace: trace context injection failed (%r)", exc
            )

    @property
    def fields(self) -> set[str]:
        return set(PROPAGATION_FIELDS | current_propagators().injected_fields)


_install_lock = threading.Lock()


def install_tenant_propagator() -> None:
    """Make a ``TenantPropagator`` OpenTelemetry's global propagator (once; idempotent)."""
    with _install_lock:
        if not isinstance(propagate.get_global_textmap(), TenantPropagator):
            propagate.set_global_textmap(TenantPropagator())
