"""The RED metrics through the SDK's own instruments: the path kept when the
caller passes a ``meter_provider`` (readers of a provider already made cannot
be given our data points; see ``_red_producer``), or when the SDK's reader has
no collect callback to wrap. One counter ``add`` per series and batch, one
histogram ``record`` per span (about 19 us each on the export thread)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tenantrace.observe._red_aggregate import CardinalityLimiter, kind_name, tenant_of
from tenantrace.observe._red_producer import DURATION, ERRORS, REQUESTS, SCOPE

__all__ = ["SdkRecorder"]


class SdkRecorder:
    """Counts batches of spans into the SDK instruments of ``meter_provider``."""

    def __init__(
        self,
        meter_provider: Any,
        tenants: CardinalityLimiter,
        operations: CardinalityLimiter,
        kinds: frozenset[SpanKind] | None,
    ) -> None:
        self.tenants = tenants
        self.operations = operations
        self._kinds = kinds
        # One attributes dict per series (labels already folded: bounded by max_series);
        # the SDK copies what it keeps, so the same dict serves every measurement.
        self._attributes: dict[tuple[str, str, str], dict[str, str]] = {}
        self.spans_recorded = 0
        meter = meter_provider.get_meter(SCOPE)
        (requests, request_unit, request_text) = REQUESTS
        (errors, error_unit, error_text) = ERRORS
        (duration, duration_unit, duration_text) = DURATION
        self.requests = meter.create_counter(requests, unit=request_unit, description=request_text)
        self.errors = meter.create_counter(errors, unit=error_unit, description=error_text)
        self.duration = meter.create_histogram(
            duration, unit=duration_unit, description=duration_text
        )

    def record(self, spans: Sequence[ReadableSpan]) -> None:
        """Count ``spans`` (already deduplicated): grouped by series first, then one
        ``add`` per series and counter, one histogram ``record`` per span; never raises.
        """
        raw = self._group(spans)
        if not raw:
            return
        try:
            series = self._fold(raw)
            attributes_of = self._attributes
            requests, errors, record = self.requests.add, self.errors.add, self.duration.record
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
                key = (tenant_of(span), span.name, kind)
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
                kind_name(kind.value),
            )
            merged = series.get(labels)
            if merged is None:
                series[labels] = group
            else:
                merged[0] += count
                merged[1] += group[1]
                merged[2].extend(group[2])
        return series
