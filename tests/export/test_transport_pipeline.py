"""``otlp_encoder``: the config picks tenantrace's exporters (default) or the SDK's, and a
TelemetryManager exports through them to real in-process receivers, tenant by tenant."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as SdkGrpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as SdkHttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_receivers import GrpcReceiver, HttpReceiver
from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.grpc import GrpcSpanExporter
from tenantrace.export.http import HttpSpanExporter
from tenantrace.instrumentation.exporters import PerProcessExporter, build_exporter

TENANTS = ("acme", "globex", "initech")


def _wrapped(config: TelemetryConfig) -> Any:
    exporter = build_exporter(config)
    assert isinstance(exporter, PerProcessExporter)
    return exporter.wrapped


# ------------------------------------------------------------------ config


def test_tenantrace_is_the_default_and_sdk_the_fallback() -> None:
    assert TelemetryConfig().otlp_encoder == "tenantrace"
    assert TelemetryConfig(otlp_encoder="sdk").otlp_encoder == "sdk"
    with pytest.raises(ValueError, match="otlp_encoder"):
        TelemetryConfig(otlp_encoder="protobuf")  # type: ignore[arg-type]


def test_the_encoder_from_the_environment(caplog: pytest.LogCaptureFixture) -> None:
    assert TelemetryConfig.from_env({"TENANTRACE_OTLP_ENCODER": " SDK "}).otlp_encoder == "sdk"
    assert TelemetryConfig.from_env({}).otlp_encoder == "tenantrace"
    with caplog.at_level(logging.WARNING):
        config = TelemetryConfig.from_env({"TENANTRACE_OTLP_ENCODER": "fast"})
    assert config.otlp_encoder == "tenantrace"  # a typo warns and keeps the default
    assert "TENANTRACE_OTLP_ENCODER" in caplog.text
    explicit = TelemetryConfig.from_env(
        {"TENANTRACE_OTLP_ENCODER": "sdk"}, otlp_encoder="tenantrace"
    )
    assert explicit.otlp_encoder == "tenantrace"


@pytest.mark.parametrize(
    ("endpoint", "use_tls", "target", "insecure"),
    [
        ("localhost:4317", False, "localhost:4317", True),
        ("localhost:4317", True, "localhost:4317", False),
        ("http://collector:4317", True, "collector:4317", True),  # the scheme decides
        ("https://collector:4317", False, "collector:4317", False),
    ],
)
def test_grpc_options_are_those_the_sdk_exporter_gets(
    endpoint: str, use_tls: bool, target: str, insecure: bool
) -> None:
    config = TelemetryConfig(
        otlp_endpoint=endpoint, otlp_use_tls=use_tls, otlp_headers={"Api-Key": "k"}
    )
    ours = _wrapped(config)
    sdk = _wrapped(config.with_overrides(otlp_encoder="sdk"))
    try:
        assert isinstance(ours, GrpcSpanExporter)
        assert isinstance(sdk, SdkGrpc)
        assert (ours.target, ours.insecure) == (sdk._endpoint, sdk._insecure) == (target, insecure)
        assert ours.headers == (("api-key", "k"),)
        assert ours.timeout_s == sdk._timeout == 30.0
    finally:
        ours.shutdown()
        sdk.shutdown()


@pytest.mark.parametrize(
    ("endpoint", "use_tls", "url"),
    [
        ("localhost:4318", False, "http://localhost:4318/v1/traces"),
        ("collector:4318", True, "https://collector:4318/v1/traces"),
        ("http://collector:4318", False, "http://collector:4318/v1/traces"),
        ("http://collector:4318/custom/path", False, "http://collector:4318/custom/path"),
    ],
)
def test_http_options_are_those_the_sdk_exporter_gets(
    endpoint: str, use_tls: bool, url: str
) -> None:
    config = TelemetryConfig(
        otlp_endpoint=endpoint,
        otlp_use_tls=use_tls,
        otlp_protocol="http/protobuf",
        otlp_headers={"Api-Key": "k"},
        batch_config=BatchExportConfig(use_sync_export=True),
    )
    ours = _wrapped(config)
    sdk = _wrapped(config.with_overrides(otlp_encoder="sdk"))
    try:
        assert isinstance(ours, HttpSpanExporter)
        assert isinstance(sdk, SdkHttp)
        assert ours.endpoint == sdk._endpoint == url
        assert ours.headers["api-key"] == "k"
        assert ours.timeout_s == 1.0  # sync mode caps the export timeout
    finally:
        ours.shutdown()
        sdk.shutdown()


# ---------------------------------------------------------------- pipeline


def _spans_by_tenant(requests: list[ExportTraceServiceRequest]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for request in requests:
        for resource_spans in request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
            tenant = resource["tenant.id"]
            assert resource["openinference.project.name"] == f"cogniverse-{tenant}"
            for scope_spans in resource_spans.scope_spans:
                found.setdefault(tenant, []).extend(span.name for span in scope_spans.spans)
    return found


def _run(manager: TelemetryManager) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = {}
    for index, tenant in enumerate(TENANTS):
        for n in range(index + 2):
            with manager.span(f"{tenant}.op-{n}", tenant_id=tenant, attributes={"n": n}):
                pass
            expected.setdefault(tenant, []).append(f"{tenant}.op-{n}")
    assert manager.force_flush(timeout_millis=10_000) is True
    return expected


def _check_stats(manager: TelemetryManager, total: int, requests: int | None = None) -> None:
    stats = manager.get_stats()
    assert stats["exported_spans"] == total, stats
    assert stats["dropped_spans"] == 0, stats
    assert stats["export_failures"] == 0, stats
    exporter = manager.exporter
    assert isinstance(exporter, PerProcessExporter)
    ours = exporter.wrapped.stats()  # type: ignore[attr-defined]
    assert ours["otlp_spans_sent"] == total
    assert ours["otlp_failed_exports"] == 0
    if requests is not None:
        assert ours["otlp_requests"] == requests


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.stop()


def _config(endpoint: str, protocol: str, sync: bool) -> TelemetryConfig:
    return TelemetryConfig(
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,  # type: ignore[arg-type]
        batch_config=BatchExportConfig(
            use_sync_export=sync, schedule_delay_millis=20, export_timeout_millis=5000
        ),
    )


@pytest.mark.parametrize("sync", [False, True], ids=["batch", "sync"])
def test_a_manager_exports_every_tenant_over_grpc(grpc_receiver: GrpcReceiver, sync: bool) -> None:
    manager = TelemetryManager(_config(grpc_receiver.endpoint, "grpc", sync))
    try:
        expected = _run(manager)
        got = _spans_by_tenant(grpc_receiver.requests)
        assert {t: sorted(names) for t, names in got.items()} == expected
        _check_stats(manager, 9)
    finally:
        manager.shutdown()


@pytest.mark.parametrize("sync", [False, True], ids=["batch", "sync"])
def test_a_manager_exports_every_tenant_over_http(http_receiver: HttpReceiver, sync: bool) -> None:
    manager = TelemetryManager(_config(http_receiver.url, "http/protobuf", sync))
    try:
        expected = _run(manager)
        requests = [ExportTraceServiceRequest.FromString(r.body) for r in http_receiver.requests]
        got = _spans_by_tenant(requests)
        assert {t: sorted(names) for t, names in got.items()} == expected
        _check_stats(manager, 9, requests=9 if sync else None)
    finally:
        manager.shutdown()


def test_retries_below_the_pipeline_lose_nothing(
    grpc_receiver: GrpcReceiver, http_receiver: HttpReceiver
) -> None:
    grpc_receiver.fail(2, grpc.StatusCode.UNAVAILABLE, retry_delay_s=0.05)
    http_receiver.respond(2, 503, {"Retry-After": "0"})
    for endpoint, protocol in (
        (grpc_receiver.endpoint, "grpc"),
        (http_receiver.url, "http/protobuf"),
    ):
        manager = TelemetryManager(_config(endpoint, protocol, sync=False))
        try:
            _run(manager)
            _check_stats(manager, 9)
            exporter = manager.exporter
            assert isinstance(exporter, PerProcessExporter)
            assert exporter.wrapped.stats()["otlp_retries"] == 2  # type: ignore[attr-defined]
        finally:
            manager.shutdown()
    assert grpc_receiver.span_count() == 9
    assert len(http_receiver.attempts) == len(http_receiver.requests) + 2


def test_a_non_retryable_refusal_is_a_counted_failure(grpc_receiver: GrpcReceiver) -> None:
    grpc_receiver.fail(1, grpc.StatusCode.UNAUTHENTICATED, details="bad token")
    manager = TelemetryManager(_config(grpc_receiver.endpoint, "grpc", sync=True))
    try:
        with manager.span("op", tenant_id="acme"):
            pass
        stats = manager.get_stats()
        assert (stats["export_failures"], stats["dropped_spans"]) == (1, 1)
        exporter = manager.exporter
        assert isinstance(exporter, PerProcessExporter)
        assert exporter.wrapped.last_error == "UNAUTHENTICATED: bad token"  # type: ignore[attr-defined]
    finally:
        manager.shutdown()


def test_the_sdk_fallback_still_exports(grpc_receiver: GrpcReceiver) -> None:
    config = _config(grpc_receiver.endpoint, "grpc", sync=False).with_overrides(otlp_encoder="sdk")
    manager = TelemetryManager(config)
    try:
        expected = _run(manager)
        exporter = manager.exporter
        assert isinstance(exporter, PerProcessExporter)
        assert isinstance(exporter.wrapped, SdkGrpc)
        got = _spans_by_tenant(grpc_receiver.requests)
        assert {t: sorted(names) for t, names in got.items()} == expected
    finally:
        manager.shutdown()
