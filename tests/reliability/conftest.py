"""Fixtures of the reliability tests: fake collectors and managers pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from reliability_fakes import BlackHole, ManagerFactory, OtlpGrpcCollector, OtlpHttpCollector

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager


@pytest.fixture
def http_collector() -> Iterator[OtlpHttpCollector]:
    collector = OtlpHttpCollector().start()
    yield collector
    collector.stop()


@pytest.fixture
def grpc_collector() -> Iterator[OtlpGrpcCollector]:
    collector = OtlpGrpcCollector().start()
    yield collector
    collector.stop()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.stop()


@pytest.fixture
def otlp_manager() -> Iterator[ManagerFactory]:
    """Build managers exporting over real OTLP; each is shut down after the test."""
    made: list[TelemetryManager] = []

    def make(
        endpoint: str,
        protocol: str = "http/protobuf",
        *,
        timeout_ms: int = 1000,
        delay_ms: int = 20,
        queue: int = 2048,
        batch: int = 512,
        **config: Any,
    ) -> TelemetryManager:
        manager = TelemetryManager(
            TelemetryConfig(
                otlp_endpoint=endpoint,
                otlp_protocol=protocol,  # type: ignore[arg-type]
                batch_config=BatchExportConfig(
                    max_queue_size=queue,
                    max_export_batch_size=batch,
                    export_timeout_millis=timeout_ms,
                    schedule_delay_millis=delay_ms,
                ),
                **config,
            )
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown(timeout_millis=500)
