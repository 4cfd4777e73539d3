"""Spans of several tenants exported to a real Phoenix, then read back over its REST API.

Runs over OTLP gRPC and OTLP HTTP/protobuf, with batch and synchronous export. Each tenant's
spans must land in that tenant's project and nowhere else, keep their parent/child links and
``tenant.id``, and a span with ``project_name`` must land in the tenant's service project.
Phoenix acknowledges an export before it writes it, so every read polls (``wait_for_spans``).
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import Span

from phoenix_server import PhoenixServer, phoenix_project_spans, phoenix_projects, wait_for_spans
from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager

pytestmark = pytest.mark.phoenix

CASES = [
    pytest.param("grpc", False, id="grpc-batch"),
    pytest.param("grpc", True, id="grpc-sync"),
    pytest.param("http/protobuf", False, id="http-batch"),
    pytest.param("http/protobuf", True, id="http-sync"),
]


def _manager(phoenix: PhoenixServer, protocol: str, sync: bool) -> TelemetryManager:
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.otlp_http_endpoint
    return TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,  # type: ignore[arg-type]
            batch_config=BatchExportConfig(
                use_sync_export=sync, schedule_delay_millis=50, export_timeout_millis=5000
            ),
        )
    )


def _hex(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def _assert_clean_stats(manager: TelemetryManager, sent: int) -> None:
    stats = manager.get_stats()
    assert stats["spans_started"] == sent, stats
    assert stats["spans_ended"] == sent, stats
    assert stats["exported_spans"] == sent, stats
    assert stats["dropped_spans"] == 0, stats
    assert stats["dropped_spans_by_tenant"] == {}, stats
    assert stats["export_failures"] == 0, stats
    assert stats["failed_export_spans"] == 0, stats
    assert stats["queued_spans"] == 0, stats


@pytest.mark.parametrize(("protocol", "sync"), CASES)
def test_tenant_spans_reach_only_their_own_phoenix_project(
    phoenix: PhoenixServer, protocol: str, sync: bool, request: pytest.FixtureRequest
) -> None:
    prefix = request.node.callspec.id  # unique per case: the cases share one Phoenix
    tenants = [f"{prefix}-acme", f"{prefix}-globex", f"{prefix}-initech"]
    # project name -> {span_id: (name, tenant, parent span_id or None)}
    sent: dict[str, dict[str, tuple[str, str, str | None]]] = {}
    manager = _manager(phoenix, protocol, sync)
    try:
        for index, tenant in enumerate(tenants):
            project = sent.setdefault(manager.config.get_project_name(tenant), {})
            with (
                manager.span(f"{tenant}.parent", tenant_id=tenant) as parent,
                manager.span(f"{tenant}.child", tenant_id=tenant) as child,  # inside parent
            ):
                project[_hex(child)] = (f"{tenant}.child", tenant, _hex(parent))
            project[_hex(parent)] = (f"{tenant}.parent", tenant, None)
            for n in range(index + 1):  # different counts per tenant expose misrouting
                name = f"{tenant}.solo-{n}"
                with manager.span(name, tenant_id=tenant, attributes={"n": n}) as solo:
                    project[_hex(solo)] = (name, tenant, None)
        video_tenant = tenants[0]
        with manager.span("video.search", tenant_id=video_tenant, project_name="video") as video:
            sent[manager.config.get_project_name(video_tenant, "video")] = {
                _hex(video): ("video.search", video_tenant, None)
            }
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
                assert span["status_code"] != "ERROR"

        # Nothing of this case in any project but the one it was sent to.
        home = {span_id: project for project, spans in sent.items() for span_id in spans}
        for project in phoenix_projects(phoenix.http_url):
            for span in phoenix_project_spans(phoenix.http_url, project, limit=100_000):
                span_id = span["context"]["span_id"]
                if span_id in home or span["attributes"].get("tenant.id") in tenants:
                    assert home.get(span_id) == project, (project, span["name"])
        _assert_clean_stats(manager, total)
    finally:
        manager.shutdown()


@pytest.mark.parametrize(("protocol", "sync"), [CASES[0], CASES[3]])
def test_error_span_arrives_with_error_status_and_exception_event(
    phoenix: PhoenixServer, protocol: str, sync: bool, request: pytest.FixtureRequest
) -> None:
    tenant = f"{request.node.callspec.id}-errors"
    manager = _manager(phoenix, protocol, sync)
    try:
        with (
            pytest.raises(RuntimeError, match="collector test boom"),
            manager.span("failing.op", tenant_id=tenant) as span,
        ):
            span_id = _hex(span)
            raise RuntimeError("collector test boom")
        with manager.span("fine.op", tenant_id=tenant):
            pass
        assert manager.force_flush(timeout_millis=10_000) is True

        project = manager.config.get_project_name(tenant)
        got = wait_for_spans(phoenix.http_url, project, 2, timeout_s=30)
        assert sorted(s["name"] for s in got) == ["failing.op", "fine.op"]
        failing: dict[str, Any] = next(s for s in got if s["name"] == "failing.op")
        assert failing["context"]["span_id"] == span_id
        assert failing["status_code"] == "ERROR"
        assert "collector test boom" in failing["status_message"]
        exceptions = [e for e in failing["events"] if e["name"] == "exception"]
        assert len(exceptions) == 1, failing["events"]
        attributes = exceptions[0]["attributes"]
        assert attributes["exception.type"].endswith("RuntimeError")
        assert attributes["exception.message"] == "collector test boom"
        fine = next(s for s in got if s["name"] == "fine.op")
        assert fine["status_code"] != "ERROR"
        assert fine["events"] == []
        _assert_clean_stats(manager, 2)
    finally:
        manager.shutdown()
