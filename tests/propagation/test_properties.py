"""Property-based tests over every extraction entry point and the inject/extract round trip.

Whatever arrives (str, bytes, None, numbers, nested lists, mappings, huge
values, control bytes), extraction never raises, returns a usable context,
never takes an untrusted tenant, and keeps within the W3C bounds; injection
never writes a control byte and round-trips the trace and the tenant.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from tenantrace import current_tenant, tenant_scope
from tenantrace.instrumentation.tenants import TenantNonRecordingSpan, is_valid_tenant_id
from tenantrace.propagation import (
    attach_trace_context,
    baggage_scope,
    extract_context_from_dict,
    extract_trace_context,
    get_all_baggage,
    inject_trace_context,
    link_spans,
    propagate_context_to_dict,
)
from tenantrace.propagation.limits import is_safe_header_value

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

_NAMES = [
    "traceparent",
    "TraceParent",
    "tracestate",
    "baggage",
    "Baggage",
    "b3",
    "X-B3-TraceId",
    "X-B3-SpanId",
    "X-B3-Sampled",
    "HTTP_TRACEPARENT",
    "HTTP_BAGGAGE",
    "authorization",
]
_LIKELY = [
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-0000000000000000-01",
    "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1",
    "tenant.id=victim",
    "tenant.id=acme,k=v",
    "tenant.id=a%0D%0Ab",
    "tenant.id=" + "x" * 200,
    "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    ",".join(f"k{i}=v{i}" for i in range(40)),
]
_huge = st.builds(
    lambda chunk, times: chunk * times,
    st.sampled_from(["a", "k=v,", "\r\n", "é", "tenant.id=x,", "\x00"]),
    st.integers(1000, 40_000),
)
_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=80)
    | st.binary(max_size=80)
    | st.sampled_from(_LIKELY)
    | _huge
)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)
_name = st.sampled_from(_NAMES) | st.text(max_size=20) | st.binary(max_size=12)
_headers = (
    st.dictionaries(_name, _value, max_size=8)
    | st.lists(st.tuples(_name, _value), max_size=8)
    | st.lists(st.lists(_value, max_size=3), max_size=4)
    | _value
)


def _assert_sound(ctx: object, *, trusted: bool) -> None:
    assert isinstance(ctx, Context)
    span_context = trace_api.get_current_span(ctx).get_span_context()
    if span_context.is_valid:
        assert span_context.trace_id != 0 and span_context.span_id != 0
        assert len(span_context.trace_state) <= 32
    tenant = current_tenant(ctx)
    assert tenant is None or (trusted and is_valid_tenant_id(tenant))
    pairs = otel_baggage.get_all(ctx)
    assert len(pairs) <= 180
    if not trusted:
        assert "tenant.id" not in pairs  # an unaccepted claim is not passed on
    total = sum(len(str(k)) + len(str(v)) + 1 for k, v in pairs.items())
    assert total <= 8192


@_SETTINGS
@given(headers=_headers, trusted=st.booleans())
def test_extract_trace_context(headers: Any, trusted: bool) -> None:
    _assert_sound(extract_trace_context(headers, trust=trusted), trusted=trusted)


@_SETTINGS
@given(
    message=st.dictionaries(st.sampled_from(["trace_context", "body", "traceparent"]), _value)
    | _value,
    trusted=st.booleans(),
)
def test_extract_context_from_dict(message: Any, trusted: bool) -> None:
    _assert_sound(extract_context_from_dict(message, trust=trusted), trusted=trusted)
    as_json = {"trace_context": json.dumps(message, default=repr)}
    _assert_sound(extract_context_from_dict(as_json, trusted=trusted), trusted=trusted)


@_SETTINGS
@given(headers=_headers)
def test_attach_trace_context(headers: Any) -> None:
    before = otel_context.get_current()
    with attach_trace_context(headers) as ctx:
        _assert_sound(ctx, trusted=False)
        assert otel_context.get_current() is ctx
    assert otel_context.get_current() is before


@_SETTINGS
@given(carrier=_headers)
def test_link_spans(carrier: Any) -> None:
    link = link_spans(carrier)
    assert link is None or link.context.is_valid


@_SETTINGS
@given(
    headers=_headers, url=st.none() | st.text(max_size=60) | st.sampled_from(["http://h/", "//x"])
)
def test_inject_takes_any_headers_and_never_writes_a_control_byte(headers: Any, url: Any) -> None:
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(1)
    )
    token = otel_context.attach(trace_api.set_span_in_context(NonRecordingSpan(remote)))
    try:
        out = inject_trace_context(headers, url=url)
    finally:
        otel_context.detach(token)
    assert isinstance(out, dict)
    assert out["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for name, value in out.items():
        assert isinstance(name, str) and isinstance(value, str)
        assert is_safe_header_value(name) and is_safe_header_value(value)


_tenants = st.from_regex(r"[A-Za-z0-9._@-]{1,128}", fullmatch=True)
_baggage_keys = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True).filter(
    lambda k: k != "tenant.id"
)


@_SETTINGS
@given(
    tenant=_tenants,
    pairs=st.dictionaries(_baggage_keys, st.text(max_size=60), max_size=10),
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    sampled=st.booleans(),
    tracestate=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_*/-]{0,10}", fullmatch=True),
        st.from_regex(r"[!-+\--<>-~]{1,20}", fullmatch=True),
        max_size=5,
    ),
)
def test_round_trip_keeps_trace_tenant_and_baggage(  # noqa: PLR0917 - one per strategy
    tenant: str,
    pairs: dict[str, str],
    trace_id: int,
    span_id: int,
    sampled: bool,
    tracestate: dict[str, str],
) -> None:
    parent = SpanContext(
        trace_id, span_id, True, TraceFlags(int(sampled)), TraceState(list(tracestate.items()))
    )
    # A remote parent of this tenant, as a trusted extraction leaves it: only the
    # tenant's own trace context is sent on (one trace, one tenant).
    remote = TenantNonRecordingSpan(parent, tenant)
    token = otel_context.attach(trace_api.set_span_in_context(remote))
    try:
        with tenant_scope(tenant), baggage_scope(pairs):
            headers = inject_trace_context()
    finally:
        otel_context.detach(token)
    assert all(is_safe_header_value(v) for v in headers.values())
    # Names as a server would hand them over: any case, bytes.
    wire = [(name.upper().encode(), value.encode()) for name, value in headers.items()]
    ctx = extract_trace_context(wire, trust=True)
    got = trace_api.get_current_span(ctx).get_span_context()
    assert (got.trace_id, got.span_id, got.trace_flags.sampled) == (trace_id, span_id, sampled)
    assert dict(got.trace_state) == tracestate
    assert current_tenant(ctx) == tenant
    expected = {k: v.strip() for k, v in pairs.items()}  # OpenTelemetry strips values
    assert get_all_baggage(ctx) == {**expected, "tenant.id": tenant}
    carried = propagate_context_to_dict({"m": 1})  # outside any span now: nothing to carry
    assert carried == {"m": 1, "trace_context": {}}
