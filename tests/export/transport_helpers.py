"""What the transport tests send and watch (their receivers are ``otlp_receivers``'s).

- ``tenant_spans()``: ended SDK spans of several tenants (Resources), scopes,
  events, links, statuses.
- ``compressible_spans()``: spans whose requests gzip shrinks many times.
- ``TcpRelay``: a byte-counting TCP relay, to see what goes over the wire.
- ``self_signed()``: a certificate and key for 127.0.0.1 (cryptography), for TLS receivers.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import threading

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


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
