"""CR/LF and control bytes never reach an outgoing header or a project name.

Sources of bytes: baggage set by the application, baggage and tenant ids
arriving in request headers or message carriers. Sinks checked: every header
``inject_trace_context`` and ``propagate_context_to_dict`` produce, and the
project name of every exported span.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optional_api import require_api

from tenantrace import InvalidTenantError, tenant_scope
from tenantrace.instrumentation.tenants import is_valid_tenant_id
from tenantrace.testing import SpanCapture

# A header name is a token; a value has no CR, LF, NUL or other control byte.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PROJECT = re.compile(r"[A-Za-z0-9._@-]+")
_CRLF_VALUES = [
    "x\r\nX-Injected: 1",
    "x\nSet-Cookie: a=b",
    "x\rfoo",
    "\x00nul",
    "tab\there",
    "del\x7f",
    "%0D%0AX-Injected:%201",
]
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _propagation() -> ModuleType:
    return require_api(
        "tenantrace.propagation",
        "extract_trace_context",
        "inject_trace_context",
        "set_baggage",
        "propagate_context_to_dict",
        "extract_context_from_dict",
    )


def _assert_clean_headers(headers: Any) -> None:
    assert isinstance(headers, dict)
    for name, value in headers.items():
        assert isinstance(name, str) and _TOKEN.fullmatch(name), name
        assert isinstance(value, str) and not _CONTROL.search(value), (name, value)
        assert "X-Injected" not in name


def _injected_with_baggage(propagation: ModuleType, key: str, value: str) -> dict[str, str]:
    from opentelemetry import context as otel_context

    token = otel_context.attach(propagation.set_baggage(key, value) or otel_context.get_current())
    try:
        return dict(propagation.inject_trace_context({}))
    finally:
        otel_context.detach(token)


@pytest.mark.parametrize("value", _CRLF_VALUES)
def test_application_baggage_with_control_bytes_is_never_written_raw(
    value: str, spans: SpanCapture
) -> None:
    propagation = _propagation()
    with spans.manager.span("outgoing", tenant_id="acme"):
        headers = _injected_with_baggage(propagation, "note", value)
    _assert_clean_headers(headers)


@pytest.mark.parametrize("value", _CRLF_VALUES)
def test_inbound_control_bytes_do_not_survive_a_hop(value: str, spans: SpanCapture) -> None:
    propagation = _propagation()
    inbound = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": f"vendor={value}",
        "baggage": f"note={value},tenant.id={value}",
    }
    ctx = propagation.extract_trace_context(inbound)
    from opentelemetry import context as otel_context

    token = otel_context.attach(ctx)
    try:
        with spans.manager.span("hop"):
            outbound = dict(propagation.inject_trace_context({}))
            message = propagation.propagate_context_to_dict({"payload": 1})
    finally:
        otel_context.detach(token)
    _assert_clean_headers(outbound)
    for carrier in (v for v in message.values() if isinstance(v, dict)):
        _assert_clean_headers(carrier)
    assert all(_PROJECT.fullmatch(s.project or "") for s in spans.spans())


@pytest.mark.parametrize("tenant", [v.replace("%0D%0A", "\r\n") for v in _CRLF_VALUES])
def test_a_tenant_id_with_control_bytes_is_refused_before_it_names_a_project(
    tenant: str, spans: SpanCapture
) -> None:
    with pytest.raises(InvalidTenantError):
        tenant_scope(tenant)
    with pytest.raises(InvalidTenantError):
        spans.manager.config.get_project_name(tenant)
    with pytest.raises(InvalidTenantError), spans.manager.span("x", tenant_id=tenant):
        pass
    assert spans.spans() == []


@_FUZZ
@given(
    key=st.text(min_size=1, max_size=30),
    value=st.text(max_size=200) | st.sampled_from(_CRLF_VALUES),
)
def test_no_baggage_an_application_sets_can_break_a_header(key: str, value: str) -> None:
    propagation = _propagation()
    try:
        headers = _injected_with_baggage(propagation, key, value)
    except (ValueError, TypeError):
        return  # refusing a key or value up front is fine; raising later is not
    _assert_clean_headers(headers)
    assert len(headers.get("baggage", "")) <= 8192


_header_value = st.text(max_size=300) | st.sampled_from(_CRLF_VALUES) | st.binary(max_size=100)


@_FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["traceparent", "tracestate", "baggage", "b3", "X-B3-TraceId", "Baggage"]),
        _header_value | st.lists(_header_value, max_size=3),
        max_size=6,
    )
)
def test_whatever_arrives_what_leaves_is_clean_and_bounded(headers: dict[str, Any]) -> None:
    propagation = _propagation()
    from opentelemetry import context as otel_context

    ctx = propagation.extract_trace_context(headers)
    token = otel_context.attach(ctx)
    try:
        outbound = dict(propagation.inject_trace_context({}))
    finally:
        otel_context.detach(token)
    _assert_clean_headers(outbound)
    assert len(outbound.get("baggage", "")) <= 8192
    assert outbound.get("tracestate", "").count(",") < 32
    claimed = propagation.extract_trace_context(headers)
    from tenantrace import current_tenant

    tenant = current_tenant(claimed)
    assert tenant is None or is_valid_tenant_id(tenant)
