"""Log records to the tenant's project: OTLP logs under the tenant's Resource, scrubbed.

``enable_log_export()`` puts a ``TenantLogHandler`` on the root logger. Each
record it handles is captured on the logging thread (message formatted, extras,
exception, the current span's ids, the tenant of the current work) and queued
to a ``LogPipeline``: the same model as tenantrace's span pipeline, one bounded
queue, one daemon thread, counted. On that thread the record is scrubbed by the
span rules (the body and every string by ``secrets.redact_text``, attribute
keys by ``Scrubber``'s key rules, nested values by ``redacted_repr``), given
its tenant's Resource (the current span's, else the tenant's provider's), and
exported over OTLP/gRPC (``GrpcLogExporter``): one request carries many
tenants' records, each under its own Resource, so each lands in its own project.

The queue is tenant-fair as the span queue is: when full, a new record
displaces the newest record of the tenant holding the most, when that tenant
holds more than the newcomer's own tenant plus one; otherwise it is dropped.
Drops are counted per tenant (bounded). Records logged on the export thread
itself (the exporter's own warnings) are never exported: no feedback loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from tenantrace.export.counters import OTHER_TENANTS, count_per_tenant
from tenantrace.observe._context import get_context, load, span_of

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from tenantrace.instrumentation.manager import TelemetryManager

__all__ = [
    "GrpcLogExporter",
    "LogEntry",
    "LogExporter",
    "LogPipeline",
    "LogPipelineStats",
    "TenantLogHandler",
    "disable_log_export",
    "enable_log_export",
]

_logger = logging.getLogger(__name__)

REDACTED: Final = "[REDACTED]"
SCOPE_NAME: Final = "tenantrace.logs"
EXPORT_METHOD: Final = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
# The attributes every LogRecord has: what is left in a record's __dict__ is its extras.
_RESERVED: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        # tenantrace's correlation fields: the record's own ids and tenant go to
        # the OTLP fields and the Resource, not into attributes.
        "trace_id",
        "span_id",
        "tenant_id",
        "service_name",
        "project_name",
        "otelSpanID",
        "otelTraceID",
        "otelTraceSampled",
        "otelServiceName",
    }
)
# stdlib level -> OTLP SeverityNumber (the logs data model's mapping).
_SEVERITY: Final = ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5), (0, 1))
# Loggers whose records never leave through this handler: the export path's own.
_OWN_LOGGERS: Final = ("tenantrace.observe.log_export", "grpc", "opentelemetry.exporter")


def severity_number(levelno: int) -> int:
    """The OTLP ``SeverityNumber`` of a stdlib level (CRITICAL 21 ... DEBUG 5, below 1)."""
    for threshold, number in _SEVERITY:
        if levelno >= threshold:
            return number
    return 1


@dataclass(slots=True)
class LogEntry:
    """One log record as captured on the logging thread (not yet scrubbed)."""

    time_ns: int
    observed_ns: int
    levelno: int
    level: str
    body: str
    logger: str
    attributes: dict[str, object]
    tenant_id: str | None
    trace_id: int = 0
    span_id: int = 0
    trace_flags: int = 0
    resource: Resource | None = None


class LogExporter(Protocol):
    """Sends ``(resource, scrubbed entry)`` pairs; True when the receiver took them."""

    def export(self, batch: Sequence[tuple[Resource, LogEntry]]) -> bool: ...

    def shutdown(self) -> None: ...


# ------------------------------------------------------------------ OTLP encoding


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


def encode_logs(batch: Sequence[tuple[Resource, LogEntry]]) -> Any:
    """An ``ExportLogsServiceRequest``: one ``ResourceLogs`` per Resource, in order."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

    grouped: dict[int, tuple[Resource, list[LogEntry]]] = {}
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

    def export(self, batch: Sequence[tuple[Resource, LogEntry]]) -> bool:
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


# ---------------------------------------------------------------------- scrubbing


