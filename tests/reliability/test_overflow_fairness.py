"""Queue overflow and fairness between tenants sharing the one export queue.

Policy under test (pipeline.py): one FIFO per tenant under one global bound; a
span arriving at a full queue displaces the newest span of the tenant holding
the most, if that tenant holds more than the newcomer's own tenant (plus one);
otherwise the newcomer is dropped. So a tenant can always queue up to its fair
share, ``max_queue_size / tenants with queued spans``, whatever the others send.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.pipeline import ExportPipeline

QUEUE = 500
BATCH = 50


class StalledExporter(SpanExporter):
    """Blocks every export until ``release`` is set; keeps what it received."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.received: list[tuple[str, str]] = []
        self.max_wait_s = 30.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(self.max_wait_s)
        self.received.extend(
            (str(s.resource.attributes["tenant.id"]), str((s.attributes or {})["tenant.id"]))
            for s in spans
        )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()

    def tenants(self) -> Counter[str]:
        return Counter(resource_tenant for resource_tenant, _ in self.received)


def _manager(exporter: SpanExporter, queue: int = QUEUE, batch: int = BATCH) -> TelemetryManager:
    return TelemetryManager(
        TelemetryConfig(
            batch_config=BatchExportConfig(
                max_queue_size=queue, max_export_batch_size=batch, schedule_delay_millis=1
            )
        ),
        exporter=exporter,
    )


def _emit(manager: TelemetryManager, tenant: str, count: int = 1) -> None:
    for _ in range(count):
        with manager.span("op", tenant_id=tenant):
            pass


def _stall(manager: TelemetryManager, exporter: StalledExporter) -> None:
    """Get the export thread stuck inside one export of one span."""
    _emit(manager, "warmup")
    manager.force_flush(0)
    assert exporter.entered.wait(5)


def _drain(manager: TelemetryManager, exporter: StalledExporter) -> Counter[str]:
    exporter.release.set()
    assert manager.force_flush(10_000)
    assert all(resource == attribute for resource, attribute in exporter.received)
    received = exporter.tenants()
    received.pop("warmup", None)
    return received


def test_ten_times_the_queue_into_a_stalled_exporter_keeps_memory_flat() -> None:
    exporter = StalledExporter()
    manager = _manager(exporter, queue=1000, batch=100)
    _stall(manager, exporter)
    tenants = [f"tenant-{i}" for i in range(5)]
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(1000):  # fills the queue exactly
            _emit(manager, tenants[i % 5])
        gc.collect()
        full, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(9000):  # nine more queues' worth: all of it must be dropped
            _emit(manager, tenants[i % 5])
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\noverflow: traced memory full={full} after={after} peak={peak} bytes")
    stats = manager.get_stats()
    assert stats["queued_spans"] == 1000
    assert stats["dropped_spans"] == 9000
    assert stats["dropped_spans_by_tenant"] == {t: 1800 for t in tenants}
    # Flat: the 9000 extra spans left no trace (one span alone is ~1-2 kB).
    assert after - full < 64 * 1024, (full, after)
    assert peak - full < 256 * 1024, (full, peak)
    received = _drain(manager, exporter)
    assert received == {t: 200 for t in tenants}
    assert manager.get_stats()["exported_spans"] == 1001
    manager.shutdown()


def test_a_noisy_tenant_sending_100x_cannot_make_quiet_tenants_lose_spans() -> None:
    exporter = StalledExporter()
    manager = _manager(exporter)
    _stall(manager, exporter)
    quiet = [f"quiet-{i}" for i in range(9)]
    for _ in range(20):
        _emit(manager, "noisy", 100)
        for tenant in quiet:
            _emit(manager, tenant)
    stats = manager.get_stats()
    assert set(stats["dropped_spans_by_tenant"]) == {"noisy"}
    assert stats["dropped_spans"] == 2000 + 180 - QUEUE
    received = _drain(manager, exporter)
    assert received == {"noisy": QUEUE - 180, **{t: 20 for t in quiet}}
    manager.shutdown()


def test_two_noisy_tenants_cannot_crowd_out_quiet_ones() -> None:
    """The victim is the tenant that really holds the most, not a stale guess."""
    exporter = StalledExporter()
    manager = _manager(exporter)
    _stall(manager, exporter)
    _emit(manager, "burst-then-idle", 300)  # holds 300, then goes quiet
    _emit(manager, "flood", 2000)  # fills the queue, then displaces the burst down to a tie
    quiet = [f"quiet-{i}" for i in range(10)]
    for _ in range(15):
        for tenant in quiet:
            _emit(manager, tenant)
    stats = manager.get_stats()
    assert set(stats["dropped_spans_by_tenant"]) <= {"burst-then-idle", "flood"}
    received = _drain(manager, exporter)
    assert all(received[t] == 15 for t in quiet), received
    # The two noisy tenants end with equal shares of what is left (within one span).
    assert abs(received["flood"] - received["burst-then-idle"]) <= 1, received
    manager.shutdown()


