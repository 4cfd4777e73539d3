"""Every span can name its tenant: ``tenant.id`` written on the wire by the encoder."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from tenantrace import TelemetryConfig, tenant_scope
from tenantrace.export import encode_spans
from tenantrace.testing import capture_spans


def _decoded(spans: list[ReadableSpan]) -> dict[str, dict[str, str]]:
    request = ExportTraceServiceRequest.FromString(encode_spans(spans, name_tenants=True))
    found: dict[str, dict[str, str]] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found[span.name] = {a.key: a.value.string_value for a in span.attributes}
    return found


def test_decorated_and_third_party_spans_name_their_tenant() -> None:
    from opentelemetry import trace

    from tenantrace import trace_function

    @trace_function(name="decorated")
    def decorated() -> None:
        return None

    with capture_spans(TelemetryConfig(exporter_type="memory")) as spans:
        with tenant_scope("acme"):
            decorated()
            with trace.get_tracer("lib").start_as_current_span("third", attributes={"k": "v"}):
                pass
        with spans.manager.span("managed", tenant_id="globex"):
            pass
        raw = [s.raw for s in spans.spans() if s.raw is not None]
    found = _decoded(raw)
    assert found["decorated"] == {"tenant.id": "acme"}
    assert found["third"] == {"k": "v", "tenant.id": "acme"}
    assert found["managed"] == {"tenant.id": "globex"}  # its own attribute, not twice


def test_without_name_tenants_the_bytes_are_the_sdks() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk

    with capture_spans(TelemetryConfig(exporter_type="memory")) as spans:
        with tenant_scope("acme"), spans.manager.span("a"):
            pass
        raw = [s.raw for s in spans.spans() if s.raw is not None]
    assert encode_spans(raw) == sdk(raw).SerializeToString()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("every_span", [True, False])
def test_the_config_decides_whether_the_transports_name_tenants(
    protocol: str, every_span: bool
) -> None:
    from tenantrace.instrumentation.exporters import build_exporter

    config = TelemetryConfig(
        otlp_endpoint="127.0.0.1:9" if protocol == "grpc" else "http://127.0.0.1:9",
        otlp_protocol=protocol,  # type: ignore[arg-type]
        tenant_id_on_every_span=every_span,
    )
    exporter = build_exporter(config)
    try:
        assert getattr(exporter, "wrapped", exporter).name_tenants is every_span
    finally:
        exporter.shutdown()
