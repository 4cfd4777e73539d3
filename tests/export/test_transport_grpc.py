"""GrpcSpanExporter against a real in-process OTLP/gRPC receiver (no mocks of the transport).

The receiver is a grpcio server running opentelemetry-proto's TraceServiceServicer;
what it parses must be exactly the request the SDK's encoder builds for the same
spans. Retries, backoff, RetryInfo, partial success, TLS, gzip on the wire, dead
and black-holed endpoints, shutdown and concurrency are exercised for real.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from hypothesis import HealthCheck, given, settings
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from otlp_spans import batches
from transport_helpers import TcpRelay, compressible_spans, self_signed, tenant_spans

from otlp_receivers import GrpcReceiver, spans_of
from tenantrace.export import encode_spans
from tenantrace.export.grpc import GrpcSpanExporter

SUCCESS, FAILURE = SpanExportResult.SUCCESS, SpanExportResult.FAILURE
MARGIN_S = 1.0  # how late a timed call may return on a loaded CI machine


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    server = GrpcReceiver()
    yield server
    server.stop()


@pytest.fixture
def exporters() -> Iterator[list[GrpcSpanExporter]]:
    made: list[GrpcSpanExporter] = []
    yield made
    for exporter in made:
        exporter.shutdown()


Make = Callable[..., GrpcSpanExporter]


@pytest.fixture
def make(exporters: list[GrpcSpanExporter]) -> Make:
    def build(endpoint: str, **kwargs: object) -> GrpcSpanExporter:
        kwargs.setdefault("insecure", True)
        kwargs.setdefault("timeout", 10.0)
        exporter = GrpcSpanExporter(endpoint, **kwargs)  # type: ignore[arg-type]
        exporters.append(exporter)
        return exporter

    return build


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ content


def test_the_receiver_gets_exactly_the_sdk_request(receiver: GrpcReceiver, make: Make) -> None:
    spans = tenant_spans()
    exporter = make(receiver.endpoint)
    assert exporter.export(spans) is SUCCESS
    (received,) = receiver.requests
    expected = sdk_encode(spans)
    assert received == expected
    assert received.SerializeToString() == expected.SerializeToString() == encode_spans(spans)
    assert len(received.resource_spans) == 3  # one per tenant
    stats = exporter.stats()
    assert stats["otlp_requests"] == 1
    assert stats["otlp_retries"] == 0
    assert stats["otlp_spans_sent"] == 6
    assert stats["otlp_bytes_sent"] == len(encode_spans(spans))
    assert stats["otlp_failed_exports"] == 0
    assert exporter.force_flush() is True


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[GrpcReceiver]:
    server = GrpcReceiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_exporter(shared_receiver: GrpcReceiver) -> Iterator[GrpcSpanExporter]:
    exporter = GrpcSpanExporter(shared_receiver.endpoint, insecure=True, timeout=10)
    yield exporter
    exporter.shutdown()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_generated_batches_arrive_as_the_sdk_encodes_them(
    shared_receiver: GrpcReceiver, shared_exporter: GrpcSpanExporter, batch: list[ReadableSpan]
) -> None:
    shared_receiver.requests.clear()
    assert shared_exporter.export(batch) is SUCCESS
    (received,) = shared_receiver.requests
    assert received == sdk_encode(batch)


def test_an_empty_batch_sends_nothing(receiver: GrpcReceiver, make: Make) -> None:
    assert make(receiver.endpoint).export([]) is SUCCESS
    assert receiver.attempts == 0


# ---------------------------------------------------------------- options


def test_gzip_compresses_on_the_wire(receiver: GrpcReceiver, make: Make) -> None:
    spans = compressible_spans()
    size = len(encode_spans(spans))
    for compression, check in (
        ("gzip", lambda wire: wire < size / 5),
        (None, lambda wire: wire > size),
    ):
        relay = TcpRelay(receiver.port)
        try:
            exporter = make(f"127.0.0.1:{relay.port}", compression=compression)
            assert exporter.export(spans) is SUCCESS
            assert check(relay.upstream_bytes), (compression, relay.upstream_bytes, size)
        finally:
            relay.stop()
    assert len(receiver.requests) == 2
    assert all(request == sdk_encode(spans) for request in receiver.requests)


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"]
)
def test_compression_from_the_environment(
    variable: str, receiver: GrpcReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "gzip")
    spans = compressible_spans()
    relay = TcpRelay(receiver.port)
    try:
        exporter = make(f"127.0.0.1:{relay.port}")
        assert exporter.compression == grpc.Compression.Gzip
        assert exporter.export(spans) is SUCCESS
        assert relay.upstream_bytes < len(encode_spans(spans)) / 5
    finally:
        relay.stop()


def test_an_unknown_compression_is_logged_and_ignored(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = make("127.0.0.1:1", compression="brotli")
    assert exporter.compression == grpc.Compression.NoCompression
    assert "unknown OTLP compression" in caplog.text


def test_headers_go_as_metadata(receiver: GrpcReceiver, make: Make) -> None:
    exporter = make(receiver.endpoint, headers={"Authorization": "Bearer t0k", "x-team": "obs"})
    assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    (metadata,) = receiver.metadata
    assert metadata["authorization"] == "Bearer t0k"  # gRPC wants lowercase keys
    assert metadata["x-team"] == "obs"
    assert "OTel-OTLP-Exporter-Python/" in metadata["user-agent"]


def test_headers_from_the_environment(
    receiver: GrpcReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret%20value,Other=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=traces-key")
    assert make(receiver.endpoint).export(tenant_spans(("acme",))) is SUCCESS
    assert receiver.metadata[0]["api-key"] == "traces-key"  # the traces variable wins
    assert "other" not in receiver.metadata[0]
    # Explicit headers replace the environment's, as for the SDK's exporter.
    assert make(receiver.endpoint, headers="k=v").export(tenant_spans(("acme",))) is SUCCESS
    assert receiver.metadata[1]["k"] == "v"
    assert "api-key" not in receiver.metadata[1]


@pytest.mark.parametrize(
    ("endpoint", "insecure", "target", "plain"),
    [
        ("http://collector:4317", None, "collector:4317", True),
        ("https://collector:4317", None, "collector:4317", False),
        ("https://collector:4317", True, "collector:4317", False),  # https wins
        ("collector:4317", True, "collector:4317", True),
        ("collector:4317", False, "collector:4317", False),
    ],
)
def test_endpoint_forms(endpoint: str, insecure: bool | None, target: str, plain: bool) -> None:
    exporter = GrpcSpanExporter(endpoint, insecure=insecure)
    try:
        assert (exporter.target, exporter.insecure) == (target, plain)
    finally:
        exporter.shutdown()


def test_tls_with_the_sdk_certificate_variable(
    tmp_path: Path, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    cert, key = self_signed()
    receiver = GrpcReceiver(tls=(cert, key))
    try:
        spans = tenant_spans(("acme",))
        # No trusted root: the handshake fails (retried until the timeout, then FAILURE).
        untrusted = make(f"https://127.0.0.1:{receiver.port}", insecure=None, timeout=0.5)
        assert untrusted.export(spans) is FAILURE
        assert receiver.requests == []
        (tmp_path / "ca.pem").write_bytes(cert)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tmp_path / "ca.pem"))
        trusted = make(f"https://127.0.0.1:{receiver.port}", insecure=None)
        assert not trusted.insecure
        assert trusted.export(spans) is SUCCESS
        explicit = make(
            f"127.0.0.1:{receiver.port}",
            insecure=False,
            credentials=grpc.ssl_channel_credentials(root_certificates=cert),
        )
        assert explicit.export(spans) is SUCCESS
        assert receiver.requests == [sdk_encode(spans)] * 2
    finally:
        receiver.stop()


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("trailer", ["status", "retryinfo"])
def test_unavailable_is_retried_with_the_servers_delay(
    trailer: str, receiver: GrpcReceiver, make: Make
) -> None:
    receiver.fail(2, grpc.StatusCode.UNAVAILABLE, retry_delay_s=0.05, trailer=trailer)
    spans = tenant_spans()
    exporter = make(receiver.endpoint)
    started = time.monotonic()
    assert exporter.export(spans) is SUCCESS
    assert time.monotonic() - started < 2.0  # 2 x 50 ms: the backoff would be >= 2.4 s
    assert receiver.attempts == 3
    assert receiver.requests == [sdk_encode(spans)]  # one request's spans arrive once
    stats = exporter.stats()
    assert (stats["otlp_requests"], stats["otlp_retries"], stats["otlp_spans_sent"]) == (3, 2, 6)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    ],
)
def test_the_sdks_retryable_codes_are_retried(
    code: grpc.StatusCode, receiver: GrpcReceiver, make: Make
) -> None:
    receiver.fail(1, code, retry_delay_s=0.01)
    assert make(receiver.endpoint).export(tenant_spans(("acme",))) is SUCCESS
    assert receiver.attempts == 2
    assert len(receiver.requests) == 1


def test_without_retry_info_the_backoff_is_about_a_second(
    receiver: GrpcReceiver, make: Make
) -> None:
    receiver.fail(1, grpc.StatusCode.UNAVAILABLE)
    started = time.monotonic()
    assert make(receiver.endpoint, timeout=5).export(tenant_spans(("acme",))) is SUCCESS
    assert 0.75 <= time.monotonic() - started < 1.2 + MARGIN_S  # 1 s +/- 20 %
    assert receiver.attempts == 2


def test_resource_exhausted_is_retried_only_with_retry_info(
    receiver: GrpcReceiver, make: Make
) -> None:
    exporter = make(receiver.endpoint)
    spans = tenant_spans(("acme",))
    receiver.fail(1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    started = time.monotonic()
    assert exporter.export(spans) is FAILURE
    assert time.monotonic() - started < MARGIN_S
    assert receiver.attempts == 1
    receiver.fail(1, grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay_s=0.05)
    assert exporter.export(spans) is SUCCESS
    assert receiver.attempts == 3


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ],
)
def test_non_retryable_codes_fail_fast(
    code: grpc.StatusCode, receiver: GrpcReceiver, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tenantrace.export")
    receiver.fail(3, code, details="no way")
    exporter = make(receiver.endpoint)
    for _ in range(3):
        assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert receiver.attempts == 3  # one request per export: no retry
    assert receiver.requests == []
    assert exporter.last_error == f"{code.name}: no way"
    assert exporter.stats()["otlp_failed_exports"] == 3
    logged = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(logged) == 1  # once a minute, not per export
    assert code.name in logged[0].getMessage()


def test_a_delay_past_the_timeout_fails_at_once(receiver: GrpcReceiver, make: Make) -> None:
    receiver.fail(1, grpc.StatusCode.UNAVAILABLE, retry_delay_s=30)
    started = time.monotonic()
    assert make(receiver.endpoint, timeout=2).export(tenant_spans(("acme",))) is FAILURE
    assert time.monotonic() - started < MARGIN_S
    assert receiver.attempts == 1


def test_partial_success_is_counted_and_logged_once(
    receiver: GrpcReceiver, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tenantrace.export")
    receiver.partial = (2, "2 spans had no name")
    exporter = make(receiver.endpoint)
    spans = tenant_spans()
    assert exporter.export(spans) is SUCCESS  # accepted: not retried
    assert exporter.export(spans) is SUCCESS
    assert receiver.attempts == 2
    stats = exporter.stats()
    assert stats["otlp_rejected_spans"] == 4
    assert stats["otlp_spans_sent"] == 12
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 1
    assert "2 spans had no name" in logged[0]


# ------------------------------------------------------------- dead ends


def test_a_refused_endpoint_fails_within_the_timeout(make: Make) -> None:
    exporter = make(f"127.0.0.1:{_closed_port()}", timeout=2)
    started = time.monotonic()
    assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert time.monotonic() - started < 2 + MARGIN_S
    assert "UNAVAILABLE" in (exporter.last_error or "")


def test_a_black_holed_endpoint_fails_within_the_timeout(make: Make) -> None:
    with socket.create_server(("127.0.0.1", 0)) as hole:  # accepts, never answers
        exporter = make(f"127.0.0.1:{hole.getsockname()[1]}", timeout=1)
        started = time.monotonic()
        assert exporter.export(tenant_spans(("acme",))) is FAILURE
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1 + MARGIN_S
    assert "DEADLINE_EXCEEDED" in (exporter.last_error or "")


def test_a_restarted_collector_is_reached_again(make: Make) -> None:
    first = GrpcReceiver()
    port = first.port
    exporter = make(f"127.0.0.1:{port}", timeout=0.5)
    assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    first.stop()
    assert exporter.export(tenant_spans(("acme",))) is FAILURE
    second = GrpcReceiver(port=port)  # restarted on the same port
    try:
        ok = False
        deadline = time.monotonic() + 10
        while not ok and time.monotonic() < deadline:
            ok = exporter.export(tenant_spans(("acme",))) is SUCCESS
        assert ok
        assert len(second.requests) == 1
    finally:
        second.stop()


# --------------------------------------------------------- life and errors


def test_shutdown_ends_a_retry_wait_and_later_exports_fail(
    receiver: GrpcReceiver, make: Make
) -> None:
    receiver.fail(1, grpc.StatusCode.UNAVAILABLE, retry_delay_s=20)
    exporter = make(receiver.endpoint, timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(tenant_spans())))
    worker.start()
    while receiver.attempts == 0:
        time.sleep(0.01)
    time.sleep(0.1)  # now waiting out the server's 20 s
    started = time.monotonic()
    exporter.shutdown()
    worker.join(10)
    assert not worker.is_alive()  # the server asked for 20 s
    assert time.monotonic() - started < 10
    assert results == [FAILURE]
    assert exporter.export(tenant_spans()) is FAILURE
    assert receiver.attempts == 1
    exporter.shutdown()  # idempotent


def test_shutdown_cancels_a_call_in_flight(receiver: GrpcReceiver, make: Make) -> None:
    receiver.hold = threading.Event()
    exporter = make(receiver.endpoint, timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(tenant_spans())))
    worker.start()
    while receiver.attempts == 0:
        time.sleep(0.01)
    started = time.monotonic()
    exporter.shutdown()
    worker.join(10)
    assert not worker.is_alive()  # the server asked for 20 s
    assert time.monotonic() - started < 10
    assert results == [FAILURE]


def test_shutdown_cancels_a_call_on_a_replaced_channel(receiver: GrpcReceiver, make: Make) -> None:
    # A reconnect leaves the old channel open for the calls still on it; shutdown
    # must close it too, or such a call would hold the export thread up to its timeout.
    receiver.hold = threading.Event()
    exporter = make(receiver.endpoint, timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(tenant_spans())))
    worker.start()
    while receiver.attempts == 0:
        time.sleep(0.01)
    exporter._reconnect(exporter._conn)  # as another export's UNAVAILABLE first attempt does
    started = time.monotonic()
    exporter.shutdown()
    worker.join(10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 10
    assert results == [FAILURE]


def test_export_never_raises(receiver: GrpcReceiver, make: Make) -> None:
    exporter = make(receiver.endpoint)
    assert exporter.export([object()]) is FAILURE  # type: ignore[list-item]
    assert exporter.export(None) is SUCCESS  # type: ignore[arg-type]  # nothing to send
    assert receiver.attempts == 0
    assert exporter.stats()["otlp_failed_exports"] == 1


def test_what_our_encoder_refuses_goes_as_the_sdk_encodes_it(
    receiver: GrpcReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(spans: object) -> bytes:
        raise ValueError("refused")

    monkeypatch.setattr("tenantrace.export._transport.encode_spans", refuse)
    spans = tenant_spans()
    exporter = make(receiver.endpoint)
    assert exporter.export(spans) is SUCCESS
    assert receiver.requests == [sdk_encode(spans)]
    assert exporter.stats()["otlp_encoder_fallbacks"] == 1


def test_concurrent_exports_share_one_channel(receiver: GrpcReceiver, make: Make) -> None:
    exporter = make(receiver.endpoint)
    batches_ = [tenant_spans((f"t{i}",)) for i in range(16)]
    results: list[SpanExportResult] = []
    threads = [
        threading.Thread(target=lambda b=b: results.append(exporter.export(b))) for b in batches_
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [SUCCESS] * 16
    assert receiver.span_count() == 32
    stats = exporter.stats()
    assert (stats["otlp_requests"], stats["otlp_spans_sent"]) == (16, 32)


class _FirstAttemptUnavailable(GrpcReceiver):
    """Answers UNAVAILABLE (retry in 10 ms) to the first attempt of each distinct request.

    Which request fails is decided by its content, not by arrival order: a shared
    queue of failures would let one export's quick retries take several of them
    when the machine is loaded, and give up after six attempts.
    """

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        super().__init__()

    def _export(
        self, received: tuple[bytes, ExportTraceServiceRequest], context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        with self._cond:
            first = received[0] not in self.seen
            self.seen.add(received[0])
        if first:
            delay = RetryInfo(retry_delay=Duration(nanos=10_000_000))
            context.set_trailing_metadata(
                (("google.rpc.retryinfo-bin", delay.SerializeToString()),)
            )
            context.abort(grpc.StatusCode.UNAVAILABLE, "first attempt")
        return super()._export(received, context)


def test_concurrent_exports_survive_reconnects(make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each export's first attempt is UNAVAILABLE, which makes the channel anew
    # while other exports' calls are still on the old one: those calls must end
    # as the collector answers them, not be cancelled and sent again.
    receiver = _FirstAttemptUnavailable()
    try:
        exporter = make(receiver.endpoint)
        opened = 0
        open_channel = exporter._open

        def counted() -> Any:
            nonlocal opened
            opened += 1
            return open_channel()

        monkeypatch.setattr(exporter, "_open", counted)
        results: list[SpanExportResult] = []
        together = threading.Barrier(16)

        def export(i: int) -> None:
            together.wait(10)  # all exports under way at once, however the threads start
            results.append(exporter.export(tenant_spans((f"t{i}",))))

        threads = [threading.Thread(target=export, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [SUCCESS] * 16
        arrived = Counter(
            resource["tenant.id"] for r in receiver.received() for resource, _ in spans_of(r)
        )
        assert arrived == {f"t{i}": 2 for i in range(16)}  # each batch once
        stats = exporter.stats()
        # One retry per export: no call was cancelled by another export's reconnect.
        assert (stats["otlp_requests"], stats["otlp_retries"]) == (32, 16)
        assert opened >= 1
    finally:
        receiver.stop()
