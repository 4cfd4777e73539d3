"""Injection: the headers that carry the current trace (and, where the egress policy
lets it go, the tenant's baggage) to a destination. See ``tenantrace.propagation.http``."""

from __future__ import annotations

from typing import Final

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.tenants import current_tenant, span_tenant
from tenantrace.propagation._http_headers import count_ignored, merge_headers
from tenantrace.propagation.baggage import TENANT_BAGGAGE_KEY
from tenantrace.propagation.limits import is_safe_header_value
from tenantrace.propagation.propagators import current_propagators
from tenantrace.propagation.trust import get_egress_policy

__all__ = ["inject_context", "inject_trace_context"]

# Where opentelemetry.baggage keeps its (insertion-ordered) dict in a Context.
_BAGGAGE_KEY: Final = getattr(otel_baggage, "_BAGGAGE_KEY", "baggage")


class _LastDerived:
    """The last context derived for sending, with its baggage decision, and the result:
    a span making several outgoing calls derives it once. Contexts are immutable, so
    identity is a safe key; one tuple, replaced whole, so threads never mix two."""

    entry: tuple[Context, bool, Context] | None = None


def _to_send(ctx: Context, with_baggage: bool) -> Context:
    """``ctx`` as it goes out: its trace only if it is the tenant's, the tenant's baggage first."""
    last = _LastDerived.entry
    if last is not None and last[0] is ctx and last[1] is with_baggage:
        return last[2]
    derived = _own_trace_only(ctx)
    if with_baggage:
        derived = _with_tenant_baggage(derived)
    elif otel_baggage.get_all(derived):
        derived = otel_baggage.clear(derived)  # only the trace context goes to this host
    _LastDerived.entry = (ctx, with_baggage, derived)
    return derived


def _with_tenant_baggage(ctx: Context) -> Context:
    """``ctx`` whose baggage names its tenant FIRST.

    Baggage is cut at the W3C limits (8192 bytes, 180 members) member by
    member from the end; first, no other member however large crowds the
    tenant out. The tenant of the work (the span's, the scope's), the default
    tenant included: a trusted callee then keeps the caller's tenant, and its trace.
    """
    tenant = current_tenant(ctx)
    if tenant is None:  # no work of any tenant here (no span, no scope): nothing to claim
        return ctx
    entries = otel_baggage.get_all(ctx)
    if next(iter(entries), None) == TENANT_BAGGAGE_KEY and entries[TENANT_BAGGAGE_KEY] == tenant:
        return ctx
    ordered: dict[str, object] = {TENANT_BAGGAGE_KEY: tenant}
    ordered.update((k, v) for k, v in entries.items() if k != TENANT_BAGGAGE_KEY)
    return otel_context.set_value(_BAGGAGE_KEY, ordered, ctx)


def _own_trace_only(ctx: Context) -> Context:
    """``ctx`` without its span when that span is not the tenant's of the work.

    A ``tenant_scope`` entered inside another tenant's span (or under a remote
    parent whose tenant was not vouched for), with no span of its own yet: the
    callee is told the work's tenant, and must not be told to continue a trace
    that is not that tenant's (one trace, one tenant), so it starts one.
    """
    span = trace_api.get_current_span(ctx)
    if not span.get_span_context().is_valid:
        return ctx
    owner = span_tenant(span)
    if owner == current_tenant(ctx):  # the tenant's own span, or no tenant at all
        return ctx
    return trace_api.set_span_in_context(trace_api.INVALID_SPAN, ctx)


def inject_context(ctx: Context, url: object = None) -> dict[str, str]:
    """The propagation headers of ``ctx`` for a request to ``url`` (internal form of inject)."""
    propagators = current_propagators()
    if not propagators.injectors:
        return {}
    egress = get_egress_policy()
    ctx = _to_send(ctx, egress.baggage_without_url if url is None else egress.allows_baggage(url))
    carrier: dict[str, str] = {}
    for propagator in propagators.injectors:
        propagator.inject(carrier, ctx)
    try:
        safe = is_safe_header_value("".join(carrier.values()))
    except TypeError:  # a third-party propagator wrote a value that is not a string
        safe = False
    if not safe:
        _drop_unsafe(carrier)
    return carrier


def _drop_unsafe(carrier: dict[str, str]) -> None:
    for name, value in list(carrier.items()):
        if not isinstance(value, str) or not is_safe_header_value(value):
            del carrier[name]
            count_ignored("propagation.unsafe_header_dropped")


def inject_trace_context(headers: object = None, *, url: object = None) -> dict[str, str]:
    """Headers carrying the current trace context (and baggage, where allowed).

    Returns a new ``dict``: a copy of ``headers`` (if given) with the
    propagation headers added or replaced. Baggage, the tenant included, is
    written only when the egress policy allows it for ``url``; with no ``url``
    the policy's ``baggage_without_url`` decides (default: yes). No header
    value with a control byte is ever written. Never raises.
    """
    try:
        carrier = inject_context(otel_context.get_current(), url)
    except Exception as exc:
        get_telemetry_manager().warn_once(
            "propagation.inject", "tenantrace: trace context injection failed (%r)", exc
        )
        carrier = {}
    if headers is None:
        return carrier
    return merge_headers(headers, carrier)
