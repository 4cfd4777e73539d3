"""The one export pipeline every tenant shares: one bounded queue, one thread, one exporter.

Each tenant's provider gets a tiny ``TenantSpanProcessor`` that hands ended
spans, tagged with their tenant, to the shared ``ExportPipeline``. Nothing is
queued inside a provider, so evicting a provider from the LRU loses no span.
OTLP groups spans by Resource, so one export request carries many tenants'
spans, each landing in its own project.

Fairness when the queue is full: the queue is split into one FIFO per tenant
under one global bound. A span arriving at a full queue displaces the newest
queued span of the tenant that holds the most, when that tenant holds more than
the newcomer's own tenant plus one; otherwise the new span is dropped. This is
max-min fairness: every tenant can always queue up to its fair share
(``max_queue_size`` divided by the tenants with queued spans), a noisy tenant
loses its own spans first and cannot crowd a quiet tenant out, and tenants that
all want more than the queue end with equal shares (within one span). Batches
are drained round-robin across tenants.

Finding the tenant that holds the most is O(1) and costs nothing while the
queue has room: the first time the queue fills, tenants are indexed in buckets
by the length of their queue (``_by_len``, the longest length tracked exactly);
the index is kept up to date until the queue drains to half, then dropped. So
the common path does no bookkeeping and a full queue never scans the tenants
per span (one O(tenants) build per overflow episode).

A bad span never costs another span: spans the OTLP encoder would refuse are
repaired (or, when they cannot be, dropped alone) before export, and a request
that still fails for a content reason is narrowed down to the span(s) at fault
(see ``_deliver``); a collector failure is never retried here (the exporter's
own bounded retries already ran). In sync mode a circuit breaker keeps a dead
collector from costing every span its export timeout.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace.export.config import BatchExportConfig
from tenantrace.export.counters import (
    CircuitBreaker,
    OnceLogger,
    PipelineStats,
)
from tenantrace.export.otel_logs import rate_limit_otel_logs
from tenantrace.export.repair import fit_span, unencodable
from tenantrace.export.sizing import (
    REQUEST_BUDGET_BYTES,
    plain_span_size,
    resource_size,
    span_size,
)

__all__ = ["ExportPipeline", "SpanTransform"]

_logger = logging.getLogger(__name__)

# The most an interpreter exit waits to flush what is still queued.
EXIT_FLUSH_MILLIS: Final = 5000
# At exit, when the collector is failing or has held one export for over a
# second, the process waits only this long more for it.
EXIT_GRACE_MILLIS: Final = 500
_STUCK_EXPORT_S: Final = 1.0

# An exporter that raises on a request (not a transport error) has the request
# halved until the span(s) it raises on are found: at most this many more
# export calls per request, and no longer than the export timeout.
MAX_ISOLATION_ATTEMPTS: Final = 32

SpanTransform = Callable[[ReadableSpan], ReadableSpan]


def _weak_call(method: Callable[[], None]) -> Callable[[], None]:
    """A callback for atexit / at-fork that does not keep its pipeline alive."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        target = ref()
        if target is not None:
            target()

    return call


def _halves(start: int, end: int) -> list[tuple[int, int]]:
    """The two halves of ``[start, end)``, the first half last (popped first)."""
    middle = (start + end) // 2
    return [(middle, end), (start, middle)]


