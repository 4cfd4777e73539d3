"""Small OTLP endpoints on loopback that misbehave on purpose.

``OtlpHttpCollector`` and ``OtlpGrpcCollector`` are real OTLP receivers (they
decode the protobuf the exporters send) whose behaviour a test switches:
``ok``, ``unavailable`` (HTTP 503 / gRPC UNAVAILABLE) or ``slow`` (hold every
request until ``release`` is set). Both can be stopped and started again on the
same port, like a collector that is killed and restarted. ``BlackHole`` accepts
TCP connections and never answers; ``closed_port()`` gives a port nobody
listens on (connection refused).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tenantrace import TelemetryManager

Mode = Literal["ok", "unavailable", "slow"]
# The ``otlp_manager`` fixture: (endpoint, protocol, timeout_ms=, delay_ms=, ...) -> manager.
ManagerFactory = Callable[..., TelemetryManager]

# A slow collector holds a request at most this long, so a test can never hang on it.
MAX_HOLD_S = 30.0


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector received it, with its Resource's routing attributes."""

    name: str
    tenant: str | None
    project: str | None
    instance_id: str | None
    attributes: dict[str, Any]
    events: int
    dropped_attributes: int
    dropped_events: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    received: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {kv.key: _value(kv.value) for kv in span.attributes}
                received.append(
                    ReceivedSpan(
                        name=span.name,
                        tenant=resource.get("tenant.id"),
                        project=resource.get("openinference.project.name"),
                        instance_id=resource.get("service.instance.id"),
                        attributes=attributes,
                        events=len(span.events),
                        dropped_attributes=span.dropped_attributes_count,
                        dropped_events=span.dropped_events_count,
                    )
                )
    return received


class _Collector:
    """What both protocols share: mode, received spans, attempts, waiting."""

    def __init__(self) -> None:
        self.mode: Mode = "ok"
        self.release = threading.Event()
        self.hold_s = MAX_HOLD_S  # how long ``slow`` holds a request (unless released)
        self.attempts = 0
        self.request_sizes: list[int] = []
        self.bodies: list[bytes] = []  # raw requests: what actually went over the wire
        self._spans: list[ReceivedSpan] = []
        self._cond = threading.Condition()
        self.port = 0

    def _receive(self, body: bytes) -> Mode:
        """Count the attempt; store the spans when answering ok. Returns the mode used."""
        with self._cond:
            self.attempts += 1
            mode = self.mode
        if mode == "slow":
            self.release.wait(min(self.hold_s, MAX_HOLD_S))
        if mode == "unavailable":
            return mode
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self._cond:
            self.request_sizes.append(len(body))
            self.bodies.append(body)
            self._spans.extend(decode_spans(request))
            self._cond.notify_all()
        return mode

    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def clear(self) -> None:
        with self._cond:
            self._spans.clear()
            self.request_sizes.clear()
            self.bodies.clear()
            self.attempts = 0

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans arrived (or the timeout); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._spans) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._spans)


class OtlpHttpCollector(_Collector):
    """An OTLP/HTTP (protobuf) receiver at ``http://127.0.0.1:<port>/v1/traces``."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> OtlpHttpCollector:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                mode = collector._receive(body)
                if mode == "unavailable":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self.release.set()
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: OtlpGrpcCollector) -> None:
        self._collector = collector

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        mode = self._collector._receive(request.SerializeToString())
        if mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector overloaded")
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpGrpcCollector(_Collector):
    """An OTLP/gRPC receiver at ``127.0.0.1:<port>`` with gRPC's default 4 MiB message limit."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.port = port
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpGrpcCollector:
        server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self.release.set()
            server.stop(grace=None).wait(5)


class BlackHole:
    """Accepts TCP connections and never answers a byte (a black-holed collector)."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)  # held open, never read, never answered

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        for conn in self.connections:
            conn.close()
        self._listener.close()


def closed_port() -> int:
    """A loopback port with no listener: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
