"""Real OTLP trace receivers on loopback, shared by the export and the reliability tests.

- ``GrpcReceiver``: opentelemetry-proto's TraceService on an in-process grpcio
  server. Its request deserializer keeps each request's bytes before parsing
  them, so a test sees what went over the wire, not what a decoder chose to show.
- ``HttpReceiver``: a ``ThreadingHTTPServer`` at ``/v1/traces`` (HTTP/1.1
  keep-alive unless told otherwise) that decompresses gzip and deflate bodies
  and keeps each request's path, headers, raw and decompressed body.

Both listen from construction (``stop()`` then ``start()`` serves again on the
same port, like a collector killed and restarted), count every attempt, and
store a request only when they answer success, so a retried request that
finally succeeds is stored once. A test can make them fail the next requests
(``fail`` / ``respond``) or every request (``failing``), answer a partial
success (``partial``), hold requests until an event is set (``hold``, at most
``hold_s``), and serve TLS (``tls=(certificate PEM, key PEM)``).

``spans_of``, ``decode_attributes`` and ``any_value`` decode what they received.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

HOLD_LIMIT_S = 30.0  # a held request is released after this, whatever the test does
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


# ------------------------------------------------------------------- decoding


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as Python: arrays as lists, key-value lists as dicts."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP attributes (of a Resource, span, event or link) as a dict."""
    return {kv.key: any_value(kv.value) for kv in pairs}


def spans_of(request: ExportTraceServiceRequest) -> Iterator[tuple[dict[str, Any], PbSpan]]:
    """Every span of ``request``, with its Resource's attributes decoded."""
    for group in request.resource_spans:
        resource = decode_attributes(group.resource.attributes)
        for scope_spans in group.scope_spans:
            for span in scope_spans.spans:
                yield resource, span


# ------------------------------------------------------------------ the base


class _Receiver:
    """What both protocols share: the answer knobs, waiting for spans, the answer."""

    def __init__(self, port: int, tls: tuple[bytes, bytes] | None) -> None:
        self.port = port
        self.tls = tls
        self.partial: tuple[int, str] | None = None  # (rejected spans, message) on success
        self.hold: threading.Event | None = None  # requests wait until it is set...
        self.hold_s = HOLD_LIMIT_S  # ...or this long, at most HOLD_LIMIT_S
        self._cond = threading.Condition()
        self._running = False

    def received(self) -> list[ExportTraceServiceRequest]:
        """The requests answered with success, parsed."""
        raise NotImplementedError

    def span_count(self) -> int:
        with self._cond:
            return sum(
                len(scope.spans)
                for request in self.received()
                for resource in request.resource_spans
                for scope in resource.scope_spans
            )

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> int:
        """Wait until ``count`` spans arrived (or the timeout); return how many did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.span_count() < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self.span_count()

    def start(self) -> Self:
        """Serve (again, on the same port after ``stop()``); returns the receiver."""
        if not self._running:
            self._serve()
            self._running = True
        return self

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._running:
            self._running = False
            self._shut_down()

    def _serve(self) -> None:
        raise NotImplementedError

    def _shut_down(self) -> None:
        raise NotImplementedError

    def _wait_if_held(self, hold: threading.Event | None) -> None:
        if hold is not None:
            hold.wait(min(self.hold_s, HOLD_LIMIT_S))

    def _success(self) -> ExportTraceServiceResponse:
        response = ExportTraceServiceResponse()
        if self.partial is not None:
            response.partial_success.rejected_spans = self.partial[0]
            response.partial_success.error_message = self.partial[1]
        return response


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


class GrpcReceiver(_Receiver):
    """An in-process OTLP/gRPC receiver at ``127.0.0.1:<port>`` (see the module), with
    gRPC's default 4 MiB message limit."""

    def __init__(
        self, port: int = 0, *, tls: tuple[bytes, bytes] | None = None, max_workers: int = 8
    ) -> None:
        super().__init__(port, tls)
        self.requests: list[ExportTraceServiceRequest] = []  # answered with success
        self.bodies: list[bytes] = []  # their bytes, as they arrived
        self.metadata: list[dict[str, str]] = []  # of every request
        self.failures: deque[GrpcFailure] = deque()  # the next requests fail with these
        self.failing: GrpcFailure | None = None  # then every request fails with this
        self._attempts = 0
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self.start()

    @property
    def attempts(self) -> int:
        """Every request received, answered with success or not."""
        return self._attempts

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, count: int, code: grpc.StatusCode, **kwargs: Any) -> None:
        """Fail the next ``count`` requests with ``code``."""
        self.failures.extend(GrpcFailure(code, **kwargs) for _ in range(count))

    def received(self) -> list[ExportTraceServiceRequest]:
        with self._cond:
            return list(self.requests)

    def clear(self) -> None:
        with self._cond:
            self._attempts = 0
            self.requests.clear()
            self.bodies.clear()
            self.metadata.clear()

    def _export(
        self, received: tuple[bytes, ExportTraceServiceRequest], context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        body, request = received
        with self._cond:
            self._attempts += 1
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            failure = self.failures.popleft() if self.failures else self.failing
            hold = self.hold
        self._wait_if_held(hold)
        if failure is not None:
            trailer = _retry_trailer(failure)
            if trailer:
                context.set_trailing_metadata(trailer)
            context.abort(failure.code, failure.details)
        with self._cond:
            self.requests.append(request)
            self.bodies.append(body)
            self._cond.notify_all()
        return self._success()

    def _serve(self) -> None:
        def deserialize(data: bytes) -> tuple[bytes, ExportTraceServiceRequest]:
            return bytes(data), ExportTraceServiceRequest.FromString(data)

        # add_TraceServiceServicer_to_server, with a deserializer that keeps the bytes.
        handler = grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export,
                    request_deserializer=deserialize,
                    response_serializer=ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers))
        server.add_generic_rpc_handlers((handler,))
        if self.tls is None:
            self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        else:
            credentials = grpc.ssl_server_credentials([(self.tls[1], self.tls[0])])
            self.port = server.add_secure_port(f"127.0.0.1:{self.port}", credentials)
        server.start()
        self._server = server

    def _shut_down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait(5)