class ExportPipeline:
    """One bounded, tenant-fair queue drained by one thread into one exporter."""

    def __init__(
        self,
        exporter: SpanExporter,
        config: BatchExportConfig,
        transform: SpanTransform | None = None,
        *,
        max_request_bytes: int = REQUEST_BUDGET_BYTES,
    ) -> None:
        self._exporter = exporter
        self._config = config
        self._transform = transform
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
        self.stats = PipelineStats()
        self._log = OnceLogger()
        self._sync = config.use_sync_export
        self._max_queue = config.max_queue_size
        self._max_batch = config.max_export_batch_size
        self._delay_s = config.schedule_delay_millis / 1000
        self._block_s = config.export_timeout_millis / 1000
        self._is_shutdown = False
        self._init_queue_state()
        if not self._sync:
            self._start_worker()
        # After fork the worker thread is gone and the lock may be held by a
        # thread that no longer exists: the child starts a fresh queue.
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_weak_call(self._after_fork_in_child))
        # Spans still queued when the interpreter exits are flushed, within a bound,
        # like the SDK's TracerProvider does (the export thread is a daemon).
        if not self._sync:
            atexit.register(_weak_call(self._at_exit))

    # ----------------------------------------------------------------- state

    def _init_queue_state(self) -> None:
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._flushed = threading.Condition(self._lock)
        self._queues: dict[str, deque[ReadableSpan]] = {}
        self._size = 0
        # While the queue is (nearly) full: tenants by the length of their queue
        # (insertion-ordered sets) and the longest length. None otherwise.
        self._by_len: dict[int, dict[str, None]] | None = None
        self._max_len = 0
        self._flush_requested = 0
        self._flush_done = 0
        self._worker: threading.Thread | None = None
        # Set while the last export failed: a blocking queue then drops instead of
        # making the user's thread wait for a collector that is not answering.
        self._collector_down = False
        # When the export call in progress began (None between calls): read at exit.
        self._export_started: float | None = None
        # Sync mode's circuit breaker; the losses (failed requests, skipped
        # spans) counted when the last force_flush finished.
        self.breaker = CircuitBreaker()
        self._losses_at_flush = 0

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="tenantrace-export", daemon=True)
        self._worker.start()

    def _after_fork_in_child(self) -> None:
        self._init_queue_state()
        self.stats = PipelineStats()
        if not self._sync and not self._is_shutdown:
            self._start_worker()

    def _at_exit(self) -> None:
        timeout = min(self._config.export_timeout_millis, EXIT_FLUSH_MILLIS)
        started = self._export_started
        if self._collector_down or (
            started is not None and time.monotonic() - started > _STUCK_EXPORT_S
        ):
            timeout = min(timeout, EXIT_GRACE_MILLIS)
        self.shutdown(timeout_millis=timeout)

    @property
    def queued(self) -> int:
        return self._size

    @property
    def worker_alive(self) -> bool:
        return self._sync or (self._worker is not None and self._worker.is_alive())

    # --------------------------------------------------------------- enqueue

    def submit(self, span: ReadableSpan, tenant_id: str) -> None:
        """Queue one ended span of ``tenant_id``; never raises."""
        if self._is_shutdown:
            return
        if self._sync:
            try:
                self._export_now([span], tenant_id)
            except Exception as exc:  # on the caller's thread: never into user code
                self._log.warning("export-bug", "tenantrace: export step raised %r", exc)
            return
        with self._lock:
            self.stats.spans_ended += 1
            if self._size >= self._max_queue and not self._make_room(tenant_id):
                return
            queue = self._queues.get(tenant_id)
            if queue is None:
                queue = self._queues[tenant_id] = deque()
            queue.append(span)
            self._size += 1
            if self._by_len is not None:
                self._moved(tenant_id, len(queue) - 1, len(queue))
            # Wake the worker once, as the queue reaches a batch (it grows one span
            # at a time); past that the worker does not wait before taking a batch.
            if self._size == self._max_batch:
                self._not_empty.notify()

    def _make_room(self, tenant_id: str) -> bool:
        """Called with the lock held and the queue full. True if the span may be queued."""
        if not self._config.drop_on_queue_full and not self._collector_down:
            deadline = time.monotonic() + self._block_s
            self._not_empty.notify()
            while self._size >= self._max_queue and not (self._is_shutdown or self._collector_down):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._not_full.wait(remaining)
            if self._size < self._max_queue:
                return True
        else:
            own = self._queues.get(tenant_id)
            own_len = len(own) if own is not None else 0
            by_len = self._by_len if self._by_len is not None else self._index()
            if self._max_len > own_len + 1:
                # Ties at the longest length give up spans in turn: a victim moves
                # to the shorter bucket, behind the others still at the top.
                victim = next(iter(by_len[self._max_len]))
                self._queues[victim].pop()
                self._size -= 1
                self._moved(victim, self._max_len, self._max_len - 1)
                self._count_drop(victim)
                return True
        self._count_drop(tenant_id)
        return False

    def _index(self) -> dict[int, dict[str, None]]:
        """Called with the lock held when the queue fills: bucket the tenants by length."""
        by_len: dict[int, dict[str, None]] = {}
        for tenant_id, queue in self._queues.items():
            by_len.setdefault(len(queue), {})[tenant_id] = None
        self._by_len = by_len
        self._max_len = max(by_len, default=0)
        return by_len

    def _moved(self, tenant_id: str, old_len: int, new_len: int) -> None:
        """Called with the lock held and the index on: a queue went from old_len to new_len."""
        by_len = self._by_len
        assert by_len is not None
        if old_len:
            del by_len[old_len][tenant_id]
        if new_len:
            bucket = by_len.get(new_len)
            if bucket is None:
                bucket = by_len[new_len] = {}
            bucket[tenant_id] = None
            self._max_len = max(self._max_len, new_len)
        while self._max_len and not by_len.get(self._max_len):
            self._max_len -= 1

    def _count_drop(self, tenant_id: str) -> None:
        self.stats.count_drop(tenant_id)
        if self._config.log_dropped_spans:
            self._log.warning(
                "queue-full",
                "tenantrace: export queue full (%d spans); dropping spans. "
                "Dropped spans are counted per tenant in get_stats().",
                self._max_queue,
            )

    # ---------------------------------------------------------------- export

    def _take_batch(self) -> tuple[list[ReadableSpan], list[str]]:
        """Called with the lock held: up to one batch, round-robin over tenants."""
        batch: list[ReadableSpan] = []
        owners: list[str] = []
        room = min(self._max_batch, self._size)
        while len(batch) < room:
            share = max(1, (room - len(batch)) // len(self._queues))
            for tenant_id in list(self._queues):
                queue = self._queues[tenant_id]
                length = len(queue)
                take = min(share, length, room - len(batch))
                for _ in range(take):
                    batch.append(queue.popleft())
                owners.extend([tenant_id] * take)
                if self._by_len is not None:
                    self._moved(tenant_id, length, length - take)
                if not queue:
                    del self._queues[tenant_id]
                if len(batch) >= room:
                    break
        self._size -= len(batch)
        if self._by_len is not None and self._size <= self._max_queue // 2:
            self._by_len = None  # the overflow episode is over; stop the bookkeeping
        if batch:
            self._not_full.notify_all()
        return batch, owners

    def _run(self) -> None:
        while True:
            with self._lock:
                if (
                    self._size < self._max_batch
                    and self._flush_requested == self._flush_done
                    and not self._is_shutdown
                ):
                    self._not_empty.wait(self._delay_s)
                flush_target = self._flush_requested
                batch, owners = self._take_batch()
                stopping = self._is_shutdown and not batch
            if batch:
                try:
                    self._export_batch(batch, owners)
                except Exception as exc:  # nothing may kill the export thread
                    self._log.warning("export-bug", "tenantrace: export step raised %r", exc)
            with self._lock:
                if not self._size:
                    self._flush_done = max(self._flush_done, flush_target)
                    self._flushed.notify_all()
            if stopping:
                return

    def _export_batch(self, batch: list[ReadableSpan], owners: list[str]) -> bool | None:
        """Export ``batch`` in requests that fit. False if the collector failed,
        True if it took a request, None if nothing was sent."""
        spans, owners, sizes = self._prepare(batch, owners)
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
                self.stats.repaired_spans += repaired
                self.stats.transform_failures += len(rejected)
                self.stats.unexportable_spans += len(unexportable)
                for owner in rejected + unexportable:
                    self.stats.count_drop(owner)
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
            self._collector_down = False
            self.stats.exported_spans += len(owners)

    def _count_failed(self, owners: list[str]) -> None:
        """A request the collector did not take: its spans are dropped (counted per tenant)."""
        with self._lock:
            self._collector_down = True
            self._not_full.notify_all()  # release callers blocked on a full queue
            self.stats.export_failures += 1
            self.stats.failed_spans += len(owners)
            for tenant_id in owners:
                self.stats.count_drop(tenant_id)
        self._log.warning(
            "export-failed",
            "tenantrace: export of %d spans failed; failures are counted in get_stats()",
            len(owners),
        )

    def _count_unexportable(self, owners: list[str]) -> None:
        """Spans the exporter cannot encode: dropped alone (counted per tenant)."""
        with self._lock:
            self.stats.unexportable_spans += len(owners)
            for tenant_id in owners:
                self.stats.count_drop(tenant_id)
        self._log.warning(
            "unexportable-request",
            "tenantrace: dropped %d span(s) the exporter could not encode; the rest of "
            "the request was sent; counted in get_stats() as unexportable_spans",
            len(owners),
        )

    def _export_now(self, spans: Sequence[ReadableSpan], tenant_id: str) -> None:
        """Sync mode: export on the caller's thread, unless the circuit breaker is open."""
        owners = [tenant_id] * len(spans)
        with self._lock:
            self.stats.spans_ended += len(spans)
        breaker = self.breaker
        if not breaker.allow():
            with self._lock:
                self.stats.skipped_spans += len(owners)
                for owner in owners:
                    self.stats.count_drop(owner)
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
            losses = self.stats.export_failures + self.stats.skipped_spans
            delivered = losses == self._losses_at_flush
            self._losses_at_flush = losses
        return delivered

    def drain(self, timeout_millis: int = 30_000) -> bool:
        """Wait until what is queued now has been exported or counted as lost;
        False if that took longer than the timeout (or the worker is gone)."""
        if self._sync or self._is_shutdown:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        with self._lock:
            self._flush_requested += 1
            target = self._flush_requested
            self._not_empty.notify()
            while self._flush_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.worker_alive:
                    return False
                self._flushed.wait(remaining)
        return True

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        """Flush what is queued (within the timeout), stop the worker, close the exporter."""
        if self._is_shutdown:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        flushed = self.force_flush(timeout_millis)
        with self._lock:
            self._is_shutdown = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        try:
            self._exporter.shutdown()
        except Exception as exc:
            self._log.warning("shutdown-error", "tenantrace: exporter shutdown raised %r", exc)
        return flushed
