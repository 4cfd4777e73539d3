"""Delivering one export request of spans: a bad span never costs another span.

An export fails either because the collector failed (refused, timed out,
answered an error) or because of what the request holds (a span the encoder
refuses). A collector failure is counted and never retried here (the
exporter's own bounded retries already ran). A content failure costs only the
span(s) at fault: the real OTLP encoder, run locally, names the spans it
refuses, which are dropped (counted) before the rest is sent once more; an
exporter that raises for a reason the encoder does not show has the request
halved until the span(s) it raises on are found (at most
``MAX_ISOLATION_ATTEMPTS`` more export calls, and no longer than the export
timeout).

``SpanDelivery`` is the layer of ``ExportPipeline`` that does this and counts
the outcome per tenant (exported, failed, unexportable).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace.export._worker import BatchWorker
from tenantrace.export.counters import OnceLogger, PipelineStats
from tenantrace.export.repair import unencodable

__all__ = ["MAX_ISOLATION_ATTEMPTS", "SpanDelivery"]

# An exporter that raises on a request (not a transport error) has the request
# halved until the span(s) it raises on are found: at most this many more
# export calls per request, and no longer than the export timeout.
MAX_ISOLATION_ATTEMPTS: Final = 32


def _halves(start: int, end: int) -> list[tuple[int, int]]:
    """The two halves of ``[start, end)``, the first half last (popped first)."""
    middle = (start + end) // 2
    return [(middle, end), (start, middle)]


class SpanDelivery(BatchWorker[ReadableSpan]):
    """Sends requests of spans to a ``SpanExporter`` and counts each span's outcome."""

    _exporter: SpanExporter
    _log: OnceLogger
    _stats: PipelineStats

    def _attempt(self, chunk: Sequence[ReadableSpan]) -> tuple[bool, Exception | None]:
        """One export call: (succeeded, the exception it raised if it raised)."""
        self._export_started = time.monotonic()
        try:
            return self._exporter.export(chunk) is SpanExportResult.SUCCESS, None
        except Exception as exc:  # an exporter must never kill the worker thread
            self._log.warning("export-error", "tenantrace: span exporter raised %r", exc)
            return False, exc
        finally:
            self._export_started = None

    def _deliver(self, chunk: list[ReadableSpan], owners: list[str]) -> bool | None:
        """Export one request; a content failure costs only the span(s) at fault.

        An export fails either because the collector failed (refused, timed
        out, answered an error: counted, never retried here, the exporter's own
        bounded retries already ran) or because of what the request holds (a
        span the encoder refuses: the gRPC exporter raises, the HTTP exporter
        returns FAILURE). The real OTLP encoder, run locally without network,
        tells them apart: the spans it refuses alone are dropped (counted) and
        the rest is sent once more. An exporter that raises for a reason the
        encoder does not show (not OTLP) has the request halved until the
        span(s) it raises on are found (``_isolate``).

        Returns False if the collector failed, True if it took spans, None if
        nothing was sent.
        """
        ok, error = self._attempt(chunk)
        if ok:
            self._count_exported(owners)
            return True
        if isinstance(error, OSError):  # a transport error the exporter let through
            self._count_failed(owners)
            return False
        try:
            bad = unencodable(chunk)
        except Exception:  # judging must not lose the request's accounting
            bad = None
        if bad:
            return self._resend_without(chunk, owners, bad)
        if error is None:  # FAILURE, and every span encodes: the collector failed
            self._count_failed(owners)
            return False
        return self._isolate(chunk, owners)

    def _resend_without(
        self, chunk: list[ReadableSpan], owners: list[str], bad: list[int]
    ) -> bool | None:
        """Drop the spans at ``bad`` (counted) and send the rest of ``chunk`` once."""
        refused = set(bad)
        self._count_unexportable([owners[i] for i in bad])
        rest = [i for i in range(len(chunk)) if i not in refused]
        if not rest:
            return None
        rest_owners = [owners[i] for i in rest]
        ok, _ = self._attempt([chunk[i] for i in rest])  # once: no further retry
        if ok:
            self._count_exported(rest_owners)
            return True
        self._count_failed(rest_owners)
        return False

    def _isolate(self, chunk: list[ReadableSpan], owners: list[str]) -> bool | None:
        """The exporter raised on ``chunk``: halve it until the span(s) it raises on are
        found and dropped; the other halves are sent (each part at most once).

        A span counts as unexportable only if some other part of the request
        went through: when nothing did (one span, or an exporter that raises on
        everything), the exporter failed, not the content, and the request is
        counted as a failed export. Bounded: at most ``MAX_ISOLATION_ATTEMPTS``
        more export calls and the export timeout; a part that fails without
        raising (the collector), raises a transport error, or is past the bound
        is counted as failed.
        """
        deadline = time.monotonic() + self._block_s
        attempts = 0
        succeeded = failed = False
        suspects: list[str] = []  # owners of the single spans the exporter raised on
        stack = _halves(0, len(chunk)) if len(chunk) > 1 else []
        if not stack:
            suspects.extend(owners)
        while stack:
            start, end = stack.pop()
            part_owners = owners[start:end]
            if failed or attempts >= MAX_ISOLATION_ATTEMPTS or time.monotonic() > deadline:
                self._count_failed(part_owners)
                failed = True
                continue
            attempts += 1
            ok, error = self._attempt(chunk[start:end])
            if ok:
                self._count_exported(part_owners)
                succeeded = True
            elif error is None or isinstance(error, OSError):  # the collector, not the content
                self._count_failed(part_owners)
                failed = True
            elif end - start == 1:
                suspects.extend(part_owners)
            else:
                stack.extend(_halves(start, end))
        if suspects and succeeded:
            self._count_unexportable(suspects)
        elif suspects:
            self._count_failed(suspects)
            failed = True
        if failed:
            return False
        return True if succeeded else None

    def _count_exported(self, owners: list[str]) -> None:
        with self._lock:
            self._export_failing = False
            self._stats.exported_spans += len(owners)

    def _count_failed(self, owners: list[str]) -> None:
        """A request the collector did not take: its spans are dropped (counted per tenant)."""
        with self._lock:
            self._export_failing = True
            self._not_full.notify_all()  # release callers blocked on a full queue
            self._stats.export_failures += 1
            self._stats.failed_spans += len(owners)
            for tenant_id in owners:
                self._stats.count_drop(tenant_id)
        self._log.warning(
            "export-failed",
            "tenantrace: export of %d spans failed; failures are counted in get_stats()",
            len(owners),
        )

    def _count_unexportable(self, owners: list[str]) -> None:
        """Spans the exporter cannot encode: dropped alone (counted per tenant)."""
        with self._lock:
            self._stats.unexportable_spans += len(owners)
            for tenant_id in owners:
                self._stats.count_drop(tenant_id)
        self._log.warning(
            "unexportable-request",
            "tenantrace: dropped %d span(s) the exporter could not encode; the rest of "
            "the request was sent; counted in get_stats() as unexportable_spans",
            len(owners),
        )
