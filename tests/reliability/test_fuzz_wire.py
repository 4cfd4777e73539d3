"""Property-based tests over the public entry points of propagation and layers.

Whatever a wire or a caller hands over (str, bytes, None, nested lists and
dicts, huge values, control bytes), extraction never raises and returns a
usable context, injection produces JSON-serialisable string carriers, and the
layer wrappers never raise into the user's code nor echo a SQL literal or a
raw cache key.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from optional_api import require_api

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, current_tenant
from tenantrace.instrumentation.manager import install_manager
from tenantrace.instrumentation.tenants import is_valid_tenant_id

_SYNC = TelemetryConfig(
    exporter_type="memory", batch_config=BatchExportConfig(use_sync_export=True)
)
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=100)
    | st.binary(max_size=100)
    | st.sampled_from(
        [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-0000000000000000-01",
            "tenant.id=victim",
            "tenant.id=a%0D%0Ab",
            "k=" + "v" * 9000,
            ",".join(f"k{i}=v" for i in range(300)),
        ]
    )
)
_nested = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner, max_size=3)
    ),
    max_leaves=10,
)
_header_names = st.sampled_from(
    [
        "traceparent",
        "TraceParent",
        "tracestate",
        "baggage",
        "b3",
        "X-B3-TraceId",
        "X-B3-SpanId",
        "X-B3-Sampled",
        "x-b3-parentspanid",
        "content-type",
    ]
) | st.text(max_size=20)


def _propagation() -> ModuleType:
    return require_api(
        "tenantrace.propagation",
        "extract_trace_context",
        "inject_trace_context",
        "propagate_context_to_dict",
        "extract_context_from_dict",
    )


def _assert_usable(ctx: Any) -> None:
    assert isinstance(ctx, Context)
    span_context = trace_api.get_current_span(ctx).get_span_context()
    assert span_context.trace_id >= 0
    tenant = current_tenant(ctx)
    assert tenant is None or is_valid_tenant_id(tenant)


@_FUZZ
@given(headers=st.dictionaries(_header_names, _nested, max_size=8) | _nested)
def test_extract_trace_context_never_raises(headers: Any) -> None:
    _assert_usable(_propagation().extract_trace_context(headers))


@_FUZZ
@given(message=st.dictionaries(st.text(max_size=20), _nested, max_size=6) | _nested)
def test_extract_context_from_dict_never_raises(message: Any) -> None:
    _assert_usable(_propagation().extract_context_from_dict(message))


@_FUZZ
@given(
    # The application's own keys (the carrier's key is the helper's to choose).
    message=st.dictionaries(
        st.text(max_size=20).map("m.".__add__), st.integers() | st.text(max_size=50), max_size=6
    ),
    headers=st.none() | st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=4),
    url=st.none()
    | st.text(max_size=100)
    | st.sampled_from(
        ["http://example.com/x", "https://internal.svc:8443/", "http://[::1", "ftp://x", "//evil"]
    ),
)
def test_injection_takes_any_message_headers_and_url(
    message: dict[str, Any], headers: dict[str, str] | None, url: str | None
) -> None:
    propagation = _propagation()
    manager = TelemetryManager(_SYNC, exporter=InMemorySpanExporter())
    with manager.span("outgoing", tenant_id="acme") as span:
        token = otel_context.attach(trace_api.set_span_in_context(span))
        try:
            carried = propagation.propagate_context_to_dict(message)
            injected = propagation.inject_trace_context(headers, url=url)
        finally:
            otel_context.detach(token)
    manager.shutdown(timeout_millis=100)
    assert isinstance(carried, dict)
    for key, value in message.items():
        assert carried[key] == value  # the message itself is untouched
    json.dumps(carried)  # a queue can carry it
    assert isinstance(injected, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in injected.items())
    round_trip = propagation.extract_context_from_dict(json.loads(json.dumps(carried)))
    assert trace_api.get_current_span(round_trip).get_span_context().trace_id == (
        span.get_span_context().trace_id
    )


def _layers() -> ModuleType:
    return require_api("tenantrace.layers", "trace_query", "trace_cache_operation")


_EXPORTED = InMemorySpanExporter()
_MANAGER = TelemetryManager(_SYNC, exporter=_EXPORTED)


def _exported_attributes() -> str:
    """Every attribute of every span exported since the last call, as text."""
    spans = _EXPORTED.get_finished_spans()
    _EXPORTED.clear()
    assert spans
    return json.dumps([dict(s.attributes or {}) for s in spans], default=str)


@_FUZZ
@given(
    head=st.sampled_from(
        ["SELECT * FROM t WHERE a = ", "UPDATE t SET b = ", "DELETE FROM t WHERE c IN ("]
    ),
    noise=st.text(max_size=60),
    operation=st.text(max_size=20),
    table=st.text(max_size=20),
)
def test_trace_query_takes_any_text_and_never_echoes_a_literal(
    head: str, noise: str, operation: str, table: str
) -> None:
    layers = _layers()
    query = f"{head}'LITERALsecret' AND x = 77777777 {noise}"
    previous = install_manager(_MANAGER)
    try:
        with layers.trace_query(query, operation, table, tenant_id="acme"):
            pass
    finally:
        install_manager(previous)
    text = _exported_attributes()
    assert "LITERALsecret" not in text
    assert "77777777" not in text


@_FUZZ
@given(operation=st.text(max_size=20), key=st.text(max_size=200) | st.binary(max_size=50))
def test_trace_cache_operation_takes_any_key_and_never_echoes_it(operation: str, key: Any) -> None:
    layers = _layers()
    raw = f"user:RAWKEY{key!r}"
    previous = install_manager(_MANAGER)
    try:
        with layers.trace_cache_operation(operation, raw, "acme"):
            pass
    finally:
        install_manager(previous)
    assert "RAWKEY" not in _exported_attributes()
