"""Property-based tests over the foundation's entry points that take user or wire data.

Tenant ids, project names, the environment, span names, attributes, session
ids and decorated calls' arguments: whatever they are, telemetry never raises
into the caller (except the documented ``InvalidTenantError`` for an explicit,
invalid tenant id, before any user code runs), nothing untrusted shapes a
project name, and every span that was accepted encodes as OTLP.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace import (
    BatchExportConfig,
    InvalidTenantError,
    TelemetryConfig,
    TelemetryManager,
    current_tenant,
    tenant_scope,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.instrumentation.routing import TenantRoutingTracerProvider
from tenantrace.instrumentation.tenants import is_valid_tenant_id, validate_tenant_id
from tenantrace.layers import trace_function

_ALLOWED_PROJECT = re.compile(r"[A-Za-z0-9._@-]+")
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything a caller or a wire could hand over: text with control bytes, CR/LF,
# surrogates, huge strings, bytes, numbers, None, nested containers.
_nasty_text = st.text(max_size=200) | st.sampled_from(
    ["", " ", "a\r\nX-Injected: 1", "a\x00b", "tenant\n", "../../etc", "é", "a" * 129, "\ud800"]
)
_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _nasty_text | st.binary(max_size=64),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_nasty_text, inner, max_size=4),
    max_leaves=12,
)


class _EncodingExporter(SpanExporter):
    """Encodes every batch with the real OTLP encoder, as a collector would receive it."""

    def __init__(self) -> None:
        self.spans = 0
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()  # raises on anything protobuf refuses
        with self.lock:
            self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


_EXPORTER = _EncodingExporter()
_MANAGER = TelemetryManager(
    TelemetryConfig(batch_config=BatchExportConfig(use_sync_export=True)), exporter=_EXPORTER
)


@_FUZZ
@given(value=_anything)
def test_tenant_ids_are_validated_before_they_can_shape_a_project_name(value: Any) -> None:
    config = _MANAGER.config
    try:
        tenant = validate_tenant_id(value)
    except InvalidTenantError:
        assert not is_valid_tenant_id(value)
        for call in (lambda: tenant_scope(value), lambda: config.get_project_name(value)):
            with pytest.raises(InvalidTenantError):
                call()
        return
    assert tenant == value and is_valid_tenant_id(value)
    project = config.get_project_name(tenant)
    assert _ALLOWED_PROJECT.fullmatch(project), project
    with tenant_scope(tenant):
        assert current_tenant() == tenant
    assert current_tenant() is None


_ENV_NAMES = [
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_TYPE",
    "TELEMETRY_LEVEL",
    "TELEMETRY_SYNC_EXPORT",
    "TELEMETRY_ENVIRONMENT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_SCHEDULE_DELAY",
]
_env_value = (
    _nasty_text
    | st.integers(-(10**12), 10**12).map(str)
    | st.sampled_from(
        ["true", "false", "grpc", "http/protobuf", "none", "console", "basic", "VERBOSE", "0"]
    )
)


@_FUZZ
@given(environ=st.dictionaries(st.sampled_from(_ENV_NAMES), _env_value))
def test_no_environment_can_make_configuration_raise(environ: dict[str, str]) -> None:
    """A typo in a deployment's environment warns and falls back; it never takes the
    service down."""
    config = TelemetryConfig.from_env(environ)
    config.validate()
    batch = config.batch_config
    assert 0 < batch.max_export_batch_size <= batch.max_queue_size


_attribute_value = (
    _nasty_text
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.lists(st.integers(), max_size=5)
    | st.lists(_nasty_text, max_size=5)
    | st.none()
    | st.binary(max_size=16)
)


@_FUZZ
@given(
    name=_nasty_text,
    tenant=_nasty_text | st.none(),
    attributes=st.dictionaries(_nasty_text, _attribute_value, max_size=8),
    session=_nasty_text,
)
def test_any_span_name_and_attributes_are_accepted_and_export_as_otlp(
    name: str, tenant: str | None, attributes: dict[str, Any], session: str
) -> None:
    stats = _MANAGER.get_stats()
    before = stats["exported_spans"]
    valid = tenant is None or is_valid_tenant_id(tenant)
    try:
        with _MANAGER.span(name, tenant_id=tenant, attributes=attributes) as span:
            span.set_attribute("late", name)
            span.add_event(name, attributes)
        with _MANAGER.session_span(name, tenant_id=tenant, session_id=session, user_id=name):
            pass
    except InvalidTenantError:
        assert not valid  # the only exception, and only for an invalid explicit tenant
        return
    assert valid
    stats = _MANAGER.get_stats()
    assert stats["exported_spans"] == before + 2
    assert stats["export_failures"] == 0 and stats["dropped_spans"] == 0


@_FUZZ
@given(
    args=st.lists(_anything, max_size=3), kwargs=st.dictionaries(_nasty_text, _anything, max_size=3)
)
def test_decorated_calls_with_any_arguments_return_their_result(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    @trace_function(capture_args=["first", "rest", "options"])
    def target(first: Any = None, *rest: Any, **options: Any) -> tuple[Any, ...]:
        return (first, rest, options)

    previous = install_manager(_MANAGER)
    try:
        result = target(*args, **kwargs)
    finally:
        install_manager(previous)
    first = args[0] if args else kwargs.get("first")
    assert result[0] is first


@_FUZZ
@given(
    scope=_nasty_text, name=_nasty_text, attributes=st.dictionaries(_nasty_text, _attribute_value)
)
def test_library_tracers_from_the_routing_provider_take_any_input(
    scope: str, name: str, attributes: dict[str, Any]
) -> None:
    previous = install_manager(_MANAGER)
    try:
        tracer = TenantRoutingTracerProvider().get_tracer(scope, name)
        with tracer.start_as_current_span(name, attributes=attributes) as span:
            span.set_attributes(attributes)
    finally:
        install_manager(previous)
    assert _MANAGER.get_stats()["export_failures"] == 0
