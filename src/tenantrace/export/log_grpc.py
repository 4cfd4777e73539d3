"""OTLP log records over gRPC: ``ExportLogsServiceRequest`` encoding and the LogsService exporter.

``encode_logs`` groups ``(Resource, record)`` pairs into one ``ResourceLogs``
per Resource, so one request carries many tenants' records, each under its own
Resource; ``GrpcLogExporter`` sends it (``LogsService/Export``), retrying
UNAVAILABLE-like codes within its timeout. The records are
``tenantrace.observe.LogEntry`` (anything with its fields), already scrubbed:
this module neither scrubs nor queues (``tenantrace.observe.log_export`` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = [
    "EXPORT_METHOD",
    "SCOPE_NAME",
    "GrpcLogExporter",
    "LogRecordData",
    "encode_logs",
    "severity_number",
]

_logger = logging.getLogger(__name__)

SCOPE_NAME: Final = "tenantrace.logs"
EXPORT_METHOD: Final = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
# stdlib level -> OTLP SeverityNumber (the logs data model's mapping).
_SEVERITY: Final = ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5), (0, 1))


def severity_number(levelno: int) -> int:
    """The OTLP ``SeverityNumber`` of a stdlib level (CRITICAL 21 ... DEBUG 5, below 1)."""
    for threshold, number in _SEVERITY:
        if levelno >= threshold:
            return number
    return 1


class LogRecordData(Protocol):
    """What the encoder reads of a record (``tenantrace.observe.LogEntry`` has it)."""

    time_ns: int
    observed_ns: int
    levelno: int
    level: str
    body: str
    attributes: dict[str, object]
    trace_id: int
    span_id: int
    trace_flags: int


def _any_value(value: object) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[_any_value(item) for item in value]))
    return AnyValue(string_value=value if isinstance(value, str) else str(value))


def _key_values(attributes: Mapping[str, object]) -> list[Any]:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=str(key), value=_any_value(value)) for key, value in attributes.items()]


def encode_logs(batch: Sequence[tuple[Resource, LogRecordData]]) -> Any:
    """An ``ExportLogsServiceRequest``: one ``ResourceLogs`` per Resource, in order."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

    grouped: dict[int, tuple[Resource, list[LogRecordData]]] = {}
    for resource, entry in batch:
        grouped.setdefault(id(resource), (resource, []))[1].append(entry)
    request = ExportLogsServiceRequest()
    for resource, entries in grouped.values():
        records = [
            LogRecord(
                time_unix_nano=entry.time_ns,
                observed_time_unix_nano=entry.observed_ns,
                severity_number=severity_number(entry.levelno),  # type: ignore[arg-type]
                severity_text=entry.level,
                body=AnyValue(string_value=entry.body),
                attributes=_key_values(entry.attributes),
                trace_id=entry.trace_id.to_bytes(16, "big") if entry.trace_id else b"",
                span_id=entry.span_id.to_bytes(8, "big") if entry.span_id else b"",
                flags=entry.trace_flags,
            )
            for entry in entries
        ]
        request.resource_logs.append(
            ResourceLogs(
                resource=PbResource(attributes=_key_values(resource.attributes)),
                scope_logs=[
                    ScopeLogs(scope=InstrumentationScope(name=SCOPE_NAME), log_records=records)
                ],
                schema_url=resource.schema_url or "",
            )
        )
    return request


class GrpcLogExporter:
    """OTLP/gRPC logs (``LogsService/Export``), retrying UNAVAILABLE-like codes within
    the timeout. ``endpoint`` is ``host:port`` or a URL (``https://`` means TLS)."""

    _RETRYABLE: Final = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")

    def __init__(
        self,
        endpoint: str = "localhost:4317",
        *,
        insecure: bool | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        import grpc  # type: ignore[import-untyped]

        target = endpoint
        secure = False
        if "://" in endpoint:
            scheme, _, rest = endpoint.partition("://")
            target = rest.split("/", 1)[0]
            secure = scheme == "https"
        if insecure is not None:
            secure = not insecure
        self.endpoint = target
        self._timeout = timeout
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        if secure:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._call = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=lambda request: request.SerializeToString(),
            response_deserializer=lambda data: data,
        )
        self._grpc = grpc

    def export(self, batch: Sequence[tuple[Resource, LogRecordData]]) -> bool:
        request = encode_logs(batch)
        deadline = time.monotonic() + self._timeout
        delay = 0.1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._call(request, timeout=remaining, metadata=self._metadata)
                return True
            except self._grpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else None
                if code is None or code.name not in self._RETRYABLE:
                    _logger.warning("tenantrace: log export refused (%s)", code)
                    return False
                if time.monotonic() + delay >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def shutdown(self) -> None:
        self._channel.close()
