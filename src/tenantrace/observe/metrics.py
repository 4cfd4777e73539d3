"""Per-tenant RED metrics derived from ended spans, on the export path.

``RedMetrics`` keeps three OpenTelemetry instruments (metrics SDK):

- ``tenantrace.requests`` (counter; Prometheus ``tenantrace_requests_total``),
- ``tenantrace.errors`` (counter of spans whose status is ERROR;
  ``tenantrace_errors_total``),
- ``tenantrace.request.duration`` (histogram, seconds;
  ``tenantrace_request_duration_seconds_bucket`` / ``_sum`` / ``_count``),

each by ``tenant_id``, ``operation`` (the span name) and ``span_kind``
(``server``, ``client``, ``internal``, ``producer``, ``consumer``). They are
exported over OTLP/gRPC (``otlp_endpoint``: a periodic reader) and served to
Prometheus (``prometheus_port``: an HTTP endpoint of its own registry).

Where they are computed: ``RedMetrics.wrap(exporter)`` returns a span
exporter that records every span it is given, once, then passes the batch
on. Given to ``TelemetryManager(config, exporter=...)`` it runs on the one
export thread, so the code that ends a span pays nothing. (A span the pipeline
drops before export, on a full queue, is not counted: ``dropped_spans`` counts
it. In sync mode the export, and so the count, runs on the span's thread.)

Cardinality is bounded: the first ``max_tenants`` tenants seen keep their id,
later ones are counted as ``other``; the same for operations
(``max_operations``, across tenants). The series of one instrument are at most
``(max_tenants + 1) x (max_operations + 1) x 5``; the SDK's own limit per
instrument is set above that so it never clips first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = [
    "DURATION_BUCKETS_S",
    "OTHER",
    "CardinalityLimiter",
    "RedMetrics",
    "RedMetricsExporter",
]

OTHER: Final = "other"
REQUESTS: Final = "tenantrace.requests"
ERRORS: Final = "tenantrace.errors"
DURATION: Final = "tenantrace.request.duration"
DURATION_BUCKETS_S: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_KINDS: Final = {kind: kind.name.lower() for kind in SpanKind}
# Spans already counted, by (trace id, span id): the pipeline may hand the same
# span to the exporter again (a request narrowed down after a content failure).
_MAX_REMEMBERED: Final = 65_536


class CardinalityLimiter:
    """The first ``limit`` distinct values pass; later ones become ``other``."""

    def __init__(self, limit: int, other: str = OTHER) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self.other = other
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.folded = 0  # values seen past the limit (counted once each time they arrive)

    def __call__(self, value: str) -> str:
        return self.fold(value, 1)

    def fold(self, value: str, count: int = 1) -> str:
        """``value`` or ``other``; ``count`` arrivals of it (spans) are counted as folded."""
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
            self.folded += count
            return self.other

    def __len__(self) -> int:
        return len(self._seen)


def _tenant_of(span: ReadableSpan) -> str:
    resource = span.resource
    tenant = getattr(resource, "tenant_id", None)
    if isinstance(tenant, str):
        return tenant
    value = resource.attributes.get("tenant.id") if resource is not None else None
    return value if isinstance(value, str) else "unknown"


class RedMetrics:
    """Request, error and duration metrics per tenant, operation and span kind (see module)."""

    def __init__(
        self,
        *,
        max_tenants: int = 100,
        max_operations: int = 50,
        otlp_endpoint: str | None = None,
        otlp_insecure: bool = True,
        export_interval_millis: int = 10_000,
        prometheus_port: int | None = None,
        prometheus_host: str = "127.0.0.1",
        span_kinds: Collection[SpanKind] | None = None,
        buckets_s: Sequence[float] = DURATION_BUCKETS_S,
        meter_provider: Any | None = None,
        resource_attributes: dict[str, str] | None = None,
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
        from opentelemetry.sdk.resources import Resource

        self.tenants = CardinalityLimiter(max_tenants)
        self.operations = CardinalityLimiter(max_operations)
        self.max_series = (max_tenants + 1) * (max_operations + 1) * len(_KINDS)
        self._kinds = None if span_kinds is None else frozenset(span_kinds)
        self._readers: list[Any] = []
        self._http: Any = None
        self.prometheus_port: int | None = None
        self.registry: Any = None
        self._remembered: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._lock = threading.Lock()
        # One attributes dict per series (labels already folded: bounded by max_series);
        # the SDK copies what it keeps, so the same dict serves every measurement.
        self._attributes: dict[tuple[str, str, str], dict[str, str]] = {}
        self.spans_recorded = 0
        if prometheus_port is not None:
            self._readers.append(self._prometheus_reader(prometheus_port, prometheus_host))
        if otlp_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            self._readers.append(
                self._with_limits(
                    PeriodicExportingMetricReader,
                    OTLPMetricExporter(endpoint=otlp_endpoint, insecure=otlp_insecure),
                    export_interval_millis=export_interval_millis,
                )
            )
        self._owns_provider = meter_provider is None
        if meter_provider is None:
            resource = Resource.create(
                {"service.name": "tenantrace-red-metrics", **(resource_attributes or {})}
            )
            meter_provider = MeterProvider(
                resource=resource,
                metric_readers=self._readers,
                views=[
                    View(
                        instrument_name=DURATION,
                        aggregation=ExplicitBucketHistogramAggregation(tuple(buckets_s)),
                    )
                ],
            )
        self.meter_provider = meter_provider
        meter = meter_provider.get_meter("tenantrace.observe.metrics")
        self._requests = meter.create_counter(
            REQUESTS, unit="{request}", description="Spans ended, by tenant, operation and kind"
        )
        self._errors = meter.create_counter(
            ERRORS, unit="{error}", description="Spans ended with status ERROR"
        )
        self._duration = meter.create_histogram(
            DURATION, unit="s", description="Span duration, seconds"
        )

    # ------------------------------------------------------------------ readers

    def _with_limits(self, reader_class: Any, *args: Any, **kwargs: Any) -> Any:
        """A reader whose per-instrument limit sits above ``max_series`` (SDKs that take one)."""
        from opentelemetry.sdk.metrics import Counter, Histogram

        limits = {Counter: self.max_series + 1, Histogram: self.max_series + 1}
        try:
            return reader_class(*args, cardinality_limits=limits, **kwargs)
        except TypeError:  # an SDK without per-reader limits: its default (2000) applies
            return reader_class(*args, **kwargs)

    def _prometheus_reader(self, port: int, host: str) -> Any:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry()
        reader = self._with_limits(
            PrometheusMetricReader, disable_target_info=True, registry=self.registry
        )
        served = start_http_server(port, addr=host, registry=self.registry)
        if isinstance(served, tuple):  # prometheus_client >= 0.20: (server, thread)
            self._http = served[0]
            self.prometheus_port = int(served[0].server_port)
        else:  # pragma: no cover - older prometheus_client returns nothing
            self.prometheus_port = port
        return reader

    # ---------------------------------------------------------------- recording

    def record(self, span: ReadableSpan) -> None:
        """Count one ended span (call on the export thread); never raises."""
        self._record_batch((span,))

    def record_once(self, spans: Sequence[ReadableSpan]) -> None:
        """``record`` each span not recorded before (by trace and span id; bounded memory).

        The batch is checked against the spans already counted under one lock,
        then aggregated by series (see ``_record_batch``); never raises.
        """
        try:
            fresh = self._fresh(spans)
        except Exception:  # metrics must never cost a span its export
            return
        if fresh:
            self._record_batch(fresh)

    def _fresh(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """The spans of ``spans`` not counted before, now remembered (one lock per batch)."""
        remembered = self._remembered
        fresh: list[ReadableSpan] = []
        append = fresh.append
        with self._lock:
            for span in spans:
                try:
                    context = span.context
                    key = (context.trace_id, context.span_id)
                except Exception:  # no span context: the object itself identifies it
                    key = (0, id(span))
                if key in remembered:
                    continue
                remembered[key] = None
                append(span)
                if len(remembered) > _MAX_REMEMBERED:
                    remembered.popitem(last=False)
        return fresh

    def _record_batch(self, spans: Sequence[ReadableSpan]) -> None:
        """Count ``spans`` (already deduplicated): grouped by series first, then one
        ``add`` per series and counter, one histogram ``record`` per span; never raises.
        """
        raw = self._group(spans)
        if not raw:
            return
        try:
            series = self._fold(raw)
            attributes_of = self._attributes
            requests, errors, record = self._requests.add, self._errors.add, self._duration.record
            for labels, (count, failures, durations) in series.items():
                attributes = attributes_of.get(labels)
                if attributes is None:
                    attributes = attributes_of[labels] = {
                        "tenant_id": labels[0],
                        "operation": labels[1],
                        "span_kind": labels[2],
                    }
                requests(count, attributes)
                if failures:
                    errors(failures, attributes)
                for seconds in durations:  # the SDK's histogram takes one value per call
                    record(seconds, attributes)
                self.spans_recorded += count
        except Exception:  # metrics must never cost a span its export
            return

    def _group(self, spans: Sequence[ReadableSpan]) -> dict[tuple[str, str, SpanKind], list[Any]]:
        """(tenant, operation, kind) as the spans carry them -> [spans, errors, durations s]."""
        kinds = self._kinds
        error = StatusCode.ERROR
        raw: dict[tuple[str, str, SpanKind], list[Any]] = {}
        for span in spans:
            try:
                kind = span.kind
                if kinds is not None and kind not in kinds:
                    continue
                key = (_tenant_of(span), span.name, kind)
                failed = span.status.status_code is error
                start, end = span.start_time, span.end_time
                group = raw.get(key)
                if group is None:
                    group = raw[key] = [0, 0, []]
                group[0] += 1
                if failed:
                    group[1] += 1
                if start is not None and end is not None and end >= start:
                    group[2].append((end - start) / 1e9)
            except Exception:  # a span of an odd shape is not counted; the others are
                continue
        return raw

    def _fold(
        self, raw: dict[tuple[str, str, SpanKind], list[Any]]
    ) -> dict[tuple[str, str, str], list[Any]]:
        """The groups by their exported labels (several may fold into one).

        Each distinct tenant and operation goes through its ``CardinalityLimiter``
        once per group, in the order of first appearance (the same values keep
        their ids as when counted span by span); ``folded`` still counts spans.
        """
        series: dict[tuple[str, str, str], list[Any]] = {}
        tenants, operations = self.tenants, self.operations
        for (tenant, operation, kind), group in raw.items():
            count = group[0]
            labels = (
                tenants.fold(tenant, count),
                operations.fold(operation, count),
                _KINDS.get(kind, "internal"),
            )
            merged = series.get(labels)
            if merged is None:
                series[labels] = group
            else:
                merged[0] += count
                merged[1] += group[1]
                merged[2].extend(group[2])
        return series

    def wrap(self, exporter: SpanExporter) -> RedMetricsExporter:
        """A span exporter that records RED metrics, then exports through ``exporter``."""
        return RedMetricsExporter(self, exporter)

    # ---------------------------------------------------------------- lifecycle

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        return bool(self.meter_provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        if self._owns_provider:
            self.meter_provider.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class RedMetricsExporter(SpanExporter):
    """Records RED metrics for each span it exports (once per span), then delegates."""

    def __init__(self, metrics: RedMetrics, exporter: SpanExporter) -> None:
        self.metrics = metrics
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.metrics.record_once(spans)
        return self.exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.exporter.shutdown()