def test_when_everyone_wants_more_than_the_queue_each_gets_an_equal_share() -> None:
    exporter = StalledExporter()
    manager = _manager(exporter)
    _stall(manager, exporter)
    tenants = [f"tenant-{i:03d}" for i in range(100)]
    for tenant in tenants[:50]:  # the first half arrive first and want 20 each
        _emit(manager, tenant, 20)
    for _ in range(20):  # the second half arrive later, interleaved
        for tenant in tenants[50:]:
            _emit(manager, tenant)
    stats = manager.get_stats()
    assert stats["dropped_spans"] == 100 * 20 - QUEUE
    received = _drain(manager, exporter)
    shares = [received[t] for t in tenants]
    assert sum(shares) == QUEUE
    assert max(shares) - min(shares) <= 1, Counter(shares)  # max-min fair: 5 each
    manager.shutdown()


def test_quiet_tenants_keep_every_span_against_a_noisy_thread() -> None:
    """Real threads: a noisy tenant floods a slow exporter; four quiet tenants each
    send one span per hundred of the noisy one's. The queue is full the whole time."""

    class SlowExporter(StalledExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.release.wait(0.002)  # a slow collector: ~2 ms per batch of 20
            self.received.extend((str(s.resource.attributes["tenant.id"]), "") for s in spans)
            return SpanExportResult.SUCCESS

    exporter = SlowExporter()
    manager = _manager(exporter, queue=200, batch=20)
    ticks = threading.Condition()
    hundreds = 0
    quiet_sent = 0
    rounds = 50

    def noisy() -> None:
        nonlocal hundreds
        for i in range(rounds * 100):
            _emit(manager, "noisy")
            if i % 100 == 99:
                with ticks:
                    hundreds += 1
                    ticks.notify_all()
                    # Lockstep: the quiet tenants send their span of this hundred
                    # before the next hundred, even when the machine starves their
                    # threads (a starved quiet thread would otherwise catch up in a
                    # burst, and a burst is not quiet).
                    sent_by_now = 4 * hundreds
                    ticks.wait_for(lambda n=sent_by_now: quiet_sent >= n, timeout=30)

    def quiet(tenant: str) -> None:
        nonlocal quiet_sent
        for k in range(rounds):
            with ticks:
                ticks.wait_for(lambda k=k: hundreds > k, timeout=30)
            _emit(manager, tenant)
            with ticks:
                quiet_sent += 1
                ticks.notify_all()

    threads = [threading.Thread(target=quiet, args=(f"quiet-{i}",)) for i in range(4)]
    threads.append(threading.Thread(target=noisy))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert manager.force_flush(10_000)
    stats = manager.get_stats()
    assert stats["dropped_spans"] > 0  # the queue really overflowed
    assert set(stats["dropped_spans_by_tenant"]) == {"noisy"}
    received = exporter.tenants()
    assert all(received[f"quiet-{i}"] == rounds for i in range(4)), received
    manager.shutdown()


class _ManualPipeline(ExportPipeline):
    """The real pipeline with no export thread: the test drains it by hand."""

    def _start_worker(self) -> None:
        return None

    def drain(self, count: int) -> list[str]:
        with self._lock:
            self._max_batch, saved = max(1, count), self._max_batch
            try:
                _, owners = self._take_batch()
            finally:
                self._max_batch = saved
        return owners


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(0, 7), st.integers(1, 30)),
        st.tuples(st.just("drain"), st.integers(1, 40), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS, queue=st.integers(4, 40))
def test_the_full_queue_always_takes_from_the_tenant_holding_the_most(
    ops: list[tuple[str, int, int]], queue: int
) -> None:
    pipeline = _ManualPipeline(
        InMemorySpanExporter(),
        BatchExportConfig(
            max_queue_size=queue, max_export_batch_size=queue, log_dropped_spans=False
        ),
    )
    span = cast(ReadableSpan, object())  # the queue never looks inside a span
    drained = 0
    for op, arg, count in ops:
        if op == "drain":
            drained += len(pipeline.drain(arg))
            continue
        tenant = f"t{arg}"
        for _ in range(count):
            before = {t: len(q) for t, q in pipeline._queues.items()}
            drops = dict(pipeline.stats.dropped_by_tenant)
            pipeline.submit(span, tenant)
            after = {t: len(q) for t, q in pipeline._queues.items()}
            dropped = {
                t: n - drops.get(t, 0)
                for t, n in pipeline.stats.dropped_by_tenant.items()
                if n != drops.get(t, 0)
            }
            longest = max(before.values(), default=0)
            own = before.get(tenant, 0)
            if dropped == {tenant: 1}:  # the newcomer was dropped: its tenant had its share
                assert own + 1 >= longest and after == before
            elif dropped:  # displacement: the victim held the most, and more than own + 1
                [(victim, one)] = dropped.items()
                assert one == 1 and before[victim] == longest > own + 1
                assert after[victim] == before[victim] - 1 and after[tenant] == own + 1
            else:
                assert after[tenant] == own + 1
            assert pipeline.queued == sum(after.values()) <= queue
            if pipeline._by_len is not None:  # the index agrees with the queues
                indexed = {t: n for n, ts in pipeline._by_len.items() for t in ts}
                assert indexed == after and pipeline._max_len == max(after.values(), default=0)
    stats = pipeline.stats
    assert stats.spans_ended == pipeline.queued + drained + stats.dropped_spans