class _LogScrubber:
    """The span scrubber's rules applied to a log record's body and attributes."""

    def __init__(self, scrubber: Any) -> None:
        self._scrubber = scrubber  # None: redact_secrets is off
        secrets = load("secrets")
        self._redact_text: Callable[[str], str] = secrets.redact_text
        self._redact_url: Callable[[str], str] = secrets.redact_url
        self._redacted_repr: Callable[[object], str] = load("scrubbing").redacted_repr

    def body(self, text: str) -> str:
        return text if self._scrubber is None else self._redact_text(text)

    def attributes(self, attributes: Mapping[str, object]) -> dict[str, object]:
        scrubber = self._scrubber
        if scrubber is None:
            return {key: _plain(value) for key, value in attributes.items()}
        kept: dict[str, object] = {}
        for key, value in attributes.items():
            verdict = scrubber.decision(key)
            if verdict == 1 or (verdict == 2 and not _is_number(value)):
                kept[key] = REDACTED
            else:
                kept[key] = self._value(value, url=verdict in (3, 7))
        return kept

    def _value(self, value: object, *, url: bool = False) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._redact_text(self._redact_url(value) if url else value)
        if isinstance(value, bytes | bytearray):
            return self._redact_text(bytes(value).decode("latin-1"))
        if isinstance(value, list | tuple) and all(
            item is None or isinstance(item, str | bool | int | float) for item in value
        ):
            return [self._value(item) for item in value]
        return self._redacted_repr(value)  # mappings, objects: keys judged at every depth


def _plain(value: object) -> object:
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return repr(value)


def _is_number(value: object) -> bool:
    if isinstance(value, int | float):
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value)


# ----------------------------------------------------------------------- pipeline


@dataclass
class LogPipelineStats:
    """Counters of the log pipeline (``LogPipeline.stats``)."""

    records_emitted: int = 0
    exported_records: int = 0
    dropped_records: int = 0
    export_failures: int = 0
    failed_records: int = 0
    # Records the scrubbing raised on: dropped, never sent raw.
    scrub_failures: int = 0
    dropped_by_tenant: dict[str, int] = field(default_factory=dict)

    def count_drop(self, tenant_id: str, count: int = 1) -> None:
        self.dropped_records += count
        count_per_tenant(self.dropped_by_tenant, tenant_id, count)


def _weak_call(method: Callable[[], object]) -> Callable[[], None]:
    ref = weakref.WeakMethod(method)

    def call() -> None:
        target = ref()
        if target is not None:
            target()

    return call


