"""The OpenTelemetry loggers that would log per span or per batch, rate limited.

``rate_limit_otel_logs()`` puts one ``RateLimitFilter`` on each: a message
template goes through once a minute, the next says how many like it were
suppressed (the failures themselves are counted in ``get_stats()``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

__all__ = ["LOG_INTERVAL_S", "OTEL_LOGGERS", "RateLimitFilter", "rate_limit_otel_logs"]

# The OTLP exporters log every failed batch (and every retry) at ERROR/WARNING:
# during a collector outage that is a line or more per batch, forever. The
# failures are already counted in get_stats(), so these loggers are rate limited.
# The SDK's attribute bounds log every truncated value and every attribute
# dropped from a full span, and the OTLP encoder logs (with a traceback) every
# attribute it cannot encode: per call, from user code. Rate limited as well.
OTEL_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.common._internal",
    "opentelemetry.attributes",
    "opentelemetry.sdk.trace",
)
LOG_INTERVAL_S: Final = 60.0
# Distinct message templates remembered by the filter; past it, the oldest are forgotten.
_MAX_TEMPLATES: Final = 256


class RateLimitFilter(logging.Filter):
    """Lets each message template through once per ``interval_s``; counts the rest.

    The next record let through says how many like it were suppressed, so an
    outage stays visible in the logs without flooding them.
    """

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self._interval_s:
                self._last[key] = (last, suppressed + 1)
                return False
            if key not in self._last and len(self._last) >= _MAX_TEMPLATES:
                self._last.pop(next(iter(self._last)))
            self._last[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
        return True


_filter_lock = threading.Lock()


def rate_limit_otel_logs() -> None:
    """Install one ``RateLimitFilter`` on each noisy OpenTelemetry logger (idempotent)."""
    with _filter_lock:
        for name in OTEL_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
                logger.addFilter(RateLimitFilter())
