"""What the gRPC and the HTTP span exporters share: encoding, retries, counters, logs.

``OtlpTransportExporter.export(spans)`` encodes the batch once with
:func:`tenantrace.export.encode_spans` and hands the bytes to the subclass's
``_send`` for each attempt, under one deadline (the export timeout), as the
SDK's OTLP exporters do:

- at most ``MAX_ATTEMPTS`` attempts; a retryable failure waits the delay the
  server asked for (gRPC ``RetryInfo``, HTTP ``Retry-After``) or
  ``2**n`` seconds with +/-20 % jitter, and the export gives up when that wait
  would pass the deadline;
- ``shutdown()`` ends any wait at once, and later exports return FAILURE;
- the collector's partial success (``rejected_spans``, ``error_message``) is
  counted and logged, at most once a minute;
- nothing raises out of ``export()``: a failure is FAILURE, and counted.

Logs: transient failures (refused, unavailable, timed out) go at INFO, because
the export pipeline already reports and counts every failed export; a
non-retryable rejection (bad credentials, wrong path, invalid request), a
partial success and an encoder fallback are WARNINGs. Every kind of line is
logged at most once a minute per exporter, with the number suppressed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace.export._options import display_endpoint, endpoint_secrets, env_timeout
from tenantrace.export.encoder import encode_spans

__all__ = ["MAX_ATTEMPTS", "Attempt", "OtlpTransportExporter", "TransportStats"]

# The SDK's OTLP exporters (1.45): six attempts, 1 s first backoff, +/-20 % jitter.
MAX_ATTEMPTS: Final = 6
BACKOFF_INITIAL_S: Final = 1.0
JITTER: Final = 0.2
LOG_INTERVAL_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one request.

    ``retryable``: the failure may go away (the request can be sent again);
    ``delay_s``: how long the server asked to wait first (None: the backoff);
    ``reason``: for the logs; ``response``: the decoded answer of a success.
    """

    ok: bool
    retryable: bool = False
    delay_s: float | None = None
    reason: str = ""
    response: ExportTraceServiceResponse | None = None


@dataclass
class TransportStats:
    """Counters of one exporter (``OtlpTransportExporter.stats()`` reads a snapshot)."""

    exports: int = 0  # export() calls with spans
    failed_exports: int = 0  # export() calls that returned FAILURE
    requests: int = 0  # requests sent (every attempt, retries included)
    retries: int = 0  # requests after the first of an export
    spans_sent: int = 0  # spans of the requests the collector accepted
    rejected_spans: int = 0  # of those, rejected by the collector (partial success)
    bytes_sent: int = 0  # encoded request bytes (before compression) of every request
    encoder_fallbacks: int = 0  # batches tenantrace's encoder refused, encoded by the SDK's


