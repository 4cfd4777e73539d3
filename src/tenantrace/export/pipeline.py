"""The one export pipeline every tenant shares: one bounded queue, one thread, one exporter.

Each tenant's provider gets a tiny ``TenantSpanProcessor`` that hands ended
spans, tagged with their tenant, to the shared ``ExportPipeline``. Nothing is
queued inside a provider, so evicting a provider from the LRU loses no span.
OTLP groups spans by Resource, so one export request carries many tenants'
spans, each landing in its own project.

The pipeline is built in layers, one concept each:

- ``_fair_queue.FairQueue``: the bounded per-tenant queue, max-min fair when
  full (a noisy tenant loses its own spans first), drained round-robin;
- ``_worker.BatchWorker``: the export thread, batching, flush, shutdown, the
  flush at interpreter exit and the fresh start after fork (the log pipeline,
  ``tenantrace.observe.log_export``, is the same model);
- ``_delivery.SpanDelivery``: one request sent, a content failure narrowed
  down to the span(s) at fault, every outcome counted per tenant;
- here: what is span-specific. Spans the OTLP encoder would refuse are
  scrubbed, sized and repaired (or, when they cannot be, dropped alone) before
  export; a batch is split into requests that fit the byte budget; sync mode
  exports on the caller's thread behind a circuit breaker, so a dead collector
  does not cost every span its export timeout; ``force_flush`` reports lost
  requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from operator import attrgetter
from typing import Final, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from tenantrace.export._delivery import MAX_ISOLATION_ATTEMPTS, SpanDelivery
from tenantrace.export._worker import EXIT_GRACE_MILLIS
from tenantrace.export.config import BatchExportConfig
from tenantrace.export.counters import (
    CircuitBreaker,
    OnceLogger,
    PipelineStats,
)
from tenantrace.export.otel_logs import rate_limit_otel_logs
from tenantrace.export.repair import fit_span
from tenantrace.export.sizing import (
    REQUEST_BUDGET_BYTES,
    plain_span_size,
    resource_size,
    span_size,
)

_resource_of = attrgetter("resource")
_otlp_size_of = attrgetter("otlp_size")  # a TenantResource's size (None until sized)
# Called with each batch of spans about to be exported (scrubbed), once per span, on
# the export thread (in sync mode on the span's): RED metrics, for one. Must not block.
BatchObserver = Callable[[Sequence[ReadableSpan]], object]


class SpanObserver(Protocol):
    """What a manager's ``metrics=`` is: it sees each batch the pipeline exports."""

    def observe_batch(self, spans: Sequence[ReadableSpan]) -> object: ...


__all__ = [
    "EXIT_FLUSH_MILLIS",
    "EXIT_GRACE_MILLIS",
    "MAX_ISOLATION_ATTEMPTS",
    "BatchObserver",
    "ExportPipeline",
    "SpanObserver",
    "SpanTransform",
]

# The most an interpreter exit waits to flush what is still queued.
EXIT_FLUSH_MILLIS: Final = 5000

SpanTransform = Callable[[ReadableSpan], ReadableSpan]