# ------------------------------------------------------------------------ HTTP


@dataclass
class HttpRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: bytes  # decompressed
    client_port: int  # the same for requests on one kept-alive connection


Scripted = tuple[int, dict[str, str], bytes]  # status, headers, body


class HttpReceiver(_Receiver):
    """An in-process OTLP/HTTP receiver at ``http(s)://127.0.0.1:<port>/v1/traces`` (see
    the module). TLS needs ``tls_dir``, where the certificate and key are written."""

    def __init__(
        self,
        port: int = 0,
        *,
        tls: tuple[bytes, bytes] | None = None,
        tls_dir: Path | None = None,
        keep_alive: bool = True,
    ) -> None:
        super().__init__(port, tls)
        self.tls_dir = tls_dir
        self.requests: list[HttpRequest] = []  # the ones answered 200
        self.responses: deque[Scripted] = deque()  # the next requests get these answers
        self.failing: Scripted | None = None  # then every request gets this one
        self._attempts: list[HttpRequest] = []
        self._keep_alive = keep_alive
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def attempts(self) -> list[HttpRequest]:
        """Every request received, answered with success or not."""
        return self._attempts

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/traces"

    @property
    def endpoint(self) -> str:
        return self.url

    @property
    def bodies(self) -> list[bytes]:
        """The raw bodies of the requests answered 200, as they went over the wire."""
        with self._cond:
            return [request.raw for request in self.requests]

    def respond(
        self, count: int, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer the next ``count`` requests with ``status``."""
        self.responses.extend((status, headers or {}, body) for _ in range(count))

    def received(self) -> list[ExportTraceServiceRequest]:
        with self._cond:
            return [ExportTraceServiceRequest.FromString(r.body) for r in self.requests]

    def clear(self) -> None:
        with self._cond:
            self._attempts.clear()
            self.requests.clear()

    def _answer(self, request: HttpRequest) -> Scripted:
        with self._cond:
            self._attempts.append(request)
            scripted = self.responses.popleft() if self.responses else self.failing
            hold = self.hold
        self._wait_if_held(hold)
        if scripted is not None:
            return scripted
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        kind = {"Content-Type": "application/x-protobuf"}
        return 200, kind, self._success().SerializeToString()

    def _serve(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps the connection: the exporter's pool reuses it.
            protocol_version = "HTTP/1.1" if receiver._keep_alive else "HTTP/1.0"

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
                status, answer_headers, payload = receiver._answer(request)
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        if self.tls is not None:
            assert self.tls_dir is not None
            cert, key = self.tls_dir / "server.pem", self.tls_dir / "server.key"
            cert.write_bytes(self.tls[0])
            key.write_bytes(self.tls[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _shut_down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