class _Throttle:
    """Each kind of log line at most once per ``interval_s``; the next says how many were not."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        if not self._logger.isEnabledFor(level):
            return
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(kind, (float("-inf"), 0))
            if now - last < self._interval_s:
                self._last[kind] = (last, suppressed + 1)
                return
            self._last[kind] = (now, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._logger.log(level, message, *args)


class OtlpTransportExporter(SpanExporter):
    """A span exporter that sends ``encode_spans`` bytes; subclasses supply the transport."""

    #: "gRPC" or "HTTP", for the logs.
    protocol = "OTLP"
    #: Write ``tenant.id`` on every span of a tenant's Resource (see ``encode_spans``).
    name_tenants = False

    def __init__(self, *, endpoint: str, timeout: float | None, logger: logging.Logger) -> None:
        self._endpoint = endpoint
        self._display = display_endpoint(endpoint)
        self._secrets = endpoint_secrets(endpoint)
        self._timeout_s = timeout if timeout is not None and timeout > 0 else env_timeout()
        self._log = _Throttle(logger)
        self._stats = TransportStats()
        self._stats_lock = threading.Lock()
        self._shutdown = False
        self._shutdown_event = threading.Event()
        self.last_error: str | None = None

    # ----------------------------------------------------------- subclasses

    def _send(self, body: bytes, timeout_s: float, attempt: int) -> Attempt:
        """Send ``body`` once within ``timeout_s`` seconds; must not raise for a
        transport failure (an exception is taken as a non-retryable failure)."""
        raise NotImplementedError

    def _prepare(self, body: bytes) -> bytes:
        """The request body as sent (compressed, for HTTP): once per export."""
        return body

    def _close(self) -> None:
        """Release the connection(s); called once, by ``shutdown()``."""

    # ----------------------------------------------------------------- API

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def stats(self) -> dict[str, int]:
        """A snapshot of the counters, keys prefixed ``otlp_`` (for ``get_stats()``)."""
        with self._stats_lock:
            return {f"otlp_{f.name}": getattr(self._stats, f.name) for f in fields(self._stats)}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            self._log.log(logging.WARNING, "shutdown", "tenantrace: exporter already shut down")
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            return self._export(spans)
        except Exception as exc:  # a bug here must never reach the export thread
            error = self._scrub(repr(exc))
            self._failed(f"unexpected error {error}")
            self._log.log(
                logging.WARNING,
                "bug",
                "tenantrace: %s export to %s raised %s",
                self.protocol,
                self._display,
                error,
            )
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: each ``export()`` sends before it returns."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Stop: waits between retries end now, later exports fail; idempotent."""
        if self._shutdown:
            return
        self._shutdown = True
        self._shutdown_event.set()
        try:
            self._close()
        except Exception as exc:
            self._log.log(logging.DEBUG, "close", "tenantrace: closing the exporter: %r", exc)

    # ------------------------------------------------------------ internals

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes | None:
        try:
            return encode_spans(spans, name_tenants=self.name_tenants)
        except Exception as exc:
            error: Exception = exc
        # What tenantrace's encoder refuses, the SDK's may still take: never worse than it.
        try:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
                encode_spans as sdk_encode,
            )

            body: bytes = sdk_encode(spans).SerializeToString()
        except Exception:
            self._failed(f"the batch cannot be encoded ({error!r})")
            self._log.log(
                logging.INFO,
                "encode",
                "tenantrace: a batch of %d spans cannot be encoded (%r)",
                len(spans),
                error,
            )
            return None
        with self._stats_lock:
            self._stats.encoder_fallbacks += 1
        self._log.log(
            logging.WARNING,
            "fallback",
            "tenantrace: the OTLP encoder refused a batch (%r); sent as the SDK encodes it",
            error,
        )
        return body

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._stats_lock:
            self._stats.exports += 1
        encoded = self._encode(spans)
        if encoded is None:
            return SpanExportResult.FAILURE
        body = self._prepare(encoded)
        deadline = time.monotonic() + self._timeout_s
        outcome = Attempt(ok=False, reason="not sent")
        for attempt in range(MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._shutdown:
                break
            try:
                outcome = self._send(body, remaining, attempt)
            except Exception as exc:  # a transport bug: not worth a retry
                outcome = Attempt(ok=False, reason=f"unexpected error {exc!r}")
            if self._secrets and not outcome.ok:
                outcome = self._scrubbed(outcome)
            with self._stats_lock:
                self._stats.requests += 1
                self._stats.retries += attempt > 0
                self._stats.bytes_sent += len(encoded)
            if outcome.ok:
                self._accepted(len(spans), outcome.response)
                return SpanExportResult.SUCCESS
            if not outcome.retryable:
                self._failed(outcome.reason)
                self._log.log(
                    logging.WARNING,
                    "refused",
                    "tenantrace: the collector at %s refused %d spans over %s (%s); not retried",
                    self._display,
                    len(spans),
                    self.protocol,
                    outcome.reason,
                )
                return SpanExportResult.FAILURE
            delay = outcome.delay_s
            if delay is None:
                delay = BACKOFF_INITIAL_S * 2**attempt * random.uniform(1 - JITTER, 1 + JITTER)
            if attempt + 1 == MAX_ATTEMPTS or delay > deadline - time.monotonic():
                break
            self._log.log(
                logging.DEBUG,
                "retry",
                "tenantrace: %s export to %s failed (%s); retrying in %.2f s",
                self.protocol,
                self._display,
                outcome.reason,
                delay,
            )
            if self._shutdown_event.wait(delay):
                break
        self._failed(outcome.reason)
        self._log.log(
            logging.INFO,
            "gave-up",
            "tenantrace: %s export of %d spans to %s failed (%s)%s",
            self.protocol,
            len(spans),
            self._display,
            outcome.reason,
            " during shutdown" if self._shutdown else ", retries exhausted within the timeout",
        )
        return SpanExportResult.FAILURE

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text

    def _scrubbed(self, outcome: Attempt) -> Attempt:
        reason = self._scrub(outcome.reason)
        return Attempt(outcome.ok, outcome.retryable, outcome.delay_s, reason, outcome.response)

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        with self._stats_lock:
            self._stats.failed_exports += 1

    def _accepted(self, count: int, response: ExportTraceServiceResponse | None) -> None:
        rejected = 0
        message = ""
        if response is not None and response.HasField("partial_success"):
            rejected = max(0, response.partial_success.rejected_spans)
            message = response.partial_success.error_message
        with self._stats_lock:
            self._stats.spans_sent += count
            self._stats.rejected_spans += rejected
        if rejected or message:
            self._log.log(
                logging.WARNING,
                "partial",
                "tenantrace: the collector at %s rejected %d of %d spans: %s "
                "(counted in otlp_rejected_spans)",
                self._display,
                rejected,
                count,
                message or "no reason given",
            )
