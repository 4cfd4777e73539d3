"""Soak: one million spans across 10,000 tenants through a provider LRU of 100.

Each tenant is visited in turn with a request of ten spans, ten times over, so
the LRU misses and evicts 100,000 times. Checked: no span lost, every exported
span under its own tenant's Resource and project, resident memory flat after
the first pass over the tenants, the number of threads constant.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import psutil
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager

TENANTS = 10_000
SPANS = 1_000_000
SPANS_PER_VISIT = 10
SAMPLE_EVERY = 100_000
# Allowed RSS growth once every tenant has been seen: allocator noise, not a leak
# (a leak of one provider per miss would be >100 MB here).
RSS_SLACK_MB = 24


_PROJECTS = TelemetryConfig()


class _CountingExporter(SpanExporter):
    """Checks each span's Resource against the tenant it was started for; keeps counts only."""

    def __init__(self) -> None:
        self.exported = 0
        self.mixed = 0
        self.per_tenant: Counter[str] = Counter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            resource = span.resource.attributes
            tenant = str(resource["tenant.id"])
            expected = (span.attributes or {}).get("expected.tenant")
            if expected != tenant or resource[
                "openinference.project.name"
            ] != _PROJECTS.get_project_name(tenant):
                self.mixed += 1
            self.per_tenant[tenant] += 1
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_million_spans_over_ten_thousand_tenants_through_an_lru_of_one_hundred() -> None:
    exporter = _CountingExporter()
    manager = TelemetryManager(
        TelemetryConfig(
            max_cached_tenants=100,
            batch_config=BatchExportConfig(
                max_queue_size=20_000, max_export_batch_size=512, schedule_delay_millis=50
            ),
        ),
        exporter=exporter,
    )
    process = psutil.Process()
    tenants = [f"tenant-{i:05d}" for i in range(TENANTS)]
    rss_mb: list[float] = []
    threads: set[tuple[int, int]] = set()
    cached: set[int] = set()
    sent = 0
    while sent < SPANS:
        for tenant in tenants:
            attributes = {"expected.tenant": tenant}
            for _ in range(SPANS_PER_VISIT):
                manager.start_span("op", tenant_id=tenant, attributes=attributes).end()
            sent += SPANS_PER_VISIT
            if sent % SAMPLE_EVERY == 0:
                rss_mb.append(process.memory_info().rss / 2**20)
                threads.add((threading.active_count(), process.num_threads()))
                cached.add(manager.get_stats()["cached_tenants"])
    assert manager.force_flush(60_000)

    stats = manager.get_stats()
    assert exporter.exported == SPANS
    assert exporter.mixed == 0
    assert exporter.per_tenant == Counter({t: SPANS // TENANTS for t in tenants})
    assert stats["dropped_spans"] == 0
    assert stats["cache_misses"] == SPANS // SPANS_PER_VISIT
    assert stats["evictions"] == SPANS // SPANS_PER_VISIT - 100
    assert cached == {100}
    assert len(threads) == 1, threads  # one export thread, whatever the number of tenants
    assert stats["export_threads"] == 1
    print(f"\nsoak: RSS MB per 100k spans {[round(m, 1) for m in rss_mb]}; threads {threads}")
    # Memory: flat after the first pass (the first sample), within allocator noise.
    assert max(rss_mb[1:]) - rss_mb[0] < RSS_SLACK_MB, rss_mb
    manager.shutdown()
