"""The CONTINUUM seed's Context Propagation section and Patterns 3 and 5, run as written.

Only the imports changed (``continuum.observability[.context]`` ->
``tenantrace.propagation`` / ``tenantrace.layers``), plus what the seed leaves
to the reader: a peer service to call (a real FastAPI app under uvicorn; the
seed's ``http://peer-service`` becomes its loopback address), a queue, and
the functions the samples call (``sync_data``, ``process_item``...).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from span_links import linked_ids

from servers import serve_asgi

# The seed's imports, from the top-level package as a migrating user writes them.
from tenantrace import (
    create_carrier_from_span,
    extract_context_from_dict,
    extract_trace_context,
    get_baggage,
    get_trace_id,
    get_tracer,
    inject_trace_context,
    link_spans,
    propagate_context_to_dict,
    set_baggage,
    set_default_trust_policy,
    tenant_scope,
)
from tenantrace.testing import SpanCapture

logger = logging.getLogger(__name__)
tracer = get_tracer(__name__)

# --------------------------------------------------- HTTP (incoming), as written

app = FastAPI()
synced: list[str | None] = []


def sync_data() -> dict[str, Any]:
    synced.append(get_trace_id())
    return {"synced": True, "trace_id": get_trace_id()}


@app.post("/sync")
async def sync_endpoint(request: Request):  # type: ignore[no-untyped-def]
    # Extract trace context from headers
    ctx = extract_trace_context(dict(request.headers))

    # New spans will be children of the remote span
    with tracer.start_as_current_span("sync_data", context=ctx):
        result = sync_data()

    return result


@pytest.fixture
def peer_service(spans: SpanCapture) -> Iterator[str]:
    with serve_asgi(app) as url:
        yield url


def test_http_outgoing_and_incoming(spans: SpanCapture, peer_service: str) -> None:
    data = {"memories": 3}
    set_default_trust_policy(True)  # the peer is our own service: it honours the tenant
    with tenant_scope("user_123"), spans.manager.span("federation.sync.push"):
        # ---- HTTP Requests (Outgoing), as written
        # Inject trace context into headers
        headers = inject_trace_context()
        response = httpx.post(
            f"{peer_service}/sync",  # the seed's "http://peer-service/sync"
            json=data,
            headers=headers,
        )
    assert response.json()["synced"] is True
    push, handled = spans.one("federation.sync.push"), spans.one("sync_data")
    assert handled.trace_id == push.trace_id == response.json()["trace_id"]
    assert handled.parent_id == push.span_id
    assert (handled.tenant, handled.project) == ("user_123", "cogniverse-user_123")


def test_http_incoming_from_an_untrusted_caller_gets_neither_the_trace_nor_the_tenant(
    spans: SpanCapture, peer_service: str
) -> None:
    with tenant_scope("user_123"), spans.manager.span("client"):
        headers = inject_trace_context()
    httpx.post(f"{peer_service}/sync", json={}, headers=headers)
    handled, client = spans.one("sync_data"), spans.one("client")
    assert handled.tenant == "default"
    # One trace, one tenant: a new trace, linked to the caller's span.
    assert handled.trace_id != client.trace_id
    assert [f"{link.context.span_id:016x}" for link in handled.raw.links] == [client.span_id]


# -------------------------------------------------------------- Message queues


class Queue:
    """The seed's ``queue``: send() and receive()."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self._items.append(message)

    def receive(self) -> dict[str, Any]:
        return self._items.pop(0)


def process_message(message: dict[str, Any]) -> None:
    assert message["event_type"] == "memory_added"


def test_message_queues(spans: SpanCapture) -> None:
    set_default_trust_policy(True)  # our own queue: the consumer honours the tenant
    queue = Queue()
    with tenant_scope("user_123"), spans.manager.span("memory.learn"):
        # Producer: Inject context into message
        message = {
            "event_type": "memory_added",
            "data": {"concept": "tracing"},  # the seed's {...}
        }
        message = propagate_context_to_dict(message)
        queue.send(message)

    # Consumer: Extract context from message
    message = queue.receive()
    ctx = extract_context_from_dict(message)

    with tracer.start_as_current_span("process_message", context=ctx):
        process_message(message)

    produced, consumed = spans.one("memory.learn"), spans.one("process_message")
    assert (consumed.trace_id, consumed.parent_id) == (produced.trace_id, produced.span_id)
    assert consumed.tenant == "user_123"


