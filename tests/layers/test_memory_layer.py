"""``trace_recall`` / ``trace_learn``: RETRIEVER and CHAIN spans with ``memory.*`` attributes."""

from __future__ import annotations

import asyncio

import pytest

from tenantrace import TelemetryConfig, TelemetryLevel, tenant_scope
from tenantrace.layers import trace_learn, trace_recall
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans


def test_recall_whole_span(spans: SpanCapture) -> None:
    query = "what did we decide about the Q3 launch?"
    with trace_recall(query, max_concepts=10, tenant_id="user_123") as span:
        span.set_attribute("concepts_found", 4)
    [recall] = spans.spans()
    assert recall == CapturedSpan(
        name="memory.recall",
        tenant="user_123",
        project="cogniverse-user_123",
        trace_id=recall.trace_id,
        span_id=recall.span_id,
        parent_id=None,
        kind="INTERNAL",
        status="UNSET",
        attributes={
            "tenant.id": "user_123",
            "openinference.span.kind": "RETRIEVER",
            "memory.operation": "recall",
            "memory.max_concepts": 10,
            "memory.query_length": len(query),
            "input.value": query,
            "concepts_found": 4,
        },
    )


def test_long_query_is_truncated_or_left_out(spans: SpanCapture) -> None:
    query = "q" * 10_000
    with trace_recall(query, tenant_id="acme"):
        pass
    with trace_recall(query, tenant_id="acme", max_input_chars=10):
        pass
    with trace_recall("private words", tenant_id="acme", record_input=False):
        pass
    default, short, hidden = spans.spans()
    assert default.attributes["input.value"] == "q" * 255 + "…"
    assert default.attributes["memory.query_length"] == 10_000
    assert short.attributes["input.value"] == "q" * 9 + "…"
    assert "input.value" not in hidden.attributes
    assert hidden.attributes["memory.query_length"] == len("private words")


async def test_learn_async_and_under_the_current_tenant(spans: SpanCapture) -> None:
    with tenant_scope("acme"):
        async with trace_learn("user said hi", concepts=3, source="conversation") as span:
            await asyncio.sleep(0)
            span.set_attribute("memory.new_links", 2)
    [learn] = spans.spans()
    assert learn.name == "memory.learn" and learn.tenant == "acme"
    assert learn.attributes == {
        "tenant.id": "acme",
        "openinference.span.kind": "CHAIN",
        "memory.operation": "learn",
        "memory.concepts": 3,
        "memory.source": "conversation",
        "memory.content_length": len("user said hi"),
        "input.value": "user said hi",
        "memory.new_links": 2,
    }


def test_recall_error_is_recorded(spans: SpanCapture) -> None:
    with pytest.raises(TimeoutError), trace_recall("q", tenant_id="acme"):
        raise TimeoutError("vector store timed out")
    [span] = spans.spans()
    assert span.status == "ERROR" and span.attributes["error.type"] == "TimeoutError"


def test_memory_spans_are_detailed_level() -> None:
    with capture_spans(TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")) as cap:
        with trace_recall("q", tenant_id="acme") as span:
            assert not span.is_recording()
        with trace_learn("c", tenant_id="acme", level=TelemetryLevel.BASIC):
            pass
        assert cap.names() == ["memory.learn"]
