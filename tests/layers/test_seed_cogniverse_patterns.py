"""The Cogniverse seed's Integration Patterns 1-4, run as written.

Only the imports changed (``cogniverse_foundation.telemetry.*`` -> ``tenantrace``),
plus what the samples leave to the reader: an encoder, a Vespa client, entity
extraction, an agent registry. Pattern 4's fixture exports over OTLP/gRPC to
``localhost:4317`` as written, so a real OTLP trace receiver listens there and
the test checks what the sample only describes: each tenant's spans arrive
under their own project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import pytest
from opentelemetry.trace import Status, StatusCode

from otlp_receivers import GrpcReceiver, decode_attributes, spans_of
from tenantrace import (
    BatchExportConfig,
    TelemetryConfig,
    TelemetryManager,
    get_telemetry_manager,
)
from tenantrace.testing import SpanCapture

# ---------------------------------------------------------------- the reader's parts


class Encoder:
    def encode(self, query: str) -> list[float]:
        return [0.1] * 8


class VespaClient:
    def search(self, embedding: list[float]) -> list[str]:
        return ["video-1", "video-2", "video-3"]


class Modality(Enum):
    VIDEO = "video"


@dataclass
class Agent:
    name: str


# ------------------------------------------------- Pattern 1: Agent Instrumentation


class VideoSearchAgent:
    def __init__(self, config):  # type: ignore[no-untyped-def]
        self.config = config
        self.telemetry = get_telemetry_manager()
        self.encoder = Encoder()
        self.vespa_client = VespaClient()

    def search(self, query: str, tenant_id: str = "default"):  # type: ignore[no-untyped-def]
        # Create root span for the search operation
        with self.telemetry.span(
            name="video_agent.search",
            tenant_id=tenant_id,
            attributes={
                "agent.type": "video_search",
                "query.text": query,
                "query.length": len(query),
            },
        ) as root_span:
            # Embedding generation (child span)
            with self.telemetry.span(
                name="video_agent.encode_query", tenant_id=tenant_id
            ) as encode_span:
                embedding = self.encoder.encode(query)
                encode_span.set_attribute("embedding.dimension", len(embedding))

            # Vespa search (child span)
            with self.telemetry.span(
                name="video_agent.vespa_search", tenant_id=tenant_id
            ) as search_span:
                results = self.vespa_client.search(embedding)
                search_span.set_attribute("results.count", len(results))

            # Add final attributes to root span
            root_span.set_attribute("search.success", True)
            root_span.set_attribute("search.result_count", len(results))

            return results


def test_pattern_1_agent_instrumentation(spans: SpanCapture) -> None:
    agent = VideoSearchAgent(config={})
    assert agent.search("dunks", tenant_id="tenant-123") == ["video-1", "video-2", "video-3"]
    encode, search, root = spans.spans()
    assert root.name == "video_agent.search" and root.parent_id is None
    assert encode.parent_id == search.parent_id == root.span_id
    # Injective names: "-" in a tenant-only project is escaped (not tenant "tenant"'s "123").
    assert {s.project for s in (encode, search, root)} == {"cogniverse-tenant~123"}
    assert root.attributes == {
        "tenant.id": "tenant-123",
        "agent.type": "video_search",
        "query.text": "dunks",
        "query.length": 5,
        "search.success": True,
        "search.result_count": 3,
    }
    assert encode.attributes["embedding.dimension"] == 8
    assert search.attributes["results.count"] == 3


# ------------------------------------------ Pattern 2: Routing Agent with projects


class RoutingAgent:
    def __init__(self, config):  # type: ignore[no-untyped-def]
        self.telemetry = get_telemetry_manager()

    def extract_entities(self, query: str) -> list[str]:
        return query.split()

    def determine_modality(self, entities: list[str]) -> Modality:
        return Modality.VIDEO

    def select_agent(self, modality: Modality) -> Agent:
        return Agent("video_search")

    def route_query(self, query: str, tenant_id: str = "default"):  # type: ignore[no-untyped-def]
        # Use project_name parameter for separate orchestration project
        with self.telemetry.span(
            name="cogniverse.routing",
            tenant_id=tenant_id,
            project_name="orchestration",
            attributes={"routing.operation": "route_query"},
        ) as span:
            # Extract entities
            entities = self.extract_entities(query)
            span.set_attribute("routing.entities_found", len(entities))

            # Determine modality
            modality = self.determine_modality(entities)
            span.set_attribute("routing.chosen_modality", modality.value)

            # Select agent
            agent = self.select_agent(modality)
            span.set_attribute("routing.chosen_agent", agent.name)

            return {"modality": modality, "agent": agent, "confidence": 0.95}


def test_pattern_2_routing_agent_with_projects(spans: SpanCapture) -> None:
    result = RoutingAgent(config={}).route_query("show me dunks", tenant_id="acme")
    assert result["agent"].name == "video_search"
    [span] = spans.spans()
    assert span.project == "cogniverse-acme-orchestration" and span.tenant == "acme"
    assert span.attributes == {
        "tenant.id": "acme",
        "routing.operation": "route_query",
        "routing.entities_found": 3,
        "routing.chosen_modality": "video",
        "routing.chosen_agent": "video_search",
    }


# ------------------------------------------------ Pattern 3: Error Handling with Spans


class SearchService:
    def __init__(self):  # type: ignore[no-untyped-def]
        self.telemetry = get_telemetry_manager()
        self.failures_left = 0

    def _execute_search(self, query: str) -> list[str]:
        if self.failures_left:
            self.failures_left -= 1
            raise TimeoutError("vespa timed out")
        return [query]

    def search_with_retry(self, query: str, tenant_id: str = "default"):  # type: ignore[no-untyped-def]
        with self.telemetry.span(
            name="search_service.search_with_retry", tenant_id=tenant_id
        ) as span:
            max_retries = 3
            for attempt in range(max_retries):
                try:
                    span.add_event(f"attempt_{attempt + 1}")

                    results = self._execute_search(query)

                    span.set_attribute("search.attempts", attempt + 1)
                    span.set_attribute("search.success", True)
                    span.set_status(Status(StatusCode.OK))

                    return results

                except Exception as e:
                    span.add_event(f"attempt_{attempt + 1}_failed", attributes={"error": str(e)})

                    if attempt == max_retries - 1:
                        # Final retry failed
                        span.record_exception(e)
                        span.set_status(Status(StatusCode.ERROR, str(e)))
                        span.set_attribute("search.success", False)
                        raise


def test_pattern_3_error_handling(spans: SpanCapture) -> None:
    service = SearchService()
    service.failures_left = 1
    assert service.search_with_retry("q", tenant_id="acme") == ["q"]
    service.failures_left = 3
    with pytest.raises(TimeoutError):
        service.search_with_retry("q", tenant_id="acme")
    ok, failed = spans.spans()
    assert ok.status == "OK" and ok.attributes["search.attempts"] == 2
    assert ok.events == ["attempt_1", "attempt_1_failed", "attempt_2"]
    assert failed.status == "ERROR" and failed.attributes["search.success"] is False
    assert failed.events[:6] == [
        "attempt_1",
        "attempt_1_failed",
        "attempt_2",
        "attempt_2_failed",
        "attempt_3",
        "attempt_3_failed",
    ]
    assert "exception" in failed.events


# --------------------------------------------------- Pattern 4: Multi-Tenant Testing


def _projects(receiver: GrpcReceiver) -> dict[str, list[str]]:
    """Span ``tenant.data`` values by the project of the Resource they arrived under."""
    found: dict[str, list[str]] = {}
    for request in receiver.received():
        for resource, span in spans_of(request):
            data = decode_attributes(span.attributes)
            found.setdefault(resource["openinference.project.name"], []).append(data["tenant.data"])
    return found


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    """The shared real OTLP/gRPC receiver, on the ``localhost:4317`` the sample exports to."""
    try:
        found = GrpcReceiver(4317, max_workers=2)
    except RuntimeError:  # grpcio raises when it cannot bind the port
        found = None
    if found is None or found.port != 4317:  # older grpcio answers port 0 instead
        if found is not None:
            found.stop()
        pytest.skip("localhost:4317 is taken by another OTLP receiver")
    yield found
    found.stop()


@pytest.fixture
def telemetry_manager(receiver: GrpcReceiver) -> Iterator[TelemetryManager]:
    config = TelemetryConfig(
        enabled=True,
        otlp_enabled=True,
        batch_config=BatchExportConfig(use_sync_export=True),  # Sync for tests
    )
    manager = TelemetryManager(config)
    yield manager
    manager.force_flush(timeout_millis=5000)
    manager.shutdown()


def test_multi_tenant_isolation(
    telemetry_manager: TelemetryManager, receiver: GrpcReceiver
) -> None:
    # Tenant A
    with telemetry_manager.span("test_operation", tenant_id="tenant-a") as span:
        span.set_attribute("tenant.data", "sensitive-a")

    # Tenant B
    with telemetry_manager.span("test_operation", tenant_id="tenant-b") as span:
        span.set_attribute("tenant.data", "sensitive-b")

    # Flush spans
    assert telemetry_manager.force_flush()

    # Verify spans are in separate Phoenix projects
    # (would query Phoenix API to verify isolation)
    assert _projects(receiver) == {
        "cogniverse-tenant~a": ["sensitive-a"],
        "cogniverse-tenant~b": ["sensitive-b"],
    }
    assert telemetry_manager.get_stats()["export_failures"] == 0
