"""What the export pipeline counts, and how sync mode backs off from a dead collector.

- ``PipelineStats``: the counters ``get_stats()`` shows, drops counted per tenant
  (bounded: past ``MAX_TENANT_COUNTERS`` tenants the rest share one key);
- ``CircuitBreaker``: after a failed export, sync mode skips exports for a growing
  interval (counted), letting one probe through per interval, until one succeeds;
- ``OnceLogger``: each kind of failure logged once per pipeline, never per span.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BREAKER_INITIAL_S",
    "BREAKER_MAX_S",
    "MAX_TENANT_COUNTERS",
    "OTHER_TENANTS",
    "CircuitBreaker",
    "OnceLogger",
    "PipelineStats",
    "count_per_tenant",
]

_logger = logging.getLogger("tenantrace.export.pipeline")

# Per-tenant drop counters are bounded too: past this many tenants the rest are
# summed under one key so a flood of tenant ids cannot grow memory.
MAX_TENANT_COUNTERS: Final = 10_000
OTHER_TENANTS: Final = "(other)"

# Sync mode's circuit breaker: after a failed export, exports are skipped for
# BREAKER_INITIAL_S, the interval doubling after each failed probe up to BREAKER_MAX_S.
BREAKER_INITIAL_S: Final = 1.0
BREAKER_MAX_S: Final = 30.0


@dataclass
class PipelineStats:
    """Counters of the pipeline; read through ``TelemetryManager.get_stats()``."""

    spans_ended: int = 0
    exported_spans: int = 0
    dropped_spans: int = 0
    export_failures: int = 0
    failed_spans: int = 0
    # Spans rewritten to fit one export request or to be encodable at all.
    repaired_spans: int = 0
    # Spans that could not be encoded even repaired: dropped alone (also in dropped_*).
    unexportable_spans: int = 0
    # Sync mode: spans not sent while the circuit breaker was open (also in dropped_*).
    skipped_spans: int = 0
    # Spans the span transform (scrubbing) raised on: dropped, never sent raw.
    transform_failures: int = 0
    dropped_by_tenant: dict[str, int] = field(default_factory=dict)

    def count_drop(self, tenant_id: str, count: int = 1) -> None:
        self.dropped_spans += count
        count_per_tenant(self.dropped_by_tenant, tenant_id, count)


def count_per_tenant(counts: dict[str, int], tenant_id: str, count: int = 1) -> None:
    """Add ``count`` to ``tenant_id``'s counter; past MAX_TENANT_COUNTERS tenants the rest
    are summed under one key, so a flood of tenant ids cannot grow memory."""
    key = tenant_id
    if key not in counts and len(counts) >= MAX_TENANT_COUNTERS:
        key = OTHER_TENANTS
    counts[key] = counts.get(key, 0) + count


class OnceLogger:
    """Logs each kind of failure once per pipeline, never per span."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def warning(self, kind: str, message: str, *args: object) -> None:
        if kind in self._seen:
            return
        self._seen.add(kind)
        _logger.warning(message, *args)


class CircuitBreaker:
    """Skips exports for a growing interval after a collector failure (sync mode).

    Closed, every export is attempted. A failed export opens it for
    ``initial_s``; once that has passed, one export goes through as a probe
    (others are still skipped): if the probe succeeds the breaker closes, if it
    fails the breaker opens again for twice as long, up to ``max_s``.
    """

    def __init__(self, initial_s: float = BREAKER_INITIAL_S, max_s: float = BREAKER_MAX_S) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._lock = threading.Lock()
        self._interval = 0.0  # 0 while closed
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._interval > 0

    @property
    def interval_s(self) -> float:
        """How long exports are skipped after the last failure (0 while closed)."""
        return self._interval

    def allow(self) -> bool:
        """True if an export may be attempted now (closed, or this caller is the probe)."""
        if not self._interval:  # closed: the common case, no lock
            return True
        with self._lock:
            if not self._interval:
                return True
            if self._probing or time.monotonic() < self._open_until:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        if self._interval or self._probing:
            with self._lock:
                self._interval = 0.0
                self._probing = False

    def failed(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._interval and not self._probing and now < self._open_until:
                return  # an export already under way when the breaker opened
            self._interval = (
                min(self._interval * 2, self.max_s) if self._interval else self.initial_s
            )
            self._open_until = now + self._interval
            self._probing = False

    def release(self) -> None:
        """The probe sent nothing (its spans were dropped before export): let another probe."""
        with self._lock:
            self._probing = False