class ExportPipeline(SpanDelivery):
    """One bounded, tenant-fair queue drained by one thread into one exporter.

    ``submit(span, tenant_id)`` (``FairQueue.submit``) is called for every ended
    span on the application's thread.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        config: BatchExportConfig,
        transform: SpanTransform | None = None,
        *,
        max_request_bytes: int = REQUEST_BUDGET_BYTES,
        observe: BatchObserver | None = None,
    ) -> None:
        self._transform = transform
        self._observe = observe
        self._max_request_bytes = max_request_bytes
        # Plain spans (see plain_span_size) skip the transform when it says which
        # attribute keys it leaves alone; an opaque transform sees every span.
        self._plain_keys: AbstractSet[str] | None = None
        self._plain_values: Callable[[str, object], bool] | None = None
        self._plain_path = transform is None
        # Exactly a Scrubber: a subclass may change what its __call__ leaves alone.
        from tenantrace.export.scrubbing import Scrubber

        if type(transform) is Scrubber and transform.unchanged_keys is not None:
            self._plain_keys = transform.unchanged_keys
            self._plain_values = transform.value_unchanged
            self._plain_path = True
        # The SDK and the OTLP exporters log per dropped attribute / failed batch.
        rate_limit_otel_logs()
        super().__init__(
            exporter,
            config,
            OnceLogger(),
            exit_millis=min(config.export_timeout_millis, EXIT_FLUSH_MILLIS),
        )

    def _reset(self) -> None:
        super()._reset()
        self._stats = PipelineStats()
        # Sync mode's circuit breaker; the losses (failed requests, skipped
        # spans) counted when the last force_flush finished.
        self.breaker = CircuitBreaker()
        self._losses_at_flush = 0

    @property
    def stats(self) -> PipelineStats:
        """The counters; ``spans_ended`` is the queue's count of spans offered."""
        stats = self._stats
        stats.spans_ended = self._offered
        return stats

    # --------------------------------------------------------------- enqueue

    def _handle_now(self, item: ReadableSpan, tenant_id: str) -> None:
        try:
            self._export_now([item], tenant_id)
        except Exception as exc:  # on the caller's thread: never into user code
            self._log.warning("export-bug", "tenantrace: export step raised %r", exc)

    def _count_drop(self, tenant_id: str) -> None:
        self._stats.count_drop(tenant_id)
        if self._config.log_dropped_spans:
            self._log.warning(
                "queue-full",
                "tenantrace: export queue full (%d spans); dropping spans. "
                "Dropped spans are counted per tenant in get_stats().",
                self._max_queue,
            )

    # ---------------------------------------------------------------- export

    def _export_batch(self, batch: list[ReadableSpan], owners: list[str]) -> bool | None:
        """Export ``batch`` in requests that fit. False if the collector failed,
        True if it took a request, None if nothing was sent."""
        spans, owners, sizes = self._prepare(batch, owners)
        if self._observe is not None and spans:
            # Once per span, scrubbed, before delivery: a request narrowed down and
            # sent again after a failure is not observed twice.
            try:
                self._observe(spans)
            except Exception as exc:  # an observer never costs a span its export
                self._log.warning("observer", "tenantrace: span batch observer raised %r", exc)
        outcome: bool | None = None
        for start, end in self._requests(spans, sizes):
            chunk_owners = owners[start:end]
            if outcome is False:  # the collector just failed: do not wait out its timeout again
                self._count_failed(chunk_owners)
                continue
            delivered = self._deliver(spans[start:end], chunk_owners)
            if delivered is not None:
                outcome = delivered
        return outcome

    def _prepare(
        self, batch: list[ReadableSpan], owners: list[str]
    ) -> tuple[list[ReadableSpan], list[str], list[int]]:
        """Transform (scrub) each span and make it encodable and fit one request;
        drop (alone, counted) what cannot be."""
        spans: list[ReadableSpan] = []
        kept: list[str] = []
        sizes: list[int] = []
        repaired = 0
        rejected: list[str] = []
        unexportable: list[str] = []
        plain_path, plain_keys = self._plain_path, self._plain_keys
        for ended, owner in zip(batch, owners, strict=True):
            if plain_path:
                try:
                    plain = plain_span_size(ended, plain_keys, self._plain_values)
                except Exception:  # an unforeseen span shape: the full path judges it
                    plain = None
                # Most spans: nothing to scrub, nothing to trim.
                if plain is not None and plain <= self._max_request_bytes:
                    spans.append(ended)
                    kept.append(owner)
                    sizes.append(plain)
                    continue
            try:
                span = ended if self._transform is None else self._transform(ended)
            except Exception as exc:
                # A span of an odd shape (an int attribute key): repaired, it may scrub.
                retried = self._transform_repaired(ended)
                if retried is None:
                    # Never export a span raw when its scrubbing failed: drop and count it.
                    rejected.append(owner)
                    self._log.warning("transform", "tenantrace: span transform raised %r", exc)
                    continue
                span = retried
                repaired += 1
            try:
                size, encodable = span_size(span)
            except Exception:  # a span of a shape no SDK makes: repaired below
                size, encodable = self._max_request_bytes + 1, False
            if size > self._max_request_bytes or not encodable:
                try:
                    span = fit_span(span, self._max_request_bytes)
                    size = span_size(span)[0]
                except Exception as exc:
                    # Cannot be repaired: dropped alone, before it can fail a request.
                    unexportable.append(owner)
                    self._log.warning(
                        "unexportable",
                        "tenantrace: dropped a span that cannot be encoded (%r); "
                        "counted in get_stats() as unexportable_spans",
                        exc,
                    )
                    continue
                repaired += 1
            spans.append(span)
            kept.append(owner)
            sizes.append(size)
        if repaired or rejected or unexportable:
            with self._lock:
                self._stats.repaired_spans += repaired
                self._stats.transform_failures += len(rejected)
                self._stats.unexportable_spans += len(unexportable)
                for owner in rejected + unexportable:
                    self._stats.count_drop(owner)
        return spans, kept, sizes

    def _transform_repaired(self, ended: ReadableSpan) -> ReadableSpan | None:
        """The transform of ``ended`` made encodable first; None if it still fails."""
        if self._transform is None:
            return None
        try:
            return self._transform(fit_span(ended, self._max_request_bytes))
        except Exception:
            return None

    def _requests(self, spans: list[ReadableSpan], sizes: list[int]) -> list[tuple[int, int]]:
        """Split ``spans`` into runs whose estimated OTLP request fits the byte budget."""
        budget = self._max_request_bytes
        total = sum(sizes)
        if total <= budget:
            # Most batches fit one request: each Resource counted once, no loop per span
            # (with thousands of tenants a batch holds hundreds of Resources).
            distinct = {id(resource): resource for resource in map(_resource_of, spans)}
            try:  # tenants' Resources know their size once sized: no call per tenant
                resource_bytes = sum(map(_otlp_size_of, distinct.values()))
            except (AttributeError, TypeError):
                resource_bytes = sum(map(resource_size, distinct.values()))
            if total + resource_bytes <= budget:
                return [(0, len(spans))] if spans else []
        runs: list[tuple[int, int]] = []
        resources: dict[int, int] = {}
        start, used = 0, 0
        seen: set[int] = set()
        for index, (span, size) in enumerate(zip(spans, sizes, strict=True)):
            key = id(span.resource)
            if key not in resources:
                resources[key] = resource_size(span.resource)
            cost = size + (resources[key] if key not in seen else 0)
            if index > start and used + cost > self._max_request_bytes:
                runs.append((start, index))
                start, used = index, 0
                seen.clear()
                cost = size + resources[key]
            seen.add(key)
            used += cost
        if start < len(spans):
            runs.append((start, len(spans)))
        return runs

    def _export_now(self, spans: Sequence[ReadableSpan], tenant_id: str) -> None:
        """Sync mode: export on the caller's thread, unless the circuit breaker is open."""
        owners = [tenant_id] * len(spans)
        with self._lock:
            self._offered += len(spans)
        breaker = self.breaker
        if not breaker.allow():
            with self._lock:
                self._stats.skipped_spans += len(owners)
                for owner in owners:
                    self._stats.count_drop(owner)
            return
        outcome: bool | None = None
        try:
            outcome = self._export_batch(list(spans), owners)
        finally:
            if outcome is None:
                breaker.release()
            elif outcome:
                breaker.succeeded()
            else:
                breaker.failed()
                self._log.warning(
                    "breaker",
                    "tenantrace: export failed in sync mode; exports are now skipped for "
                    "%.0f s, then %.0f s more after each failed attempt (up to %.0f s), and "
                    "spans ended meanwhile are dropped and counted (skipped_spans)",
                    breaker.initial_s,
                    breaker.initial_s,
                    breaker.max_s,
                )

    # ------------------------------------------------------------- lifecycle

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued so far. True only if nothing was lost.

        False if the flush did not finish within the timeout, or if any export
        failed (the collector did not take a request; in sync mode also a span
        skipped by the circuit breaker) since the previous ``force_flush`` that
        finished, or since the start: one lost request is reported once, by the
        next flush, whether it failed before that flush began or during it.
        Spans dropped for their own content (``unexportable_spans``), by the
        transform or on a full queue are counted in ``get_stats()`` and do not
        make a flush fail.
        """
        if self._is_shutdown:
            return True
        if not self.drain(timeout_millis):
            return False
        with self._lock:
            losses = self._stats.export_failures + self._stats.skipped_spans
            delivered = losses == self._losses_at_flush
            self._losses_at_flush = losses
        return delivered