class LogPipeline:
    """One bounded, tenant-fair queue of log records drained by one thread."""

    def __init__(
        self,
        exporter: LogExporter,
        *,
        manager: TelemetryManager | None = None,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay_millis: int = 500,
    ) -> None:
        if max_queue_size <= 0 or not 0 < max_export_batch_size <= max_queue_size:
            raise ValueError("need 0 < max_export_batch_size <= max_queue_size")
        self._exporter = exporter
        self._manager = manager
        self._max_queue = max_queue_size
        self._max_batch = max_export_batch_size
        self._delay_s = schedule_delay_millis / 1000
        self.stats = LogPipelineStats()
        self._scrub: _LogScrubber | None = None
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._flushed = threading.Condition(self._lock)
        self._queues: dict[str, deque[LogEntry]] = {}
        self._size = 0
        self._flush_requested = 0
        self._flush_done = 0
        self._is_shutdown = False
        self._worker = threading.Thread(target=self._run, name="tenantrace-logs", daemon=True)
        self._worker.start()
        atexit.register(_weak_call(self._at_exit))

    @property
    def worker_ident(self) -> int | None:
        return self._worker.ident

    @property
    def queued(self) -> int:
        return self._size

    def _telemetry(self) -> TelemetryManager:
        if self._manager is not None:
            return self._manager
        from tenantrace import get_telemetry_manager

        return get_telemetry_manager()

    # ------------------------------------------------------------------ enqueue

    def submit(self, entry: LogEntry) -> None:
        """Queue one record; never blocks, never raises."""
        tenant = entry.tenant_id or ""
        with self._lock:
            if self._is_shutdown:
                return
            self.stats.records_emitted += 1
            if self._size >= self._max_queue and not self._make_room(tenant):
                return
            queue = self._queues.get(tenant)
            if queue is None:
                queue = self._queues[tenant] = deque()
            queue.append(entry)
            self._size += 1
            if self._size == self._max_batch:
                self._not_empty.notify()

    def _make_room(self, tenant: str) -> bool:
        """Lock held, queue full: displace the largest tenant's newest record, or refuse."""
        own = self._queues.get(tenant)
        own_len = len(own) if own is not None else 0
        victim, longest = max(
            ((name, len(queue)) for name, queue in self._queues.items()), key=lambda item: item[1]
        )
        if longest > own_len + 1:
            self._queues[victim].pop()
            self._size -= 1
            self.stats.count_drop(victim or OTHER_TENANTS)
            return True
        self.stats.count_drop(tenant or OTHER_TENANTS)
        return False

    # ------------------------------------------------------------------- export

    def _take_batch(self) -> list[LogEntry]:
        batch: list[LogEntry] = []
        room = min(self._max_batch, self._size)
        while len(batch) < room:
            share = max(1, (room - len(batch)) // len(self._queues))
            for tenant in list(self._queues):
                queue = self._queues[tenant]
                for _ in range(min(share, len(queue), room - len(batch))):
                    batch.append(queue.popleft())
                if not queue:
                    del self._queues[tenant]
                if len(batch) >= room:
                    break
        self._size -= len(batch)
        return batch

    def _run(self) -> None:
        while True:
            with self._lock:
                if (
                    self._size < self._max_batch
                    and self._flush_requested == self._flush_done
                    and not self._is_shutdown
                ):
                    self._not_empty.wait(self._delay_s)
                target = self._flush_requested
                batch = self._take_batch()
                stopping = self._is_shutdown and not batch
            if batch:
                try:
                    self._export(batch)
                except Exception as exc:  # nothing may kill the export thread
                    _logger.warning("tenantrace: log export step raised %r", exc)
            with self._lock:
                if not self._size:
                    self._flush_done = max(self._flush_done, target)
                    self._flushed.notify_all()
            if stopping:
                return

    def _scrubber(self) -> _LogScrubber:
        if self._scrub is None:
            from_config = load("scrubbing").Scrubber.from_config
            self._scrub = _LogScrubber(from_config(self._telemetry().config))
        return self._scrub

    def _export(self, batch: list[LogEntry]) -> None:
        manager = self._telemetry()
        scrub = self._scrubber()
        default = manager.config.default_tenant_id
        prepared: list[tuple[Resource, LogEntry]] = []
        owners: list[str] = []
        for entry in batch:
            tenant = entry.tenant_id or default
            try:
                entry.body = scrub.body(entry.body)
                entry.attributes = scrub.attributes(entry.attributes)
                resource = entry.resource
                if resource is None:
                    provider = manager.provider_for(tenant)
                    if provider is None:  # telemetry off: nowhere to send it
                        raise RuntimeError("telemetry is disabled")
                    resource = provider.resource
            except Exception as exc:
                with self._lock:
                    self.stats.scrub_failures += 1
                    self.stats.count_drop(tenant)
                _logger.debug("tenantrace: log record dropped (%r)", exc)
                continue
            prepared.append((resource, entry))
            owners.append(tenant)
        if not prepared:
            return
        try:
            ok = self._exporter.export(prepared)
        except Exception as exc:
            _logger.warning("tenantrace: log exporter raised %r", exc)
            ok = False
        with self._lock:
            if ok:
                self.stats.exported_records += len(prepared)
            else:
                self.stats.export_failures += 1
                self.stats.failed_records += len(prepared)
                for tenant in owners:
                    self.stats.count_drop(tenant)

    # ---------------------------------------------------------------- lifecycle

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until what is queued now was exported or counted; False on timeout."""
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        with self._lock:
            if self._is_shutdown:
                return True
            self._flush_requested += 1
            target = self._flush_requested
            self._not_empty.notify()
            while self._flush_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker.is_alive():
                    return False
                self._flushed.wait(remaining)
        return True

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        if self._is_shutdown:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        flushed = self.force_flush(timeout_millis)
        with self._lock:
            self._is_shutdown = True
            self._not_empty.notify_all()
        if self._worker is not threading.current_thread():
            self._worker.join(max(0.0, deadline - time.monotonic()))
        try:
            self._exporter.shutdown()
        except Exception as exc:
            _logger.warning("tenantrace: log exporter shutdown raised %r", exc)
        return flushed

    def _at_exit(self) -> None:
        self.shutdown(timeout_millis=2000)


# ------------------------------------------------------------------------ handler


class TenantLogHandler(logging.Handler):
    """A ``logging.Handler`` that sends records to their tenant's project (see the module).

    ``emit`` runs on the logging thread and only captures and queues; the
    record's message is formatted there (its arguments may change later).
    """

    def __init__(self, pipeline: LogPipeline, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.pipeline = pipeline

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if threading.get_ident() == self.pipeline.worker_ident or record.name.startswith(
                _OWN_LOGGERS
            ):
                return
            self.pipeline.submit(self._entry(record))
        except Exception:
            self.handleError(record)

    def _entry(self, record: logging.LogRecord) -> LogEntry:
        values = record.__dict__
        body = record.getMessage()
        attributes: dict[str, object] = {
            key: value for key, value in values.items() if key not in _RESERVED
        }
        attributes["code.function"] = record.funcName
        attributes["code.lineno"] = record.lineno
        attributes["code.filepath"] = record.pathname
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, tb = record.exc_info
            attributes["exception.type"] = kind.__qualname__
            attributes["exception.message"] = str(error)
            attributes["exception.stacktrace"] = "".join(
                traceback.format_exception(kind, error, tb)
            )
        ctx = get_context()
        from tenantrace import current_tenant

        tenant = current_tenant(ctx) if ctx else None  # type: ignore[arg-type]
        entry = LogEntry(
            time_ns=int(record.created * 1e9),
            observed_ns=time.time_ns(),
            levelno=record.levelno,
            level=record.levelname,
            body=body,
            logger=record.name,
            attributes=attributes,
            tenant_id=tenant,
        )
        span = span_of(ctx) if ctx else None
        if span is not None:
            span_context = span.get_span_context()  # type: ignore[attr-defined]
            if span_context.is_valid:
                entry.trace_id = span_context.trace_id
                entry.span_id = span_context.span_id
                entry.trace_flags = int(span_context.trace_flags)
                resource = getattr(span, "resource", None)
                if getattr(resource, "tenant_id", None) == tenant:
                    entry.resource = resource
        return entry


def enable_log_export(
    manager: TelemetryManager | None = None,
    *,
    exporter: LogExporter | None = None,
    endpoint: str | None = None,
    level: int = logging.INFO,
    logger: logging.Logger | None = None,
    max_queue_size: int = 2048,
) -> TenantLogHandler:
    """Export log records to their tenant's project: a ``TenantLogHandler`` on ``logger``
    (default: the root logger) over a new ``LogPipeline``.

    The exporter defaults to OTLP/gRPC at the manager's ``otlp_endpoint`` (or
    ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``, or ``endpoint``), with its TLS and
    headers. Remove with ``disable_log_export(handler)``.
    """
    if exporter is None:
        config = (manager or _global_manager()).config
        target = (
            endpoint or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") or config.otlp_endpoint
        )
        exporter = GrpcLogExporter(
            target,
            insecure=None if "://" in target else not config.otlp_use_tls,
            headers=config.otlp_headers,
        )
    pipeline = LogPipeline(exporter, manager=manager, max_queue_size=max_queue_size)
    handler = TenantLogHandler(pipeline, level)
    (logger or logging.getLogger()).addHandler(handler)
    return handler


def disable_log_export(handler: TenantLogHandler, logger: logging.Logger | None = None) -> bool:
    """Remove ``handler`` and flush and stop its pipeline; True if all was delivered."""
    (logger or logging.getLogger()).removeHandler(handler)
    return handler.pipeline.shutdown(timeout_millis=5000)


def _global_manager() -> TelemetryManager:
    from tenantrace import get_telemetry_manager

    return get_telemetry_manager()
