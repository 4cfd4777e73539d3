"""The one span exporter the shared pipeline writes to, built from the config.

- ``build_exporter``: the exporter for the config (tenantrace's own OTLP
  transports by default, the SDK's on request, console, memory, none); an OTLP
  exporter is rebuilt in a forked child (``PerProcessExporter``).
- What an exporter must respect (sizes, repair) lives in ``tenantrace.export``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import IO, Final, TypeVar
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantrace.export.otel_logs import rate_limit_otel_logs
from tenantrace.instrumentation.config import TelemetryConfig

__all__ = [
    "SYNC_EXPORT_TIMEOUT_MILLIS",
    "CompactConsoleSpanExporter",
    "NullSpanExporter",
    "PerProcessExporter",
    "build_exporter",
    "otlp_http_url",
    "rate_limit_otel_logs",
]

_T = TypeVar("_T")


class NullSpanExporter(SpanExporter):
    """Accepts every span and sends it nowhere (``OTEL_TRACES_EXPORTER=none``)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class CompactConsoleSpanExporter(SpanExporter):
    """One line per span: project, tenant, name, duration, status, ids."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        import sys

        out = self._out or sys.stdout
        for span in spans:
            out.write(format_span_line(span) + "\n")
        out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def format_span_line(span: ReadableSpan) -> str:
    resource = span.resource.attributes
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    ctx = span.get_span_context()
    trace_id = f"{ctx.trace_id:032x}" if ctx is not None else "-"
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "root"
    project = resource.get("openinference.project.name", "?")
    return (
        f"[{project}] tenant={resource.get('tenant.id', '?')} "
        f"{span.name} {duration_ms:.2f}ms {span.status.status_code.name} "
        f"trace={trace_id} parent={parent}"
    )


def otlp_http_url(endpoint: str, use_tls: bool) -> str:
    """The OTLP/HTTP traces URL for ``endpoint``: scheme added, ``/v1/traces`` appended.

    As the OTLP exporter specification says for ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    a base URL without a path gets the signal path appended.
    """
    url = endpoint if "://" in endpoint else f"{'https' if use_tls else 'http'}://{endpoint}"
    if urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + "/v1/traces"
    return url


class PerProcessExporter(SpanExporter):
    """An exporter that is rebuilt, once, in a process forked after it was made.

    A gRPC channel or an HTTP connection pool made before ``fork()`` shares its
    sockets with the parent; gRPC documents such a channel as unusable in the
    child. A forked worker (gunicorn, uvicorn ``--workers``) therefore gets its
    own exporter, built from the same settings on its first export. The
    parent's exporter is left alone in the child: closing it could write on the
    parent's connection.
    """

    def __init__(self, factory: Callable[[], SpanExporter]) -> None:
        self._factory = factory
        self._exporter = factory()  # fails here, at start-up, if it cannot be built
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def wrapped(self) -> SpanExporter:
        return self._exporter

    def _current(self) -> SpanExporter:
        if self._pid == os.getpid():
            return self._exporter
        with self._lock:
            if self._pid != os.getpid():
                self._exporter = self._factory()
                self._pid = os.getpid()
        return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._current().export(spans)

    def shutdown(self) -> None:
        if self._pid == os.getpid():  # a child that never exported has nothing of its own
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._pid != os.getpid():
            return True
        return self._exporter.force_flush(timeout_millis)


def build_exporter(config: TelemetryConfig) -> SpanExporter:
    """The exporter for ``config``; raises if it cannot be built (the caller degrades)."""
    kind = config.effective_exporter
    if kind == "none":
        return NullSpanExporter()
    if kind == "memory":
        return InMemorySpanExporter()
    if kind == "console":
        return CompactConsoleSpanExporter()
    rate_limit_otel_logs()
    return PerProcessExporter(lambda: _build_otlp(config))


# In sync mode every span's export runs on the caller's thread, when its span
# ends: the OTLP exporter's timeout (which bounds its retries too) is capped to
# this, so a dead collector costs a span at most about this long (and the
# pipeline's circuit breaker then skips exports for a growing interval).
SYNC_EXPORT_TIMEOUT_MILLIS: Final = 1000


def _build_otlp(config: TelemetryConfig) -> SpanExporter:
    timeout_millis = config.batch_config.export_timeout_millis
    if config.batch_config.use_sync_export:
        timeout_millis = min(timeout_millis, SYNC_EXPORT_TIMEOUT_MILLIS)
    timeout_s = timeout_millis / 1000
    headers = dict(config.otlp_headers) or None
    # otlp_encoder="tenantrace": tenantrace.export's exporters, same options (docs/export.md).
    if config.otlp_protocol == "http/protobuf":
        if config.otlp_encoder == "tenantrace":
            from tenantrace.export.http import HttpSpanExporter

            http = HttpSpanExporter(
                endpoint=otlp_http_url(config.otlp_endpoint, config.otlp_use_tls),
                headers=headers,
                timeout=timeout_s,
            )
            http.name_tenants = config.tenant_id_on_every_span
            return http
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(
            endpoint=otlp_http_url(config.otlp_endpoint, config.otlp_use_tls),
            headers=headers,
            timeout=timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    endpoint = config.otlp_endpoint
    # The gRPC exporter decides TLS from the scheme when one is given.
    insecure = not config.otlp_use_tls
    if "://" in endpoint:
        insecure = urlsplit(endpoint).scheme != "https"
    if config.otlp_encoder == "tenantrace":
        from tenantrace.export.grpc import GrpcSpanExporter

        grpc = GrpcSpanExporter(endpoint, insecure=insecure, headers=headers, timeout=timeout_s)
        grpc.name_tenants = config.tenant_id_on_every_span
        return grpc
    return GrpcExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout_s)
