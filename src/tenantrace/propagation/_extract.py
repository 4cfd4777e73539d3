"""Extraction: the context (trace, baggage, judged tenant) an inbound carrier holds.

See ``tenantrace.propagation.http``: extraction never raises, and a tenant
claimed in baggage counts only where the trust policy accepts it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final, TypeAlias

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from tenantrace.instrumentation._attached import AttachedContext
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.tenants import (
    TENANT_CONTEXT_KEY,
    TenantNonRecordingSpan,
    current_tenant,
    with_tenant,
)
from tenantrace.propagation._http_headers import count_ignored
from tenantrace.propagation._quiet import begin_quiet, end_quiet
from tenantrace.propagation.baggage import TENANT_BAGGAGE_KEY
from tenantrace.propagation.carriers import (
    CarrierGetter,
    Fields,
    SpanCarrier,
    collect_fields,
    header_view,
)
from tenantrace.propagation.limits import (
    MAX_BAGGAGE_BYTES,
    MAX_TRACEPARENT_CHARS,
    MAX_VALUES_PER_HEADER,
)
from tenantrace.propagation.propagators import (
    B3_ANY,
    BAGGAGE,
    TRACECONTEXT,
    PropagatorSet,
    current_propagators,
)
from tenantrace.propagation.tracestate import parse_tracestate, with_trace_state
from tenantrace.propagation.trust import TrustArg, resolve_trust

__all__ = [
    "HeaderView",
    "attach_trace_context",
    "extract_carried",
    "extract_fields",
    "extract_span_context",
    "extract_trace_context",
]

_GETTER: Final = CarrierGetter()
_B3_FIELDS: Final = ("b3", "x-b3-traceid", "x-b3-spanid")


def _has_span(ctx: Context) -> bool:
    return trace_api.get_current_span(ctx).get_span_context().is_valid


def _single_traceparent(values: list[str]) -> bool:
    # W3C: several traceparent fields (or one field holding a combined list)
    # make the trace context invalid; longer than any version can be is hostile.
    return len(values) == 1 and "," not in values[0] and len(values[0]) <= MAX_TRACEPARENT_CHARS


def _extract_trace(fields: Fields, base: Context, propagators: PropagatorSet) -> Context:
    traceparent = fields.get("traceparent")
    if traceparent is not None:
        if _single_traceparent(traceparent):
            tracestate = fields.get("tracestate")
            # The SDK reads only traceparent: its tracestate parser has Level 1's key
            # grammar (it drops all of "foo@bar@baz=1,b=2"); ours has Level 2's.
            w3c = fields if tracestate is None else {"traceparent": traceparent}
            ctx = TRACECONTEXT.extract(w3c, base, _GETTER)
            if ctx is not base:  # the propagator returns ``base`` itself when it finds nothing
                if tracestate is None:
                    return ctx
                # Parsed only once traceparent was (W3C). Over 32 members or an invalid
                # member: the whole tracestate is discarded, the traceparent still
                # stands (a tracestate failure must not affect it).
                state = (
                    parse_tracestate(tracestate)
                    if len(tracestate) <= MAX_VALUES_PER_HEADER
                    else None
                )
                if state is None:
                    count_ignored("propagation.tracestate_dropped")
                    return ctx
                return with_trace_state(ctx, state)
        count_ignored("propagation.invalid_traceparent")
    if any(name in fields for name in _B3_FIELDS):
        ctx = B3_ANY.extract(fields, base, _GETTER)
        if _has_span(ctx):
            return ctx
        count_ignored("propagation.invalid_b3")
    for propagator in propagators.extra:
        ctx = propagator.extract(fields, base, _GETTER)
        if _has_span(ctx):
            return ctx
    return base


def _parse_baggage(header: str) -> tuple[tuple[str, str], ...]:
    """The members of a baggage header, as the W3C Baggage propagator reads them."""
    parsed = BAGGAGE.extract({"baggage": [header]}, Context(), _GETTER)
    return tuple((k, str(v)) for k, v in otel_baggage.get_all(parsed).items())


# Baggage headers repeat across requests ("tenant.id=acme,user.tier=gold"), so
# short ones are parsed once. Bounded: 256 entries of at most 1 KiB of key.
_parse_short_baggage = lru_cache(maxsize=256)(_parse_baggage)
_MAX_CACHED_BAGGAGE: Final = 1024


def _extract_baggage(fields: Fields, ctx: Context) -> Context:
    values = fields.get("baggage")
    if not values:
        return ctx
    # RFC 9110 5.3: repeated fields are one comma-separated list.
    header = values[0] if len(values) == 1 else ",".join(values)
    if len(header) > MAX_BAGGAGE_BYTES or (
        not header.isascii() and len(header.encode("utf-8")) > MAX_BAGGAGE_BYTES
    ):
        count_ignored("propagation.baggage_dropped")  # over 8192 bytes: none of it is taken
        return ctx
    if len(header) <= _MAX_CACHED_BAGGAGE:
        members = _parse_short_baggage(header)
    else:
        members = _parse_baggage(header)
    for key, value in members:
        ctx = otel_baggage.set_baggage(key, value, ctx)
    return ctx


HeaderView: TypeAlias = Callable[[], Mapping[str, str]]
"""What a trust validator is shown, built only when a validator asks."""


def _claimed_tenant(
    ctx: Context,
    headers: object,
    trust: TrustArg,
    gateway: list[str] | None,
    view: HeaderView | None = None,
) -> tuple[str | None, str | None, Context]:
    """The request's tenant, the caller's (its span's) tenant, and ``ctx`` without a
    refused claim; None where nothing trusted names one.

    They differ behind a gateway: its header names the request's tenant, while
    only the caller's own claim, accepted by the policy, says whose trace the
    caller's span is in.
    """
    if isinstance(headers, SpanCarrier) and headers.tenant is not None:
        # Captured in this process by create_carrier_from_span: not a claim.
        return headers.tenant, headers.tenant, ctx
    policy = resolve_trust(trust)
    claimed = otel_baggage.get_baggage(TENANT_BAGGAGE_KEY, ctx)
    accepted: str | None = None
    if claimed is not None:
        if policy.accepts(claimed, view or (lambda: header_view(headers))):
            accepted = str(claimed)
        else:
            get_telemetry_manager().record_rejected_tenant()
            ctx = otel_baggage.remove_baggage(TENANT_BAGGAGE_KEY, ctx)
    vouched = policy.gateway_tenant(gateway) if gateway else None
    if vouched is None:
        # No claim, no tenant: not even a trusted caller's trace is the default
        # tenant's for sure (its egress policy may have withheld the tenant).
        return accepted, accepted, ctx
    if claimed is not None and claimed != vouched:
        if accepted is None:  # counted once
            get_telemetry_manager().record_rejected_tenant()
        ctx = otel_baggage.set_baggage(TENANT_BAGGAGE_KEY, vouched, ctx)
    return vouched, accepted, ctx


def _apply_tenant(
    ctx: Context,
    headers: object,
    trust: TrustArg,
    gateway: list[str] | None = None,
    view: HeaderView | None = None,
) -> Context:
    """Judge the carrier's tenant; the remote parent keeps the caller's, the context
    takes the request's.

    The remote parent span becomes a ``TenantNonRecordingSpan`` of the caller's
    trusted tenant, so a span of that same tenant continues its trace; under
    any other remote parent a span starts a new trace (see ``TenantTracer``).
    A tenant already in ``ctx`` (a local scope) stays the context's tenant.
    """
    tenant, callers, ctx = _claimed_tenant(ctx, headers, trust, gateway, view)
    remote = trace_api.get_current_span(ctx)
    local = ctx.get(TENANT_CONTEXT_KEY)
    chosen = local if isinstance(local, str) else tenant
    if callers is not None and remote.get_span_context().is_valid:
        remote = TenantNonRecordingSpan(remote.get_span_context(), callers)
        return with_tenant(chosen or callers, ctx, span=remote)
    return ctx if chosen is None else with_tenant(chosen, ctx)


def _oversize(name: str) -> None:
    if name == "baggage":
        count_ignored("propagation.baggage_dropped")  # over 8192 bytes: none of it is taken
    else:
        count_ignored("propagation.oversized_header_dropped")


def _base_context(keep_local_tenant: bool = True) -> Context:
    # A fresh context (no local span, no local baggage: they are not the
    # caller's), keeping only the tenant of a local scope, which outranks carriers.
    # Only a scope's tenant outranks the carrier, not the tenant of whatever
    # span is current (a framework's own server span, in the default tenant).
    if not keep_local_tenant:
        return Context()
    scoped = otel_context.get_value(TENANT_CONTEXT_KEY)
    if scoped is None or scoped != current_tenant():
        return Context()
    return Context({TENANT_CONTEXT_KEY: scoped})


def extract_carried(headers: object, trust: TrustArg, *, keep_local_tenant: bool) -> Context:
    """``extract_trace_context``; without ``keep_local_tenant`` a trusted claim is the tenant
    even inside a local ``tenant_scope`` (per-message spans of a batch consumer)."""
    try:
        return _extract(headers, trust, _base_context(keep_local_tenant))
    except Exception as exc:
        get_telemetry_manager().warn_once(
            "propagation.extract", "tenantrace: trace context extraction failed (%r)", exc
        )
        return _base_context(keep_local_tenant)


def _gateway_values(headers: object, trust: TrustArg) -> list[str] | None:
    name = resolve_trust(trust).tenant_header
    if name is None:
        return None
    return collect_fields(headers, frozenset((name,)), bounded=False).get(name)


def _extract(headers: object, trust: TrustArg, base: Context) -> Context:
    propagators = current_propagators()
    if not propagators.extract_trace:
        return base
    fields = collect_fields(headers, propagators.wanted, _oversize)
    gateway = _gateway_values(headers, trust)
    if not fields and gateway is None:
        return _apply_tenant(base, headers, trust) if isinstance(headers, SpanCarrier) else base
    return extract_fields(fields, base, trust, headers, gateway)


def extract_fields(
    fields: Fields,
    base: Context,
    trust: TrustArg,
    headers: object,
    gateway: list[str] | None,
    *,
    view: HeaderView | None = None,
) -> Context:
    """The context of collected propagation ``fields`` on top of ``base``, tenant judged.

    ``headers`` is what a trust validator is shown (as ``header_view`` sees
    it), unless ``view`` builds that when a validator asks; ``gateway`` the
    values of the trust policy's tenant header, if any.
    """
    propagators = current_propagators()
    token = begin_quiet()
    try:
        ctx = _extract_trace(fields, base, propagators) if fields else base
        if propagators.extract_baggage and fields:
            ctx = _extract_baggage(fields, ctx)
    finally:
        end_quiet(token)
    return _apply_tenant(ctx, headers, trust, gateway, view)


def extract_trace_context(headers: object, *, trust: TrustArg = None) -> Context:
    """The context carried by ``headers``, for ``start_as_current_span(..., context=ctx)``.

    ``headers`` may be any header mapping (case-insensitive names, ``str`` or
    ``bytes`` values, lists of values, repeated fields), an ASGI header list or
    a WSGI environ. ``trust`` overrides the process trust policy for this call
    (a ``TenantTrustPolicy``, ``True`` for an internal hop, ``False``). Never raises.
    """
    return extract_carried(headers, trust, keep_local_tenant=True)


def extract_span_context(carrier: object) -> SpanContext:
    """Only the remote span context of ``carrier`` (``INVALID_SPAN_CONTEXT`` if none).

    Reads no baggage and judges no tenant: for span links.
    """
    try:
        propagators = current_propagators()
        if not propagators.extract_trace:
            return INVALID_SPAN_CONTEXT
        fields = collect_fields(carrier, propagators.wanted)
        if not fields:
            return INVALID_SPAN_CONTEXT
        token = begin_quiet()
        try:
            ctx = _extract_trace(fields, Context(), propagators)
        finally:
            end_quiet(token)
        return trace_api.get_current_span(ctx).get_span_context()
    except Exception:
        return INVALID_SPAN_CONTEXT


class attach_trace_context(AttachedContext[Context]):
    """Make the context extracted from ``headers`` current inside the block (sync or async).

    For middleware: spans started inside, by any tracer, continue the caller's
    trace, and the accepted tenant routes them. Yields the extracted context.
    """

    __slots__ = ("_ctx",)

    def __init__(self, headers: object, *, trust: TrustArg = None) -> None:
        super().__init__()
        self._ctx = extract_trace_context(headers, trust=trust)

    def _attach(self) -> tuple[Context, Context]:
        return self._ctx, self._ctx
