"""Tenants never mix under threads, asyncio and LRU churn; threads stay constant."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.layers import trace_function
from tenantrace.testing import SpanCapture

TENANTS = [f"tenant-{i:02d}" for i in range(50)]


def _assert_each_span_under_its_own_tenant(exported: list[tuple[str, str, str]]) -> None:
    for tenant_attr, resource_tenant, project in exported:
        assert tenant_attr == resource_tenant, (tenant_attr, resource_tenant)
        assert project == TelemetryConfig().get_project_name(resource_tenant)


def test_fifty_tenants_on_threads_never_mix() -> None:
    memory = InMemorySpanExporter()
    manager = TelemetryManager(
        TelemetryConfig(
            batch_config=BatchExportConfig(max_queue_size=20_000, schedule_delay_millis=5)
        ),
        exporter=memory,
    )
    barrier = threading.Barrier(10)

    def work(worker: int) -> None:
        barrier.wait()
        for round_ in range(20):
            tenant = TENANTS[(worker * 7 + round_) % len(TENANTS)]
            with (
                tenant_scope(tenant),
                manager.span("request", attributes={"expected.tenant": tenant}),
                manager.span("child", attributes={"expected.tenant": tenant}),
            ):
                pass

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(work, range(10)))
    assert manager.force_flush(10_000)
    finished = memory.get_finished_spans()
    assert len(finished) == 10 * 20 * 2
    _assert_each_span_under_its_own_tenant(
        [
            (
                str(s.attributes["expected.tenant"]),  # type: ignore[index]
                str(s.resource.attributes["tenant.id"]),
                str(s.resource.attributes["openinference.project.name"]),
            )
            for s in finished
        ]
    )
    assert manager.get_stats()["dropped_spans"] == 0
    manager.shutdown()


async def test_fifty_tenants_on_asyncio_tasks_never_mix(spans: SpanCapture) -> None:
    @trace_function(name="handle")
    async def handle(tenant: str) -> None:
        await asyncio.sleep(0)
        with spans.manager.span("step", attributes={"expected.tenant": tenant}):
            await asyncio.sleep(0)

    async def request(tenant: str) -> None:
        with tenant_scope(tenant):
            await handle(tenant)

    await asyncio.gather(*(request(t) for t in TENANTS for _ in range(4)))
    steps = spans.by_name("step")
    assert len(steps) == 200
    _assert_each_span_under_its_own_tenant(
        [(str(s.attributes["expected.tenant"]), str(s.tenant), str(s.project)) for s in steps]
    )
    handles = {s.span_id: s for s in spans.by_name("handle")}
    for step in steps:
        assert handles[step.parent_id or ""].tenant == step.tenant


def test_concurrent_misses_build_one_provider_per_tenant() -> None:
    manager = TelemetryManager(TelemetryConfig(exporter_type="none"))
    barrier = threading.Barrier(16)
    seen: list[object] = []

    def grab() -> None:
        barrier.wait()
        seen.append(manager.provider_for("same-tenant"))

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in seen}) == 1
    assert manager.get_stats()["providers_created"] == 1
    manager.shutdown()


@pytest.mark.slow
def test_ten_thousand_tenants_through_an_lru_of_one_hundred() -> None:
    memory = InMemorySpanExporter()
    manager = TelemetryManager(
        TelemetryConfig(
            max_cached_tenants=100,
            batch_config=BatchExportConfig(
                max_queue_size=4096, schedule_delay_millis=5, drop_on_queue_full=False
            ),
        ),
        exporter=memory,
    )
    threads_before = threading.active_count()
    peak_threads = threads_before
    for i in range(10_000):
        tenant = f"t{i}"
        # A span still open while its provider is evicted must not be lost.
        with manager.span("outer", tenant_id=tenant, attributes={"n": i}):
            if i % 1000 == 0:
                peak_threads = max(peak_threads, threading.active_count())
    assert manager.force_flush(30_000)
    stats = manager.get_stats()
    finished = memory.get_finished_spans()
    numbers = Counter(int(s.attributes["n"]) for s in finished)  # type: ignore[index, arg-type]
    assert len(finished) == 10_000
    assert set(numbers.values()) == {1}  # each exactly once
    for span in finished:
        assert span.resource.attributes["tenant.id"] == f"t{span.attributes['n']}"  # type: ignore[index]
    assert stats["cached_tenants"] == 100
    assert stats["evictions"] == 9_900
    assert stats["dropped_spans"] == 0
    assert peak_threads == threads_before  # one export thread, whatever the tenant count
    manager.shutdown()


def test_span_open_across_eviction_is_exported_under_its_tenant() -> None:
    memory = InMemorySpanExporter()
    manager = TelemetryManager(
        TelemetryConfig(max_cached_tenants=1, batch_config=BatchExportConfig(use_sync_export=True)),
        exporter=memory,
    )
    with (
        manager.span("long", tenant_id="first"),
        manager.span("evicts-first", tenant_id="second"),
    ):
        pass
    assert manager.get_stats()["evictions"] >= 1
    by_name = {s.name: s.resource.attributes["tenant.id"] for s in memory.get_finished_spans()}
    assert by_name == {"long": "first", "evicts-first": "second"}
    manager.shutdown()


def test_threads_churning_tenants_through_a_small_lru_lose_and_misfile_nothing() -> None:
    """Evicted providers are taken back without the registry's lock: threads racing
    over the same tenants through an LRU of 8 still file every span under its tenant."""
    memory = InMemorySpanExporter()
    manager = TelemetryManager(
        TelemetryConfig(
            max_cached_tenants=8,
            batch_config=BatchExportConfig(max_queue_size=40_000, drop_on_queue_full=False),
        ),
        exporter=memory,
    )
    tenants = [f"churn-{i}" for i in range(64)]
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(1500):
            tenant = tenants[(i * 7 + worker) % len(tenants)]
            with manager.span("churn", tenant_id=tenant, attributes={"expected": tenant}):
                pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert manager.force_flush(30_000)
    stats = manager.get_stats()
    finished = memory.get_finished_spans()
    assert len(finished) == 8 * 1500
    for span in finished:
        assert span.resource.attributes["tenant.id"] == span.attributes["expected"]  # type: ignore[index]
        assert span.attributes["tenant.id"] == span.attributes["expected"]  # type: ignore[index]
    assert stats["cached_tenants"] <= 8
    assert stats["dropped_spans"] == 0
    manager.shutdown()
