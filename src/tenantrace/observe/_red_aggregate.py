"""The RED metrics' own aggregation: per batch of spans only C-level work, per series
the rest (see ``SeriesAggregator``).

Why not the SDK's instruments: a histogram's ``record()`` takes one value per call
and costs about 19 us per span on the export thread; the rule is that metrics add
at most 10 % to that thread's CPU per span (about 0.5 us).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, eq, sub
from typing import Any, Final

from opentelemetry.trace import SpanKind, StatusCode

__all__ = [
    "DURATION_BUCKETS_S",
    "OTHER",
    "CardinalityLimiter",
    "SeriesAggregator",
    "SeriesPoint",
    "kind_name",
    "tenant_of",
]

OTHER: Final = "other"
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
_KIND_NAMES: Final = {kind.value: kind.name.lower() for kind in SpanKind}
_ERROR: Final = StatusCode.ERROR.value
# What one span is counted by, read without a Python call: the SDK's public span
# properties are Python functions (one frame each); the fields under them are not.
# Enum members by value: a SpanKind's or StatusCode's hash is a Python call too.
_KEY: Final = attrgetter("_resource.tenant_id", "_name", "_kind._value_")
# Most spans share one status object (the unset status constant): the status
# codes are read only when some span carries another.
_STATUS: Final = attrgetter("_status")
_CODE: Final = attrgetter("_status_code._value_")
_END: Final = attrgetter("_end_time")
_START: Final = attrgetter("_start_time")
# Durations wait, grouped by series, until this many are pending: then they are
# aggregated on the export thread (a collection aggregates them before that).
_FOLD_AT: Final = 65_536
_IGNORED: Final = ("", "", -1)  # the raw key of every span of a kind not counted
# Raw keys (tenant and operation before folding) remembered; past it the table
# restarts (a cold path: the folding decisions themselves are kept).
_MAX_SLOTS: Final = 65_536


class CardinalityLimiter:
    """The first ``limit`` distinct values pass; later ones become ``other``."""

    def __init__(self, limit: int, other: str = OTHER) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self.other = other
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.folded = 0  # spans whose value was past the limit

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

    def fold_marked(self, value: str) -> tuple[str, bool]:
        """``value`` or ``other``, and whether it was folded (no span counted yet)."""
        folded = self.fold(value, 0)
        return folded, value not in self._seen

    def count_folded(self, count: int) -> None:
        with self._lock:
            self.folded += count

    def __len__(self) -> int:
        return len(self._seen)


def tenant_of(span: Any) -> str:
    resource = span.resource
    tenant = getattr(resource, "tenant_id", None)
    if isinstance(tenant, str):
        return tenant
    value = resource.attributes.get("tenant.id") if resource is not None else None
    return value if isinstance(value, str) else "unknown"


def kind_name(kind: int) -> str:
    return _KIND_NAMES.get(kind, "internal")


def bounds_ns(buckets_s: Sequence[float]) -> list[int]:
    """For each bound b, the largest integer duration d (ns) with ``d / 1e9 <= b``.

    The SDK compares the float ``seconds`` to each bound; comparing integer
    nanoseconds to these thresholds puts every duration in the same bucket, a
    value exactly on a bound included, without a division per span.
    """
    found: list[int] = []
    for bound in buckets_s:
        if bound < 0:
            found.append(-1)
            continue
        if bound * 1e9 >= 2.0**64:  # above any duration a span can have
            found.append(2**64)
            continue
        guess = int(bound * 1e9)
        while (guess + 1) / 1e9 <= bound:
            guess += 1
        while guess >= 0 and guess / 1e9 > bound:
            guess -= 1
        found.append(guess)
    return found


@dataclass(slots=True)
class SeriesPoint:
    """One series' totals: spans, errors, durations (ns: sums exact, no float drift)."""

    labels: tuple[str, str, str]
    start_ns: int
    count: int = 0
    errors: int = 0
    durations: int = 0  # spans with a duration (the histogram's count)
    sum_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0
    buckets: list[int] = field(default_factory=list)

    def merge(
        self, count: int, errors: int, durations: Sequence[int], cumulative: list[int]
    ) -> None:
        """Add ``count`` spans (``errors`` failed) whose sorted ``durations`` fall in the
        buckets as ``cumulative`` counts them (spans at or below each bound)."""
        self.count += count
        self.errors += errors
        if not durations:
            return
        if self.durations:
            self.min_ns = min(self.min_ns, durations[0])
            self.max_ns = max(self.max_ns, durations[-1])
        else:
            self.min_ns, self.max_ns = durations[0], durations[-1]
            self.buckets = [0] * (len(cumulative) + 1)
        self.durations += len(durations)
        self.sum_ns += sum(durations)
        buckets, below = self.buckets, 0
        for index, at_most in enumerate(cumulative):
            buckets[index] += at_most - below
            below = at_most
        buckets[-1] += len(durations) - below