# -------------------------------------------------------------------- Baggage


def test_baggage_user_context(spans: SpanCapture, caplog: pytest.LogCaptureFixture) -> None:
    with spans.manager.span("request"):
        # Set baggage at entry point
        set_baggage("tenant_id", "user_123")
        set_baggage("user_tier", "premium")
        set_baggage("request_id", str(uuid.uuid4()))

        # Baggage automatically propagates to all child spans and downstream services

        # Retrieve baggage anywhere in call stack
        with caplog.at_level(logging.INFO, logger=__name__):
            tenant_id = get_baggage("tenant_id")
            logger.info(f"Processing for tenant: {tenant_id}")  # the seed's line

        downstream = inject_trace_context()
    assert "Processing for tenant: user_123" in caplog.text
    assert "tenant_id=user_123" in downstream["baggage"]
    assert "user_tier=premium" in downstream["baggage"]
    assert get_baggage("request_id", extract_trace_context(downstream)) is not None


# ------------------------------------------------------------ Pattern 3, as written


def process_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"done": item["id"]}


def process_batch(items: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    # Create links to parent spans of all items
    links = []
    for item in items:
        if "trace_context" in item:
            link = link_spans(item["trace_context"])
            if link:
                links.append(link)

    # Create span with links to all parent contexts
    with tracer.start_as_current_span("batch_process", links=links) as span:
        span.set_attribute("batch_size", len(items))

        results = []
        for i, item in enumerate(items):
            with tracer.start_as_current_span(f"process_item_{i}"):
                result = process_item(item)
                results.append(result)

        return results


def test_pattern_3_batch_processing(spans: SpanCapture) -> None:
    items = []
    for i, tenant in enumerate(("acme", "globex", "acme")):
        with tenant_scope(tenant), spans.manager.span(f"enqueue-{i}"):
            items.append(propagate_context_to_dict({"id": i}))
    items.append({"id": 3})  # an item without a context is processed, not linked

    with tenant_scope("worker"):
        assert process_batch(items) == [{"done": i} for i in range(4)]

    batch = spans.one("batch_process")
    assert batch.attributes["batch_size"] == 4
    assert batch.raw is not None
    linked = linked_ids(batch)
    producers = [spans.one(f"enqueue-{i}") for i in range(3)]
    assert linked == {(p.trace_id, p.span_id) for p in producers}
    for i in range(4):
        item_span = spans.one(f"process_item_{i}")
        assert (item_span.parent_id, item_span.tenant) == (batch.span_id, "worker")


# ------------------------------------------------------------ Pattern 5, as written

finished: dict[str, Any] = {}


async def process_async(data: dict[str, Any]) -> None:
    finished["trace_id"] = get_trace_id()
    finished["data"] = data
    finished["event"].set()


async def start_background_task(data):  # type: ignore[no-untyped-def]
    # Create span for initiating the task
    with tracer.start_as_current_span("initiate_background_task") as span:
        span.set_attribute("task_type", "memory_sync")

        # Capture trace context for background task
        carrier = create_carrier_from_span(span)

        # Pass carrier to background task
        asyncio.create_task(background_task(data, carrier))  # noqa: RUF006 - as the seed does


async def background_task(data, trace_carrier):  # type: ignore[no-untyped-def]
    # Extract parent context
    ctx = extract_trace_context(trace_carrier)

    # Create child span in background task
    with tracer.start_as_current_span("background_task", context=ctx) as span:
        span.set_attribute("background", True)
        await process_async(data)


async def test_pattern_5_long_running_background_task(spans: SpanCapture) -> None:
    finished.clear()
    finished["event"] = asyncio.Event()
    async with tenant_scope("acme"):
        await start_background_task({"sync": "memory"})
    await asyncio.wait_for(finished["event"].wait(), timeout=10)
    await asyncio.sleep(0)  # let background_task leave its span after process_async returned

    initiate, background = spans.one("initiate_background_task"), spans.one("background_task")
    assert background.trace_id == initiate.trace_id == finished["trace_id"]
    assert background.parent_id == initiate.span_id
    assert background.attributes == {"background": True}
    assert initiate.attributes == {"task_type": "memory_sync"}
    assert background.tenant == initiate.tenant == "acme"
    assert finished["data"] == {"sync": "memory"}
