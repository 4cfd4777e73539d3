"""Queue propagation: producers of two tenants, one batch consumer linking to every producer.

Run: python examples/propagation_queue.py  (no broker: a queue.Queue of JSON strings
stands in for RabbitMQ or Redis; the test suite runs the same through the real ones)
"""

import json
import queue

from tenantrace import tenant_scope
from tenantrace.propagation import (
    TenantTrustPolicy,
    batch_span,
    message_span,
    propagate_context_to_dict,
)
from tenantrace.testing import capture_spans

broker: "queue.Queue[str]" = queue.Queue()
OUR_TENANTS = TenantTrustPolicy(allowed_tenants=frozenset({"acme", "globex"}))

with capture_spans() as spans:
    for number, tenant in enumerate(["acme", "globex", "acme"]):
        with tenant_scope(tenant), spans.manager.span(f"order.place #{number}"):
            message = propagate_context_to_dict({"order": number})  # a copy + "trace_context"
            broker.put(json.dumps(message))

    batch = [json.loads(broker.get_nowait()) for _ in range(broker.qsize())]
    print("one message on the wire:", json.dumps(batch[0]))

    with (
        tenant_scope("billing-worker"),
        batch_span(batch, system="rabbitmq", destination="orders") as span,
    ):
        for message in batch:
            # Each message: a child of the batch span, linked to its producer, and
            # routed to the tenant it carried (our own queue: allowlisted tenants).
            with message_span(message, "charge", trust=OUR_TENANTS):
                pass

    print()
    for captured in spans.spans():
        print(
            f"{captured.name:18} tenant={captured.tenant:15} links={captured.links} "
            f"trace={captured.trace_id[:8]}"
        )

    [batch_process] = [s for s in spans.spans() if s.name == "process orders"]
    assert batch_process.links == 3
    assert batch_process.attributes["messaging.batch.message_count"] == 3
    assert [s.tenant for s in spans.by_name("charge")] == ["acme", "globex", "acme"]
