"""Real OTLP receivers on loopback for the transport tests, and the spans they are sent.

- ``GrpcReceiver``: a grpcio server running opentelemetry-proto's
  ``TraceServiceServicer``; it can fail the next requests with a status code
  (with ``RetryInfo`` in either trailer form), answer a partial success, hold
  requests, and serve TLS.
- ``HttpReceiver``: a ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive) that
  answers scripted responses first (503 + Retry-After...), then 200 with an
  ``ExportTraceServiceResponse``; it keeps each request's path, headers, raw and
  decompressed body; TLS too.
- ``TcpRelay``: a byte-counting TCP relay, to see what goes over the wire.
- ``tenant_spans()``: ended SDK spans of several tenants (Resources), scopes,
  events, links, statuses.
- ``self_signed()``: a certificate and key for 127.0.0.1 (cryptography).

Every receiver records a request's spans only when it answers success, so a
retried request that finally succeeds is stored once.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

HOLD_LIMIT_S = 30.0  # a held request is released after this, whatever the test does


def tenant_spans(tenants: tuple[str, ...] = ("acme", "globex", "initech")) -> list[ReadableSpan]:
    """Two spans per tenant, each tenant its own Resource; scope attributes, an event,
    a link, an error status and non-ASCII text."""
    spans: list[ReadableSpan] = []
    for tenant in tenants:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource({"service.name": "svc", "tenant.id": tenant}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tenantrace.tests", "1.0", attributes={"scope.k": 1})
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as parent:
            parent.set_attribute("http.method", "GET")
            parent.set_attribute("tags", ("a", "b"))
            parent.add_event("received", {"bytes": 512, "ratio": 0.5})
            with tracer.start_as_current_span(
                "query", links=[Link(parent.get_span_context(), {"why": "batch"})]
            ) as child:
                child.set_attribute("db.statement", "SELECT 1 -- żółw")
                child.set_status(Status(StatusCode.ERROR, "timeout"))
        spans += exporter.get_finished_spans()
        provider.shutdown()
    return spans


def compressible_spans(count: int = 50) -> list[ReadableSpan]:
    """Spans with long repetitive attributes: gzip shrinks their request many times."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "svc", "tenant.id": "zip"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tenantrace.tests")
    for index in range(count):
        with tracer.start_as_current_span(f"op-{index % 3}") as span:
            span.set_attribute("payload", "the same words again and again " * 40)
    provider.shutdown()
    return list(exporter.get_finished_spans())


# ------------------------------------------------------------------------ gRPC


@dataclass
class GrpcFailure:
    code: grpc.StatusCode
    details: str = "failing on purpose"
    retry_delay_s: float | None = None
    trailer: str = "status"  # "status": grpc-status-details-bin; "retryinfo": the SDK's key


def _retry_trailer(failure: GrpcFailure) -> tuple[tuple[str, bytes], ...]:
    from google.protobuf.duration_pb2 import Duration
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status as RpcStatus

    if failure.retry_delay_s is None:
        return ()
    seconds = int(failure.retry_delay_s)
    nanos = round((failure.retry_delay_s - seconds) * 1e9)
    info = RetryInfo(retry_delay=Duration(seconds=seconds, nanos=nanos))
    if failure.trailer == "retryinfo":
        return (("google.rpc.retryinfo-bin", info.SerializeToString()),)
    status = RpcStatus(code=failure.code.value[0], message=failure.details)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcReceiver(TraceServiceServicer):
    """An in-process OTLP/gRPC receiver (see the module)."""

    def __init__(self, *, tls: tuple[bytes, bytes] | None = None, port: int = 0) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.attempts = 0
        self.failures: deque[GrpcFailure] = deque()
        self.partial: tuple[int, str] | None = None
        self.hold: threading.Event | None = None
        self._cond = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        add_TraceServiceServicer_to_server(self, self._server)
        if tls is None:
            self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.port = self._server.add_secure_port(f"127.0.0.1:{port}", credentials)
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fail(self, count: int, code: grpc.StatusCode, **kwargs: Any) -> None:
        """Fail the next ``count`` requests with ``code``."""
        self.failures.extend(GrpcFailure(code, **kwargs) for _ in range(count))

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        with self._cond:
            self.attempts += 1
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            failure = self.failures.popleft() if self.failures else None
            hold = self.hold
        if hold is not None:
            hold.wait(HOLD_LIMIT_S)
        if failure is not None:
            trailer = _retry_trailer(failure)
            if trailer:
                context.set_trailing_metadata(trailer)
            context.abort(failure.code, failure.details)
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        response = ExportTraceServiceResponse()
        if self.partial is not None:
            response.partial_success.rejected_spans = self.partial[0]
            response.partial_success.error_message = self.partial[1]
        return response

    def span_count(self) -> int:
        with self._cond:
            return sum(
                len(scope.spans)
                for request in self.requests
                for resource in request.resource_spans
                for scope in resource.scope_spans
            )

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.span_count() < count and time.monotonic() < deadline:
                self._cond.wait(0.05)
        return self.span_count()

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.stop(grace=None).wait(5)


# ------------------------------------------------------------------------ HTTP


@dataclass
class HttpRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: bytes  # decompressed
    client_port: int  # the same for requests on one kept-alive connection


@dataclass
class HttpReceiver:
    """An in-process OTLP/HTTP receiver (see the module)."""

    tls: tuple[bytes, bytes] | None = None
    tls_dir: Path | None = None
    responses: deque[tuple[int, dict[str, str], bytes]] = field(default_factory=deque)
    partial: tuple[int, str] | None = None
    requests: list[HttpRequest] = field(default_factory=list)  # the ones answered 200
    attempts: list[HttpRequest] = field(default_factory=list)  # every request

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the exporter's pool reuses it

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                body = raw
                if encoding == "gzip":
                    body = gzip.decompress(raw)
                elif encoding == "deflate":
                    body = zlib.decompress(raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = HttpRequest(self.path, headers, raw, body, self.client_address[1])
                with receiver._lock:
                    receiver.attempts.append(request)
                    scripted = receiver.responses.popleft() if receiver.responses else None
                    if scripted is None:
                        receiver.requests.append(request)
                if scripted is None:
                    answer = ExportTraceServiceResponse()
                    if receiver.partial is not None:
                        answer.partial_success.rejected_spans = receiver.partial[0]
                        answer.partial_success.error_message = receiver.partial[1]
                    kind = {"Content-Type": "application/x-protobuf"}
                    scripted = (200, kind, answer.SerializeToString())
                status, headers, payload = scripted
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            assert self.tls_dir is not None
            cert, key = self.tls_dir / "server.pem", self.tls_dir / "server.key"
            cert.write_bytes(self.tls[0])
            key.write_bytes(self.tls[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/traces"

    def respond(
        self, count: int, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer the next ``count`` requests with ``status``."""
        self.responses.extend((status, headers or {}, body) for _ in range(count))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# ---------------------------------------------------------------------- relay


class TcpRelay:
    """Relays TCP connections to ``127.0.0.1:target``, counting the bytes each way."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.upstream_bytes = 0  # client -> server
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream:
                    with self._lock:
                        self.upstream_bytes += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        for sock in self._sockets:
            sock.close()


# ------------------------------------------------------------------------ TLS


def self_signed() -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for 127.0.0.1 / localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
