"""Log records to the tenant's project: OTLP logs under the tenant's Resource, scrubbed.

``enable_log_export()`` puts a ``TenantLogHandler`` on the root logger. Each
record it handles is captured on the logging thread (message formatted, extras,
exception, the current span's ids, the tenant of the current work) and queued
to a ``LogPipeline``: the span pipeline's model and code (``tenantrace.export``'s
``FairQueue`` and ``BatchWorker``), one bounded queue, one daemon thread,
counted. On that thread the record is scrubbed by the span rules (the body and
every string by ``secrets.redact_text``, attribute keys by ``Scrubber``'s key
rules, nested values by ``redacted_repr``), given its tenant's Resource (the
current span's, else the tenant's provider's), and exported over OTLP/gRPC
(``GrpcLogExporter``, in ``tenantrace.export.log_grpc``): one request carries
many tenants' records, each under its own Resource, so each lands in its own
project.

The queue is tenant-fair as the span queue is: when full, a new record
displaces the newest record of the tenant holding the most, when that tenant
holds more than the newcomer's own tenant plus one; otherwise it is dropped.
Drops are counted per tenant (bounded). Records logged on the export thread
itself (the exporter's own warnings) are never exported: no feedback loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from tenantrace.export._fair_queue import FairQueue
from tenantrace.export._worker import BatchWorker
from tenantrace.export.config import BatchExportConfig
from tenantrace.export.counters import OTHER_TENANTS, count_per_tenant
from tenantrace.export.log_grpc import (
    EXPORT_METHOD,
    SCOPE_NAME,
    GrpcLogExporter,
    encode_logs,
    severity_number,
)
from tenantrace.export.log_scrubbing import LogScrubber
from tenantrace.observe._context import get_context, load, span_of

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from tenantrace.instrumentation.manager import TelemetryManager

__all__ = [
    "EXPORT_METHOD",
    "SCOPE_NAME",
    "GrpcLogExporter",
    "LogEntry",
    "LogExporter",
    "LogPipeline",
    "LogPipelineStats",
    "TenantLogHandler",
    "disable_log_export",
    "enable_log_export",
    "encode_logs",
    "severity_number",
]

_logger = logging.getLogger(__name__)

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
# Loggers whose records never leave through this handler: the export path's own.
_OWN_LOGGERS: Final = (
    "tenantrace.observe.log_export",
    "tenantrace.export.log_grpc",
    "grpc",
    "opentelemetry.exporter",
)


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


# ----------------------------------------------------------------------- pipeline

# The most an interpreter exit waits to flush the records still queued.
EXIT_FLUSH_MILLIS: Final = 2000


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


class _Warnings:
    """The pipeline's warnings, each time, on this module's logger (in _OWN_LOGGERS)."""

    def warning(self, kind: str, message: str, *args: object) -> None:
        _logger.warning(message, *args)


class LogPipeline(BatchWorker[LogEntry]):
    """One bounded, tenant-fair queue of log records drained by one thread.

    The queue, the thread, flush, shutdown, the flush at exit and the fresh
    start after fork are the span pipeline's (``BatchWorker``); records are
    queued under their tenant (``""`` for none) and never block the caller.
    ``force_flush`` is True once what was queued has been exported or counted.
    """

    _WHAT = "log export"
    _THREAD_NAME = "tenantrace-logs"
    _exporter: LogExporter

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
        self._manager = manager
        self._scrub: LogScrubber | None = None
        config = BatchExportConfig(
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            schedule_delay_millis=max(0, schedule_delay_millis),
            drop_on_queue_full=True,
        )
        super().__init__(exporter, config, _Warnings(), exit_millis=EXIT_FLUSH_MILLIS)

    def _reset(self) -> None:
        super()._reset()
        self._stats = LogPipelineStats()

    @property
    def stats(self) -> LogPipelineStats:
        """The counters; ``records_emitted`` is the queue's count of records offered."""
        stats = self._stats
        stats.records_emitted = self._offered
        return stats

    @property
    def worker_ident(self) -> int | None:
        worker = self._worker
        return worker.ident if worker is not None else None

    def _telemetry(self) -> TelemetryManager:
        if self._manager is not None:
            return self._manager
        from tenantrace import get_telemetry_manager

        return get_telemetry_manager()

    # ------------------------------------------------------------------ enqueue

    def submit(self, entry: LogEntry, tenant_id: str | None = None) -> None:
        """Queue one record (under ``tenant_id``, default its own); never blocks or raises."""
        if tenant_id is None:
            tenant_id = entry.tenant_id or ""
        FairQueue.submit(self, entry, tenant_id)  # not super(): this is every record's path

    def _count_drop(self, tenant_id: str) -> None:
        self._stats.count_drop(tenant_id or OTHER_TENANTS)

    # ------------------------------------------------------------------- export

    def _scrubber(self) -> LogScrubber:
        if self._scrub is None:
            from_config = load("scrubbing").Scrubber.from_config
            self._scrub = LogScrubber(from_config(self._telemetry().config))
        return self._scrub

    def _export_batch(self, batch: list[LogEntry], owners: list[str]) -> bool | None:
        """Scrub each record and give it its tenant's Resource, then export them in
        one request; a record that cannot be is dropped alone (counted)."""
        manager = self._telemetry()
        scrub = self._scrubber()
        default = manager.config.default_tenant_id
        prepared: list[tuple[Resource, LogEntry]] = []
        tenants: list[str] = []
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
                    self._stats.scrub_failures += 1
                    self._stats.count_drop(tenant)
                _logger.debug("tenantrace: log record dropped (%r)", exc)
                continue
            prepared.append((resource, entry))
            tenants.append(tenant)
        if not prepared:
            return None
        self._export_started = time.monotonic()
        try:
            ok = self._exporter.export(prepared)
        except Exception as exc:
            _logger.warning("tenantrace: log exporter raised %r", exc)
            ok = False
        finally:
            self._export_started = None
        with self._lock:
            self._export_failing = not ok
            if ok:
                self._stats.exported_records += len(prepared)
            else:
                self._stats.export_failures += 1
                self._stats.failed_records += len(prepared)
                for tenant in tenants:
                    self._stats.count_drop(tenant)
        return ok


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
