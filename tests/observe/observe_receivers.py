"""Real OTLP/gRPC receivers on loopback: opentelemetry-proto's LogsService and
MetricsService served by grpcio in the test process. Each keeps every request
it answered, and its raw bytes (for leak checks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import (
    LogsServiceServicer,
    add_LogsServiceServicer_to_server,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    MetricsServiceServicer,
    add_MetricsServiceServicer_to_server,
)


class _Receiver:
    def __init__(self, register: Callable[[Any, grpc.Server], None]) -> None:
        self.requests: list[Any] = []
        self.raw: list[bytes] = []
        self._cond = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        register(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _keep(self, request: Any) -> None:
        with self._cond:
            self.requests.append(request)
            self.raw.append(request.SerializeToString())
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)


class LogsReceiver(_Receiver, LogsServiceServicer):
    def __init__(self) -> None:
        super().__init__(add_LogsServiceServicer_to_server)

    def Export(
        self, request: ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> ExportLogsServiceResponse:
        self._keep(request)
        return ExportLogsServiceResponse()

    def record_count(self) -> int:
        with self._cond:
            return sum(
                len(scope.log_records)
                for request in self.requests
                for resource in request.resource_logs
                for scope in resource.scope_logs
            )


class MetricsReceiver(_Receiver, MetricsServiceServicer):
    def __init__(self) -> None:
        super().__init__(add_MetricsServiceServicer_to_server)

    def Export(
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> ExportMetricsServiceResponse:
        self._keep(request)
        return ExportMetricsServiceResponse()


def attributes(key_values: Any) -> dict[str, Any]:
    """OTLP KeyValues as a dict of plain values."""
    found: dict[str, Any] = {}
    for item in key_values:
        value = item.value
        kind = value.WhichOneof("value")
        found[item.key] = getattr(value, kind) if kind else None
    return found
