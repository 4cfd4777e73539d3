"""Small OTLP endpoints on loopback that misbehave on purpose.

``OtlpHttpCollector`` and ``OtlpGrpcCollector`` are ``otlp_receivers``'s real
OTLP receivers (they decode the protobuf the exporters send) whose behaviour a
test switches: ``ok``, ``unavailable`` (HTTP 503 / gRPC UNAVAILABLE) or ``slow``
(hold every request until ``release`` is set, at most 30 s, so a test never
hangs on it). Both can be stopped and started again on the same port, like a
collector that is killed and restarted. ``BlackHole`` accepts
TCP connections and never answers; ``closed_port()`` gives a port nobody
listens on (connection refused).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otlp_receivers import GrpcFailure, GrpcReceiver, HttpReceiver, decode_attributes, spans_of
from tenantrace import TelemetryManager

Mode = Literal["ok", "unavailable", "slow"]
# The ``otlp_manager`` fixture: (endpoint, protocol, timeout_ms=, delay_ms=, ...) -> manager.
ManagerFactory = Callable[..., TelemetryManager]


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


def decode_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(
            name=span.name,
            tenant=resource.get("tenant.id"),
            project=resource.get("openinference.project.name"),
            instance_id=resource.get("service.instance.id"),
            attributes=decode_attributes(span.attributes),
            events=len(span.events),
            dropped_attributes=span.dropped_attributes_count,
            dropped_events=span.dropped_events_count,
        )
        for resource, span in spans_of(request)
    ]


class _Collector:
    """What both collectors add to their receiver: a mode, decoded spans, request sizes.

    ``mode`` is what the receiver does with the next requests: ``ok`` answers
    success, ``unavailable`` fails each one, ``slow`` holds each one until
    ``release`` is set (or ``hold_s``). Attempts are counted (an int, for both
    protocols).
    """

    _unavailable: Any  # what the protocol's receiver fails a request with

    def _init_collector(self) -> None:
        self.release = threading.Event()
        self._mode: Mode = "ok"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        with self._cond:
            self._mode = mode
            self.hold = self.release if mode == "slow" else None
            self.failing = self._unavailable if mode == "unavailable" else None

    @property
    def request_sizes(self) -> list[int]:
        return [len(body) for body in self.bodies]  # raw: what went over the wire

    def spans(self) -> list[ReceivedSpan]:
        return [span for request in self.received() for span in decode_spans(request)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans arrived (or the timeout); return them."""
        self.wait_for_spans(count, timeout)
        return self.spans()

    def stop(self) -> None:
        self.release.set()
        super().stop()  # the receiver's


class OtlpHttpCollector(_Collector, HttpReceiver):
    """An OTLP/HTTP (protobuf) receiver at ``http://127.0.0.1:<port>/v1/traces``."""

    _unavailable = (503, {}, b"")

    def __init__(self, port: int = 0) -> None:
        self._init_collector()
        super().__init__(port, keep_alive=False)

    @property  # an int here, where the HTTP receiver lists them
    def attempts(self) -> int:
        return len(self._attempts)


class OtlpGrpcCollector(_Collector, GrpcReceiver):
    """An OTLP/gRPC receiver at ``127.0.0.1:<port>`` with gRPC's default 4 MiB message limit."""

    _unavailable = GrpcFailure(grpc.StatusCode.UNAVAILABLE, "collector overloaded")

    def __init__(self, port: int = 0) -> None:
        self._init_collector()
        super().__init__(port, max_workers=4)

    @property
    def endpoint(self) -> str:
        return self.url


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
