"""End to end: tenantrace's own OTLP exporters (``otlp_encoder="tenantrace"``) into a real
Arize Phoenix, over gRPC and HTTP, plain and gzip; every span of every tenant is read back
from its own project, and nowhere else.

The ``phoenix`` fixture (tests/conftest.py) starts the server; with CI=true a missing
Phoenix fails these tests instead of skipping them.
"""

from __future__ import annotations

import pytest
from opentelemetry.trace import Span

from phoenix_server import PhoenixServer, phoenix_project_spans, phoenix_projects, wait_for_spans
from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.grpc import GrpcSpanExporter
from tenantrace.export.http import HttpSpanExporter
from tenantrace.instrumentation.exporters import PerProcessExporter

pytestmark = pytest.mark.phoenix

# (protocol, compression, sync export)
CASES = [
    pytest.param(("grpc", None, False), id="grpc"),
    pytest.param(("grpc", "gzip", False), id="grpc-gzip"),
    pytest.param(("grpc", None, True), id="grpc-sync"),
    pytest.param(("http/protobuf", None, False), id="http"),
    pytest.param(("http/protobuf", "gzip", False), id="http-gzip"),
    pytest.param(("http/protobuf", None, True), id="http-sync"),
]


def _hex(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


@pytest.mark.parametrize("case", CASES)
def test_every_tenants_spans_reach_its_own_project(
    phoenix: PhoenixServer,
    case: tuple[str, str | None, bool],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol, compression, sync = case
    if compression is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression)
    prefix = f"transport-{request.node.callspec.id}"  # the cases share one Phoenix
    tenants = [f"{prefix}-acme", f"{prefix}-globex", f"{prefix}-initech", f"{prefix}-umbrella"]
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.otlp_http_endpoint
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,  # type: ignore[arg-type]
            otlp_encoder="tenantrace",
            batch_config=BatchExportConfig(
                use_sync_export=sync, schedule_delay_millis=50, export_timeout_millis=5000
            ),
        )
    )
    # project -> {span_id: (name, tenant, parent span_id or None)}
    sent: dict[str, dict[str, tuple[str, str, str | None]]] = {}
    try:
        exporter = manager.exporter
        assert isinstance(exporter, PerProcessExporter)
        ours = exporter.wrapped
        assert isinstance(ours, GrpcSpanExporter if protocol == "grpc" else HttpSpanExporter)
        for index, tenant in enumerate(tenants):
            project = sent.setdefault(manager.config.get_project_name(tenant), {})
            with (
                manager.span(f"{tenant}.parent", tenant_id=tenant) as parent,
                manager.span(f"{tenant}.child", tenant_id=tenant, attributes={"k": "ü"}) as child,
            ):
                project[_hex(child)] = (f"{tenant}.child", tenant, _hex(parent))
            project[_hex(parent)] = (f"{tenant}.parent", tenant, None)
            for n in range(index + 1):  # different counts per tenant expose misrouting
                name = f"{tenant}.solo-{n}"
                with manager.span(name, tenant_id=tenant, attributes={"n": n}) as solo:
                    project[_hex(solo)] = (name, tenant, None)
        total = sum(len(spans) for spans in sent.values())
        assert manager.force_flush(timeout_millis=10_000) is True

        for project, expected in sent.items():
            got = wait_for_spans(phoenix.http_url, project, len(expected), timeout_s=30)
            by_id = {span["context"]["span_id"]: span for span in got}
            assert set(by_id) == set(expected), f"{project}: {sorted(s['name'] for s in got)}"
            for span_id, (name, tenant, parent_id) in expected.items():
                span = by_id[span_id]
                assert span["name"] == name
                assert span["attributes"]["tenant.id"] == tenant
                assert span["parent_id"] == parent_id

        home = {span_id: project for project, spans in sent.items() for span_id in spans}
        for project in phoenix_projects(phoenix.http_url):
            for span in phoenix_project_spans(phoenix.http_url, project, limit=100_000):
                if span["context"]["span_id"] in home or span["attributes"].get("tenant.id") in (
                    tenants
                ):
                    assert home.get(span["context"]["span_id"]) == project, project

        stats = manager.get_stats()
        assert stats["exported_spans"] == total, stats
        assert stats["dropped_spans"] == 0, stats
        assert stats["export_failures"] == 0, stats
        transport = ours.stats()
        assert transport["otlp_spans_sent"] == total
        assert transport["otlp_failed_exports"] == 0
        assert transport["otlp_rejected_spans"] == 0
        assert transport["otlp_bytes_sent"] > 0
        if sync:
            assert transport["otlp_requests"] == total  # one request per span
    finally:
        manager.shutdown()
