"""HttpSpanExporter against a real in-process OTLP/HTTP receiver (no mocks of the transport).

The receiver is an HTTP/1.1 server on loopback; the body it receives must be,
byte for byte, what the SDK's encoder serializes for the same spans. Retries on
429/502/503/504 with Retry-After, non-retryable answers, partial success, gzip
and deflate, headers, TLS, connection reuse, dead and black-holed endpoints and
shutdown are exercised for real.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from hypothesis import HealthCheck, given, settings
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from otlp_spans import batches
from transport_helpers import compressible_spans, self_signed, tenant_spans

from otlp_receivers import HttpReceiver
from tenantrace.export import encode_spans
from tenantrace.export.http import HttpSpanExporter, retry_after

SUCCESS, FAILURE = SpanExportResult.SUCCESS, SpanExportResult.FAILURE
MARGIN_S = 1.0  # how late a timed call may return on a loaded CI machine

Make = Callable[..., HttpSpanExporter]


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[HttpSpanExporter] = []

    def build(endpoint: str, **kwargs: object) -> HttpSpanExporter:
        kwargs.setdefault("timeout", 10.0)
        exporter = HttpSpanExporter(endpoint, **kwargs)  # type: ignore[arg-type]
        made.append(exporter)
        return exporter

    yield build
    for exporter in made:
        exporter.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sdk_bytes(spans: list[ReadableSpan]) -> bytes:
    return sdk_encode(spans).SerializeToString()


# ------------------------------------------------------------------ content


def test_the_body_is_exactly_the_sdk_request(receiver: HttpReceiver, make: Make) -> None:
    spans = tenant_spans()
    exporter = make(receiver.url)
    assert exporter.export(spans) is SUCCESS
    (request,) = receiver.requests
    assert request.path == "/v1/traces"
    assert request.raw == request.body == _sdk_bytes(spans)
    assert request.headers["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in request.headers
    assert request.headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
    stats = exporter.stats()
    assert stats["otlp_requests"] == 1
    assert stats["otlp_spans_sent"] == 6
    assert stats["otlp_bytes_sent"] == len(request.body)
    assert exporter.force_flush() is True


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[HttpReceiver, HttpSpanExporter]]:
    receiver = HttpReceiver()
    exporter = HttpSpanExporter(receiver.url, timeout=10)
    yield receiver, exporter
    exporter.shutdown()
    receiver.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_generated_batches_arrive_as_the_sdk_serializes_them(
    shared: tuple[HttpReceiver, HttpSpanExporter], batch: list[ReadableSpan]
) -> None:
    receiver, exporter = shared
    receiver.requests.clear()
    assert exporter.export(batch) is SUCCESS
    (request,) = receiver.requests
    assert request.body == _sdk_bytes(batch)


def test_connections_are_reused(receiver: HttpReceiver, make: Make) -> None:
    exporter = make(receiver.url)
    for _ in range(5):
        assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    assert len({request.client_port for request in receiver.requests}) == 1


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compression(compression: str, receiver: HttpReceiver, make: Make) -> None:
    spans = compressible_spans()
    assert make(receiver.url, compression=compression).export(spans) is SUCCESS
    (request,) = receiver.requests
    assert request.headers["content-encoding"] == compression
    assert request.body == _sdk_bytes(spans)
    assert len(request.raw) < len(request.body) / 5


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"]
)
def test_gzip_from_the_environment(
    variable: str, receiver: HttpReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "GZIP")
    spans = tenant_spans()
    exporter = make(receiver.url)
    assert exporter.compression == "gzip"
    assert exporter.export(spans) is SUCCESS
    assert receiver.requests[0].headers["content-encoding"] == "gzip"
    assert receiver.requests[0].body == _sdk_bytes(spans)


def test_an_unknown_compression_is_logged_and_ignored(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    assert make("http://127.0.0.1:1/v1/traces", compression="zstd").compression == "none"
    assert "unknown OTLP compression" in caplog.text


def test_headers_explicit_over_the_environment(
    receiver: HttpReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=generic,x-env=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=traces%20key,x-env=2")
    exporter = make(receiver.url, headers={"Authorization": "Bearer t0k", "X-Env": "3"})
    assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    headers = receiver.requests[0].headers
    assert headers["api-key"] == "traces key"  # the traces variable, percent-decoded
    assert headers["x-env"] == "3"  # explicit wins
    assert headers["authorization"] == "Bearer t0k"


def test_the_endpoint_from_the_environment(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}/")
    exporter = HttpSpanExporter(timeout=5)
    try:
        assert exporter.endpoint == receiver.url  # the signal path appended
        assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    finally:
        exporter.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom")
    exporter = HttpSpanExporter()
    assert exporter.endpoint == "http://collector:4318/custom"  # as is
    exporter.shutdown()


def test_tls_with_a_certificate_file(
    tmp_path: Path, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    cert, key = self_signed()
    receiver = HttpReceiver(tls=(cert, key), tls_dir=tmp_path)
    try:
        spans = tenant_spans(("acme",))
        untrusted = make(receiver.url, timeout=0.5)
        assert untrusted.export(spans) is FAILURE
        assert "SSLError" in (untrusted.last_error or "")
        (tmp_path / "ca.pem").write_bytes(cert)
        assert make(receiver.url, certificate_file=str(tmp_path / "ca.pem")).export(spans) is (
            SUCCESS
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(tmp_path / "ca.pem"))
        assert make(receiver.url).export(spans) is SUCCESS
        assert [request.body for request in receiver.requests] == [_sdk_bytes(spans)] * 2
    finally:
        receiver.stop()


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_answers_are_retried_with_retry_after(
    status: int, receiver: HttpReceiver, make: Make
) -> None:
    receiver.respond(2, status, {"Retry-After": "0"})
    spans = tenant_spans()
    exporter = make(receiver.url)
    started = time.monotonic()
    assert exporter.export(spans) is SUCCESS
    assert time.monotonic() - started < 2.0  # Retry-After 0: the backoff would be >= 2.4 s
    assert len(receiver.attempts) == 3
    assert [request.body for request in receiver.requests] == [_sdk_bytes(spans)]  # once
    stats = exporter.stats()
    assert (stats["otlp_requests"], stats["otlp_retries"], stats["otlp_spans_sent"]) == (3, 2, 6)


def test_retry_after_in_seconds_is_waited(receiver: HttpReceiver, make: Make) -> None:
    receiver.respond(1, 503, {"Retry-After": "1"})
    started = time.monotonic()
    assert make(receiver.url).export(tenant_spans(("acme",))) is SUCCESS
    assert 1.0 <= time.monotonic() - started < 1.0 + MARGIN_S
    assert len(receiver.attempts) == 2


def test_without_retry_after_the_backoff_is_about_a_second(
    receiver: HttpReceiver, make: Make
) -> None:
    receiver.respond(1, 503)
    started = time.monotonic()
    assert make(receiver.url, timeout=5).export(tenant_spans(("acme",))) is SUCCESS
    assert 0.75 <= time.monotonic() - started < 1.2 + MARGIN_S


def test_retry_after_as_a_date() -> None:
    assert retry_after(formatdate(time.time() + 30, usegmt=True)) == pytest.approx(30, abs=2)
    assert retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert retry_after("2.5") == 2.5
    assert retry_after("-3") == 0.0
    assert retry_after("soon") is None
    assert retry_after("inf") is None
    assert retry_after(None) is None


def test_a_retry_after_past_the_timeout_fails_at_once(receiver: HttpReceiver, make: Make) -> None:
    receiver.respond(1, 429, {"Retry-After": "60"})
    started = time.monotonic()
    assert make(receiver.url, timeout=2).export(tenant_spans(("acme",))) is FAILURE
    assert time.monotonic() - started < MARGIN_S
    assert len(receiver.attempts) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
def test_other_answers_fail_fast(
    status: int, receiver: HttpReceiver, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tenantrace.export")
    body = RpcStatus(code=3, message="bad request body").SerializeToString()
    receiver.respond(3, status, {"Content-Type": "application/x-protobuf"}, body)
    exporter = make(receiver.url)
    for _ in range(3):
        assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert len(receiver.attempts) == 3  # one request per export: no retry
    assert receiver.requests == []
    assert exporter.last_error is not None
    assert exporter.last_error.startswith(f"HTTP {status}")
    assert exporter.last_error.endswith(": bad request body")
    logged = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(logged) == 1  # once a minute, not per export


def test_a_redirect_is_not_followed_and_fails(receiver: HttpReceiver, make: Make) -> None:
    receiver.respond(1, 307, {"Location": "http://elsewhere.invalid/v1/traces"})
    exporter = make(receiver.url)
    assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert "not followed" in (exporter.last_error or "")
    assert len(receiver.attempts) == 1


def test_partial_success_is_counted_and_logged_once(
    receiver: HttpReceiver, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tenantrace.export")
    receiver.partial = (3, "3 spans too old")
    exporter = make(receiver.url)
    spans = tenant_spans()
    assert exporter.export(spans) is SUCCESS
    assert exporter.export(spans) is SUCCESS
    assert len(receiver.attempts) == 2
    stats = exporter.stats()
    assert (stats["otlp_rejected_spans"], stats["otlp_spans_sent"]) == (6, 12)
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 1
    assert "3 spans too old" in logged[0]


def test_a_json_success_body_is_not_read_as_protobuf(receiver: HttpReceiver, make: Make) -> None:
    receiver.respond(1, 200, {"Content-Type": "application/json"}, b'{"partialSuccess": {}}')
    exporter = make(receiver.url)
    assert exporter.export(tenant_spans(("acme",))) is SUCCESS
    assert exporter.stats()["otlp_rejected_spans"] == 0


# ------------------------------------------------------------- dead ends


def test_a_refused_endpoint_fails_within_the_timeout(make: Make) -> None:
    exporter = make(f"http://127.0.0.1:{_closed_port()}/v1/traces", timeout=2)
    started = time.monotonic()
    assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert time.monotonic() - started < 2 + MARGIN_S
    assert "ConnectionError" in (exporter.last_error or "")


def test_a_black_holed_endpoint_fails_within_the_timeout(make: Make) -> None:
    with socket.create_server(("127.0.0.1", 0)) as hole:  # accepts, never answers
        exporter = make(f"http://127.0.0.1:{hole.getsockname()[1]}/v1/traces", timeout=1)
        started = time.monotonic()
        assert exporter.export(tenant_spans(("acme",))) is FAILURE
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1 + MARGIN_S
    assert "Timeout" in (exporter.last_error or "")


# --------------------------------------------------------- life and errors


def test_shutdown_ends_a_retry_wait_and_later_exports_fail(
    receiver: HttpReceiver, make: Make
) -> None:
    receiver.respond(1, 503, {"Retry-After": "20"})
    exporter = make(receiver.url, timeout=30)
    results: list[SpanExportResult] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(tenant_spans())))
    worker.start()
    while not receiver.attempts:
        time.sleep(0.01)
    time.sleep(0.1)  # now waiting out the 20 s
    started = time.monotonic()
    exporter.shutdown()
    worker.join(10)
    assert not worker.is_alive()  # the server asked for 20 s
    assert time.monotonic() - started < 10
    assert results == [FAILURE]
    assert exporter.export(tenant_spans()) is FAILURE
    assert len(receiver.attempts) == 1
    exporter.shutdown()  # idempotent


def test_export_never_raises(receiver: HttpReceiver, make: Make) -> None:
    exporter = make(receiver.url)
    assert exporter.export([object()]) is FAILURE  # type: ignore[list-item]
    assert receiver.attempts == []
    bad_url = make("http://[::1/v1/traces")  # unparseable: fails, does not raise
    assert bad_url.export(tenant_spans(("acme",))) is FAILURE
    assert exporter.stats()["otlp_failed_exports"] == 1


def test_what_our_encoder_refuses_goes_as_the_sdk_encodes_it(
    receiver: HttpReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(spans: object) -> bytes:
        raise ValueError("refused")

    monkeypatch.setattr("tenantrace.export._transport.encode_spans", refuse)
    spans = tenant_spans()
    exporter = make(receiver.url)
    assert exporter.export(spans) is SUCCESS
    assert receiver.requests[0].body == _sdk_bytes(spans)
    assert exporter.stats()["otlp_encoder_fallbacks"] == 1


def test_concurrent_exports(receiver: HttpReceiver, make: Make) -> None:
    exporter = make(receiver.url)
    results: list[SpanExportResult] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(exporter.export(tenant_spans((f"t{i}",))))
        )
        for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [SUCCESS] * 16
    assert len(receiver.requests) == 16
    assert exporter.stats()["otlp_spans_sent"] == 32


def test_encoded_bytes_match_our_encoder(receiver: HttpReceiver, make: Make) -> None:
    spans = tenant_spans()
    assert make(receiver.url).export(spans) is SUCCESS
    assert receiver.requests[0].body == encode_spans(spans)


def test_credentials_in_the_endpoint_stay_out_of_errors_and_logs(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tenantrace.export")
    port = _closed_port()
    exporter = make(f"http://otlp:pa55word@127.0.0.1:{port}/v1/traces?token=t0psecret", timeout=2)
    assert exporter.export(tenant_spans(("acme",))) is FAILURE
    assert exporter.last_error is not None
    for text in (exporter.last_error, caplog.text):
        assert "t0psecret" not in text
        assert "pa55word" not in text
    assert f"http://REDACTED@127.0.0.1:{port}/v1/traces?REDACTED" in caplog.text


def test_proxies_from_the_environment_are_honoured(
    receiver: HttpReceiver, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{receiver.port}")  # the receiver proxies
    spans = tenant_spans(("acme",))
    assert make("http://collector.invalid:4318/v1/traces").export(spans) is SUCCESS
    assert receiver.requests[0].path == "http://collector.invalid:4318/v1/traces"  # via proxy
    assert receiver.requests[0].body == _sdk_bytes(spans)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert make(receiver.url).export(spans) is SUCCESS
    assert receiver.requests[1].path == "/v1/traces"  # direct
