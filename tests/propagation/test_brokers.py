"""Through real brokers: producers inject, a batch consumer links its batch span to every producer.

RabbitMQ (pika, the carrier in the AMQP message headers) and Redis (a list of
JSON messages carrying ``trace_context``, and a stream whose entry fields are
the carrier). The consumer's batch span has one link per producer span and
``messaging.batch.message_count``; each message is processed in its own span,
routed to the tenant the message carried because the consumer trusts its
own queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind
from span_links import linked_ids

from tenantrace import tenant_scope
from tenantrace.propagation import (
    EgressPolicy,
    TenantTrustPolicy,
    batch_span,
    inject_trace_context,
    message_span,
    propagate_context_to_dict,
    set_egress_policy,
)
from tenantrace.testing import CapturedSpan, SpanCapture

TENANTS = ("acme", "globex", "acme", "initech", "globex")
OUR_TENANTS = TenantTrustPolicy(allowed_tenants=frozenset({"acme", "globex", "initech"}))


@pytest.fixture(autouse=True)
def brokers_inside_our_boundary() -> None:
    """Baggage (the tenant) may go to our own brokers; the defaults are restored by conftest."""
    set_egress_policy(EgressPolicy.allow(["127.0.0.1"]))


def _producer_span(spans: SpanCapture, system: str, i: int, tenant: str) -> Any:
    return spans.manager.span(
        f"send {i}",
        tenant,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": system, "messaging.operation.type": "send"},
    )


def _assert_batch(spans: SpanCapture, system: str, destination: str, count: int) -> None:
    producers = [s for s in spans.spans() if s.name.startswith("send ")]
    assert len(producers) == count
    name = f"process {destination}"
    [batch] = [s for s in spans.by_name(name) if "messaging.batch.message_count" in s.attributes]
    assert batch.kind == "CONSUMER"
    assert batch.attributes["messaging.batch.message_count"] == count
    assert batch.attributes["messaging.system"] == system
    assert batch.tenant == "consumer"
    assert batch.raw is not None
    linked = sorted(linked_ids(batch))
    assert linked == sorted((p.trace_id, p.span_id) for p in producers)

    processed = [s for s in spans.by_name(name) if s.span_id != batch.span_id]
    assert len(processed) == count
    by_parent: dict[str, CapturedSpan] = {}
    for span in processed:
        # One trace, one tenant: each message's processing span continues its
        # (trusted) producer's trace in the producer's tenant, linked to the batch.
        assert linked_ids(span) == {(batch.trace_id, batch.span_id)}
        by_parent[span.parent_id or ""] = span
    for producer in producers:
        processing = by_parent[producer.span_id]
        assert (processing.tenant, processing.trace_id) == (producer.tenant, producer.trace_id)
        assert processing.project == f"cogniverse-{producer.tenant}"


# --------------------------------------------------------------------- RabbitMQ


@pytest.fixture
def rabbit_channel(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    import pika

    connection = pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1", 5672, credentials=pika.PlainCredentials("guest", "guest")
        )
    )
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # publish returns once the broker holds the message
        yield channel
    finally:
        connection.close()


@pytest.mark.rabbitmq
def test_rabbitmq_batch_consumer_links_every_producer(
    spans: SpanCapture, rabbit_channel: Any
) -> None:
    import pika

    queue = rabbit_channel.queue_declare(queue="", exclusive=True).method.queue
    for i, tenant in enumerate(TENANTS):
        with _producer_span(spans, "rabbitmq", i, tenant):
            headers = inject_trace_context(url="amqp://127.0.0.1:5672/")
            rabbit_channel.basic_publish(
                "",
                queue,
                json.dumps({"order": i}).encode(),
                pika.BasicProperties(headers=headers),
            )

    received: list[dict[str, Any]] = []
    while len(received) < len(TENANTS):  # bounded: the confirmed messages are all there
        method, properties, _body = rabbit_channel.basic_get(queue, auto_ack=True)
        assert method is not None, f"only {len(received)} messages arrived"
        received.append(properties.headers)

    with tenant_scope("consumer"), batch_span(received, system="rabbitmq", destination=queue):
        for headers in received:
            with message_span(headers, system="rabbitmq", destination=queue, trust=OUR_TENANTS):
                pass
    _assert_batch(spans, "rabbitmq", queue, len(TENANTS))


# ------------------------------------------------------------------------ Redis


@pytest.fixture
def redis_client(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    keys: list[str] = []
    client.test_keys = keys  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.redis
def test_redis_list_batch_consumer_links_every_producer(
    spans: SpanCapture, redis_client: Any
) -> None:
    key = f"tenantrace-test:{uuid.uuid4().hex}"
    redis_client.test_keys.append(key)
    for i, tenant in enumerate(TENANTS):
        with _producer_span(spans, "redis", i, tenant):
            message = propagate_context_to_dict({"order": i}, url="redis://127.0.0.1:6379/0")
            redis_client.rpush(key, json.dumps(message))

    batch = [json.loads(raw) for raw in redis_client.lpop(key, len(TENANTS))]
    with tenant_scope("consumer"), batch_span(batch, system="redis", destination=key):
        for message in batch:
            with message_span(message, system="redis", destination=key, trust=OUR_TENANTS):
                assert isinstance(message["order"], int)
    _assert_batch(spans, "redis", key, len(TENANTS))


@pytest.mark.redis
def test_redis_stream_batch_consumer_links_every_producer(
    spans: SpanCapture, redis_client: Any
) -> None:
    stream = f"tenantrace-test:{uuid.uuid4().hex}"
    redis_client.test_keys.append(stream)
    for i, tenant in enumerate(TENANTS):
        with _producer_span(spans, "redis", i, tenant):
            fields = {"order": str(i), **inject_trace_context(url="redis://127.0.0.1:6379/0")}
            redis_client.xadd(stream, fields)

    [(_, entries)] = redis_client.xread({stream: "0-0"}, count=len(TENANTS))
    batch = [fields for _entry_id, fields in entries]  # bytes keys and values, as Redis gives
    assert all(b"traceparent" in fields for fields in batch)
    with tenant_scope("consumer"), batch_span(batch, system="redis", destination=stream):
        for fields in batch:
            with message_span(fields, system="redis", destination=stream, trust=OUR_TENANTS):
                pass
    _assert_batch(spans, "redis", stream, len(TENANTS))
