"""Per-tenant RED metrics derived from ended spans, on the export path.

``RedMetrics`` exports three metrics:

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
exporter that counts every span it is given, once, then passes the batch
on. Given to ``TelemetryManager(config, exporter=...)`` it runs on the one
export thread, so the code that ends a span pays nothing. (A span the pipeline
drops before export, on a full queue, is not counted: ``dropped_spans`` counts
it. In sync mode the export, and so the count, runs on the span's thread.)

How: the counts, sums and bucket counts are kept per series by tenantrace
(``_red_aggregate``: per batch only C-level work per span) and handed to the
readers as ready data points (``_red_producer``), the same points the SDK's
instruments would make. With a ``meter_provider`` of the caller's, whose
readers cannot be given points, the SDK's instruments are used (``_red_sdk``).

Cardinality is bounded: the first ``max_tenants`` tenants seen keep their id,
later ones are counted as ``other``; the same for operations
(``max_operations``, across tenants). The series of one metric are at most
``(max_tenants + 1) x (max_operations + 1) x 5``.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from tenantrace.observe._red_aggregate import (
    DURATION_BUCKETS_S,
    OTHER,
    CardinalityLimiter,
    SeriesAggregator,
)
from tenantrace.observe._red_producer import DURATION as _DURATION
from tenantrace.observe._red_producer import ERRORS as _ERRORS
from tenantrace.observe._red_producer import REQUESTS as _REQUESTS
from tenantrace.observe._red_producer import RedProducer
from tenantrace.observe._red_sdk import SdkRecorder

__all__ = [
    "DURATION_BUCKETS_S",
    "OTHER",
    "CardinalityLimiter",
    "RedMetrics",
    "RedMetricsExporter",
]

REQUESTS: Final = _REQUESTS[0]
ERRORS: Final = _ERRORS[0]
DURATION: Final = _DURATION[0]
_KIND_COUNT: Final = len(SpanKind)
# Spans already counted by ``record_once``, by (trace id, span id).
_MAX_REMEMBERED: Final = 65_536
# The exporter path marks each span it counted in the span's own ``__dict__``
# (one attribute per RedMetrics): the pipeline re-sends the same span objects
# when it narrows a failed request (export/_delivery.py), so the mark is on
# whatever comes back, costs no lookup table, and lives as long as the span.
_DICT: Final = attrgetter("__dict__")
_MARKS: Final = itertools.count()


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
        self.max_series = (max_tenants + 1) * (max_operations + 1) * _KIND_COUNT
        kinds = None if span_kinds is None else frozenset(span_kinds)
        self._readers: list[Any] = []
        self._http: Any = None
        self.prometheus_port: int | None = None
        self.registry: Any = None
        self._remembered: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._lock = threading.Lock()
        self._mark = f"_tenantrace_red_{next(_MARKS)}"
        self._next_stamp = 0
        self._pulled: Any = None  # the Prometheus reader: scraped, never pushed
        if prometheus_port is not None:
            self._pulled = self._prometheus_reader(prometheus_port, prometheus_host)
            self._readers.append(self._pulled)
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
        self._aggregator = SeriesAggregator(self.tenants, self.operations, buckets_s, kinds)
        attached = False
        if meter_provider is None:
            resource = Resource.create(
                {"service.name": "tenantrace-red-metrics", **(resource_attributes or {})}
            )
            meter_provider = MeterProvider(
                resource=resource,
                metric_readers=self._readers,
                views=[  # for the SDK instruments, when they are used
                    View(
                        instrument_name=DURATION,
                        aggregation=ExplicitBucketHistogramAggregation(tuple(buckets_s)),
                    )
                ],
            )
            producer = RedProducer(self._aggregator, resource, buckets_s)
            attached = all([producer.attach(reader) for reader in self._readers])
        self.meter_provider = meter_provider
        # The SDK instruments: a provider of the caller's, or an SDK whose readers
        # have no collect callback to add our points to.
        self._sdk: SdkRecorder | None = (
            None if attached else SdkRecorder(meter_provider, self.tenants, self.operations, kinds)
        )

    @property
    def spans_recorded(self) -> int:
        """Spans counted (a span of a kind not in ``span_kinds`` is not)."""
        if self._sdk is not None:
            return self._sdk.spans_recorded
        return self._aggregator.spans_recorded

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

    def observe_batch(self, spans: Sequence[ReadableSpan]) -> None:
        """Count ``spans``, each seen once (a manager's ``metrics=`` calls this with every
        batch its pipeline exports, on the export thread); never raises."""
        self._count(spans)

    def record(self, span: ReadableSpan) -> None:
        """Count one ended span (call on the export thread); never raises."""
        self._count((span,))

    def record_once(self, spans: Sequence[ReadableSpan]) -> None:
        """Count each span of ``spans`` not counted by ``record_once`` before (by trace
        and span id, the last 65,536 remembered); never raises."""
        self._count_new(self._fresh, spans)

    def record_exported(self, spans: Sequence[ReadableSpan]) -> None:
        """Count each span of ``spans`` this RedMetrics has not counted here before
        (a mark on the span object: see ``_DICT``); never raises."""
        self._count_new(self._unmarked, spans)

    def _count_new(
        self,
        new: Callable[[Sequence[ReadableSpan]], Sequence[ReadableSpan]],
        spans: Sequence[ReadableSpan],
    ) -> None:
        """Count the spans of ``spans`` that ``new`` says were not counted before."""
        try:
            fresh = new(spans)
        except Exception:  # metrics must never cost a span its export
            return
        if fresh:
            self._count(fresh)

    def _count(self, spans: Sequence[ReadableSpan]) -> None:
        try:
            if self._sdk is not None:
                self._sdk.record(spans)
            else:
                self._aggregator.add(spans)
        except Exception:  # metrics must never cost a span its export
            return

    def _unmarked(self, spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
        """The spans not marked yet, now marked. Each gets its own stamp: a span whose
        mark is not the stamp just offered was counted before (or earlier in ``spans``)."""
        with self._lock:
            first = self._next_stamp
            self._next_stamp += len(spans)
        stamps = range(first, first + len(spans))
        try:
            found = list(map(dict.setdefault, map(_DICT, spans), repeat(self._mark), stamps))
        except Exception:  # a span without a __dict__: span by span
            return [
                span
                for span, stamp in zip(spans, stamps, strict=True)
                if self._mark_one(span, stamp)
            ]
        if found == list(stamps):  # the common case: all new, no Python loop
            return spans
        return [
            span for span, stamp, mark in zip(spans, stamps, found, strict=True) if mark == stamp
        ]

    def _mark_one(self, span: ReadableSpan, stamp: int) -> bool:
        try:
            return bool(span.__dict__.setdefault(self._mark, stamp) == stamp)
        except Exception:  # no __dict__ (or not a span): remembered by ids instead
            return bool(self._fresh((span,)))

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

    def wrap(self, exporter: SpanExporter) -> RedMetricsExporter:
        """A span exporter that records RED metrics, then exports through ``exporter``."""
        return RedMetricsExporter(self, exporter)

    # ---------------------------------------------------------------- lifecycle

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        self._aggregator.flush()
        if not self._owns_provider:
            return bool(self.meter_provider.force_flush(timeout_millis))
        # Only the readers that push: a Prometheus reader "flushed" queues one more
        # collection, and the next scrape serves every queued one, its series repeated.
        pushing = [reader for reader in self._readers if reader is not self._pulled]
        return all([reader.force_flush(timeout_millis) for reader in pushing])

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
        self.metrics.record_exported(spans)
        return self.exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.exporter.shutdown()