class _Slot:
    """One raw key (tenant, operation as the span carries them, kind, status code)."""

    __slots__ = ("errors", "folded", "pending", "series")

    def __init__(self, series: SeriesPoint | None, folded: tuple[CardinalityLimiter, ...]) -> None:
        self.pending: list[int | None] = []  # durations (None: a span without one)
        self.errors = 0  # spans with status ERROR among them
        self.series = series  # None: a span kind not counted
        self.folded = folded  # the limiters that folded its tenant / operation


class SeriesAggregator:
    """Spans -> series totals. Per batch: the spans' keys and durations read by C
    (``attrgetter``, ``map``), each duration appended to its raw key's pending list
    (``map(list.append, ...)``). Per series, later (a collection, or ``_FOLD_AT``
    pending durations): one sort, one ``sum``, a ``bisect`` per bucket bound.
    Delta readers each keep the totals since their last collection."""

    def __init__(
        self,
        tenants: CardinalityLimiter,
        operations: CardinalityLimiter,
        buckets_s: Sequence[float],
        span_kinds: Collection[SpanKind] | None,
    ) -> None:
        self.tenants = tenants
        self.operations = operations
        self._bounds = bounds_ns(buckets_s)
        self._kinds = None if span_kinds is None else frozenset(k.value for k in span_kinds)
        self._lock = threading.Lock()
        # Raw key -> its pending durations (what the batch appends to), and its slot.
        self._slots: dict[tuple[str, str, int], list[int | None]] = {}
        self._slot_of: dict[tuple[str, str, int], _Slot] = {}
        self._slot_list: list[_Slot] = []
        self._pending = 0
        self.series: dict[tuple[str, str, str], SeriesPoint] = {}
        # Per delta reader: the totals since its last collection, and that time.
        self._deltas: dict[int, tuple[dict[tuple[str, str, str], SeriesPoint], int]] = {}
        self.spans_recorded = 0

    # ------------------------------------------------------------ per batch

    def add(self, spans: Sequence[Any]) -> None:
        """Count ``spans`` (already deduplicated); a span of an odd shape costs only itself."""
        errors: list[tuple[str, str, int]] | None
        try:
            keys: list[tuple[str, str, int]] = list(map(_KEY, spans))
            durations: list[int | None] = list(map(sub, map(_END, spans), map(_START, spans)))
            if durations and min(durations) < 0:  # type: ignore[type-var,operator]
                raise ValueError("a span ended before it started")
            statuses = list(map(_STATUS, spans))
            errors = None
            if (statuses and statuses.count(statuses[0]) != len(statuses)) or (
                statuses and _CODE(statuses[0]) == _ERROR
            ):
                codes = map(_CODE, statuses)
                errors = list(compress(keys, map(eq, codes, repeat(_ERROR))))
        except Exception:  # not the SDK's span fields, or odd values: span by span
            keys, durations, errors = self._robust(spans)
        with self._lock:
            slots = self._slots
            try:
                targets = list(map(slots.__getitem__, keys))
            except KeyError:  # raw keys not seen before
                new = [key for key in dict.fromkeys(keys) if key not in slots]
                if len(slots) + len(new) > _MAX_SLOTS:
                    # Restarted before the batch's keys are made, never in between (a
                    # key made, then cleared, would cost the batch its count).
                    self._restart()
                    new = list(dict.fromkeys(keys))
                for key in new:
                    self._new_slot(key)
                targets = list(map(slots.__getitem__, keys))
            deque(map(list.append, targets, durations), maxlen=0)
            if errors:
                slot_of = self._slot_of
                for key, count in Counter(errors).items():
                    slot_of[key].errors += count
            self._pending += len(targets)
            self.spans_recorded += len(targets) - self._uncounted(targets)
            if self._pending >= _FOLD_AT:
                self._fold()

    def _uncounted(self, targets: list[list[int | None]]) -> int:
        """Spans of kinds not counted in this batch (only with ``span_kinds``)."""
        if self._kinds is None:
            return 0
        ignored = self._slots.get(_IGNORED)
        # By identity: list.count compares by value, and a counted series' pending
        # durations may equal the ignored slot's.
        return 0 if ignored is None else sum(target is ignored for target in targets)

    def _robust(
        self, spans: Sequence[Any]
    ) -> tuple[list[tuple[str, str, int]], list[int | None], list[tuple[str, str, int]]]:
        keys: list[tuple[str, str, int]] = []
        durations: list[int | None] = []
        errors: list[tuple[str, str, int]] = []
        for span in spans:
            try:
                key = (tenant_of(span), str(span.name), span.kind.value)
                failed = span.status.status_code is StatusCode.ERROR
                start, end = span.start_time, span.end_time
                fine = isinstance(start, int) and isinstance(end, int) and end >= start
            except Exception:  # this span is not counted; the others are
                continue
            keys.append(key)
            durations.append(end - start if fine else None)
            if failed:
                errors.append(key)
        return keys, durations, errors

    def _restart(self) -> None:
        """The raw-key table is full (many raw tenants folded into "other"): aggregate
        what is pending, then start the table over (the folding decisions stay)."""
        self._fold()
        self._slots.clear()
        self._slot_of.clear()
        self._slot_list.clear()

    def _new_slot(self, key: tuple[str, str, int]) -> None:
        tenant, operation, kind = key
        if self._kinds is not None and kind not in self._kinds:
            # Every span of a kind not counted goes to one slot, never aggregated.
            ignored = self._slot_of.get(_IGNORED)
            if ignored is None:
                ignored = self._slot_of[_IGNORED] = _Slot(None, ())
                self._slots[_IGNORED] = ignored.pending
                self._slot_list.append(ignored)
            self._slots[key] = ignored.pending
            self._slot_of[key] = ignored
            return
        tenant, tenant_folded = self.tenants.fold_marked(tenant)
        operation, operation_folded = self.operations.fold_marked(operation)
        labels = (tenant, operation, kind_name(kind))
        folded = ((self.tenants,) if tenant_folded else ()) + (
            (self.operations,) if operation_folded else ()
        )
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = SeriesPoint(labels, time.time_ns())
        slot = self._slot_of[key] = _Slot(series, folded)
        self._slot_list.append(slot)
        self._slots[key] = slot.pending

    # ----------------------------------------------------------- per series

    def _fold(self) -> None:
        """Aggregate the pending durations into the series (lock held)."""
        self._pending = 0
        bounds, deltas = self._bounds, self._deltas
        for slot in self._slot_list:
            pending = slot.pending
            if not pending:
                continue
            count = len(pending)
            series = slot.series
            if series is None:
                pending.clear()
                slot.errors = 0
                continue
            values: list[int] = (
                [d for d in pending if d is not None] if None in pending else pending  # type: ignore[assignment]
            )
            values.sort()
            cumulative = [bisect_right(values, bound) for bound in bounds]
            errors, slot.errors = slot.errors, 0
            series.merge(count, errors, values, cumulative)
            for points, since in deltas.values():
                point = points.get(series.labels)
                if point is None:
                    start = max(series.start_ns, since)
                    point = points[series.labels] = SeriesPoint(series.labels, start)
                point.merge(count, errors, values, cumulative)
            for limiter in slot.folded:  # spans, as the SDK path counts them
                limiter.count_folded(count)
            pending.clear()

    def flush(self) -> None:
        with self._lock:
            self._fold()

    def add_delta_reader(self, key: int) -> None:
        with self._lock:
            self._deltas.setdefault(key, ({}, 0))

    def collect(self, delta_key: int | None) -> tuple[list[SeriesPoint], list[SeriesPoint], int]:
        """(cumulative points, delta points since the reader's last collection, now ns)."""
        with self._lock:
            self._fold()
            now = time.time_ns()
            cumulative = [_copy(point) for point in self.series.values()]
            delta: list[SeriesPoint] = []
            if delta_key is not None and delta_key in self._deltas:
                points, _ = self._deltas[delta_key]
                delta = list(points.values())
                self._deltas[delta_key] = ({}, now)
        return cumulative, delta, now


def _copy(point: SeriesPoint) -> SeriesPoint:
    return SeriesPoint(
        point.labels,
        point.start_ns,
        point.count,
        point.errors,
        point.durations,
        point.sum_ns,
        point.min_ns,
        point.max_ns,
        list(point.buckets),
    )
