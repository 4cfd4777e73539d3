"""A real Phoenix killed mid-run (SIGKILL) and restarted on the same ports and data.

Spans sent before the crash and after the restart are in each tenant's
project, read back through Phoenix's REST API; spans sent while it was down are
counted as dropped, per tenant, and are not in Phoenix.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from phoenix_process import PhoenixProcess

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager

TENANTS = ("acme", "globex")
PER_PHASE = 10


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[PhoenixProcess]:
    server = PhoenixProcess(tmp_path).start()
    try:
        yield server
    finally:
        server.kill()


def _emit(manager: TelemetryManager, phase: str) -> None:
    for i in range(PER_PHASE):
        with manager.span(phase, tenant_id=TENANTS[i % 2], attributes={"i": i}):
            pass


def _names(phoenix: PhoenixProcess, tenant: str, expected: int) -> Counter[str]:
    """Span names in the tenant's project, once Phoenix has ingested ``expected`` of them."""
    deadline = time.monotonic() + 30
    while True:
        project = TelemetryConfig().get_project_name(tenant)
        names = Counter(span["name"] for span in phoenix.spans(project))
        if sum(names.values()) >= expected or time.monotonic() > deadline:
            return names
        time.sleep(0.2)  # Phoenix ingests asynchronously; nothing to wait on but its API


@pytest.mark.phoenix
@pytest.mark.timeout(400)
def test_phoenix_killed_and_restarted_loses_only_what_was_sent_while_down(
    phoenix: PhoenixProcess,
) -> None:
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=phoenix.grpc_endpoint,
            batch_config=BatchExportConfig(schedule_delay_millis=10, export_timeout_millis=2000),
        )
    )
    try:
        _emit(manager, "before")
        assert manager.force_flush(10_000)
        assert manager.get_stats()["exported_spans"] == PER_PHASE
        # Phoenix acknowledges a request before its batch inserter writes it to the
        # database: a crash right after the acknowledgement loses those spans, and no
        # exporter can tell. So the crash comes once they are readable.
        for tenant in TENANTS:
            assert _names(phoenix, tenant, PER_PHASE // 2) == {"before": PER_PHASE // 2}

        phoenix.kill()
        _emit(manager, "during")
        assert manager.force_flush(10_000) is False  # completes, and reports the loss
        outage = manager.get_stats()
        assert outage["dropped_spans"] == PER_PHASE
        assert outage["dropped_spans_by_tenant"] == {t: PER_PHASE // 2 for t in TENANTS}

        phoenix.start()  # same ports, same working directory
        _emit(manager, "after")
        assert manager.force_flush(10_000)
        stats = manager.get_stats()
        assert stats["exported_spans"] == 2 * PER_PHASE
        assert stats["dropped_spans"] == PER_PHASE
        for tenant in TENANTS:
            names = _names(phoenix, tenant, PER_PHASE)
            assert names == {"before": PER_PHASE // 2, "after": PER_PHASE // 2}, (tenant, names)
    finally:
        manager.shutdown(timeout_millis=2000)
