"""Ready data points for the metric readers, from ``SeriesAggregator``'s totals.

The OpenTelemetry specification's ``MetricProducer`` (metric data a reader
collects besides the SDK's instruments) is not in the Python SDK installed here
(1.45: no ``metric_producers`` argument; upstream pull request #5419 is open).
So ``RedProducer`` plays that part through the one seam the SDK has between a
``MeterProvider`` and its readers: the reader's collect callback. The provider
sets it; ``attach`` wraps it so that each collection returns the provider's own
metrics plus ours, merged into the provider's ``ResourceMetrics`` (as a
``MetricProducer``'s output would be). The callback is SDK-internal: when it is
not there, ``attach`` says so and ``RedMetrics`` keeps the SDK instruments.

The points are built as the SDK builds them for the same measurements: a
monotonic ``Sum`` per counter, an explicit-bucket ``Histogram``, the reader's
temporality per instrument kind. A delta reader gets the totals since its own
previous collection (series without spans since then are left out, min and max
are the interval's); a cumulative one the totals since each series began.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from tenantrace.observe._red_aggregate import SeriesAggregator, SeriesPoint

__all__ = ["SCOPE", "RedProducer"]

_logger = logging.getLogger(__name__)
SCOPE: Final = "tenantrace.observe.metrics"
REQUESTS: Final = ("tenantrace.requests", "{request}", "Spans ended, by tenant, operation and kind")
ERRORS: Final = ("tenantrace.errors", "{error}", "Spans ended with status ERROR")
DURATION: Final = ("tenantrace.request.duration", "s", "Span duration, seconds")
_CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
_DELTA: Final = AggregationTemporality.DELTA


def _temporalities(reader: Any) -> tuple[AggregationTemporality, AggregationTemporality]:
    """The reader's temporality for counters and for histograms (as the SDK reads it)."""
    from opentelemetry.sdk.metrics._internal.instrument import _Counter, _Histogram

    chosen = reader._instrument_class_temporality
    return chosen[_Counter], chosen[_Histogram]


def _attributes(labels: tuple[str, str, str]) -> dict[str, str]:
    return {"tenant_id": labels[0], "operation": labels[1], "span_kind": labels[2]}


class RedProducer:
    """Builds the three metrics for one reader's collection (see module)."""

    def __init__(
        self, aggregator: SeriesAggregator, resource: Resource, bounds: Sequence[float]
    ) -> None:
        self._aggregator = aggregator
        self._resource = resource
        self._bounds = tuple(bounds)
        self._scope = InstrumentationScope(SCOPE)

    def attach(self, reader: Any) -> bool:
        """Wrap ``reader``'s collect callback (set by its provider); False if impossible."""
        original = getattr(reader, "_collect", None)
        if original is None or not hasattr(reader, "_set_collect_callback"):
            return False
        try:
            counters, histograms = _temporalities(reader)
        except Exception:  # an SDK whose reader keeps its temporality elsewhere
            return False
        delta_key = id(reader) if _DELTA in (counters, histograms) else None
        if delta_key is not None:
            self._aggregator.add_delta_reader(delta_key)

        def collect(
            reader_: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricsData | None:
            data: MetricsData | None = original(reader_, timeout_millis=timeout_millis, **kwargs)
            try:
                ours = self.metrics(delta_key, counters, histograms)
            except Exception:  # the provider's own metrics still go out
                _logger.exception("tenantrace: RED metrics collection failed")
                return data
            return self._merge(data, ours)

        reader._set_collect_callback(collect)
        return True

    def metrics(
        self,
        delta_key: int | None,
        counters: AggregationTemporality,
        histograms: AggregationTemporality,
    ) -> list[Metric]:
        """The metrics for one collection, in the temporalities of the reader asking."""
        cumulative, delta, now = self._aggregator.collect(delta_key)
        count_points = delta if counters is _DELTA else cumulative
        duration_points = delta if histograms is _DELTA else cumulative
        found: list[Metric] = []
        requests = [self._number(point, point.count, now) for point in count_points]
        errors = [self._number(point, point.errors, now) for point in count_points if point.errors]
        durations = [self._histogram(point, now) for point in duration_points if point.durations]
        for (name, unit, description), points in ((REQUESTS, requests), (ERRORS, errors)):
            if points:  # the SDK leaves out an instrument without points
                data = Sum(data_points=points, aggregation_temporality=counters, is_monotonic=True)
                found.append(Metric(name=name, description=description, unit=unit, data=data))
        if durations:
            name, unit, description = DURATION
            histogram = Histogram(data_points=durations, aggregation_temporality=histograms)
            found.append(Metric(name=name, description=description, unit=unit, data=histogram))
        return found

    @staticmethod
    def _number(point: SeriesPoint, value: int, now: int) -> NumberDataPoint:
        return NumberDataPoint(
            attributes=_attributes(point.labels),
            start_time_unix_nano=point.start_ns,
            time_unix_nano=now,
            value=value,
            exemplars=[],
        )

    def _histogram(self, point: SeriesPoint, now: int) -> HistogramDataPoint:
        return HistogramDataPoint(
            attributes=_attributes(point.labels),
            start_time_unix_nano=point.start_ns,
            time_unix_nano=now,
            count=point.durations,
            sum=point.sum_ns / 1e9,
            bucket_counts=tuple(point.buckets),
            explicit_bounds=self._bounds,
            min=point.min_ns / 1e9,
            max=point.max_ns / 1e9,
            exemplars=[],
        )

    def _merge(self, data: MetricsData | None, metrics: list[Metric]) -> MetricsData | None:
        """The provider's collection plus ``metrics`` under its resource, our scope."""
        if not metrics:
            return data
        scope = ScopeMetrics(
            scope=self._scope, metrics=metrics, schema_url=self._scope.schema_url or ""
        )
        resources = list(data.resource_metrics) if data is not None else []
        for index, found in enumerate(resources):
            if found.resource is self._resource:
                resources[index] = ResourceMetrics(
                    resource=found.resource,
                    scope_metrics=[*found.scope_metrics, scope],
                    schema_url=found.schema_url,
                )
                break
        else:
            resources.append(
                ResourceMetrics(
                    resource=self._resource,
                    scope_metrics=[scope],
                    schema_url=self._resource.schema_url,
                )
            )
        return MetricsData(resource_metrics=resources)
