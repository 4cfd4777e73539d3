"""Queue propagation: producers of two tenants, one batch consumer linking to every producer.

One trace, one tenant: the batch span is the worker's, in a trace of its own,
linked to every producer. Each message is processed in the tenant it carried
(our own queue: an allowlist of tenants), and since that is not the worker's
tenant, its span continues its producer's trace, linked to the batch span: every
trace holds one tenant's spans, so each lands whole in that tenant's project.

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
            # Each message in the tenant it carried (our own queue: allowlisted
            # tenants): in its producer's trace, linked to the batch span.
            with message_span(message, "charge", trust=OUR_TENANTS):
                pass

    print()
    for captured in spans.spans():
        print(
            f"{captured.name:18} tenant={captured.tenant:15} links={captured.links} "
            f"trace={captured.trace_id[:8]} parent={(captured.parent_id or '-')[:8]}"
        )

    batch_process = spans.one("process orders")
    assert batch_process.links == 3  # one per producer
    assert batch_process.attributes["messaging.batch.message_count"] == 3
    assert batch_process.parent_id is None
    charges = spans.by_name("charge")
    assert [s.tenant for s in charges] == ["acme", "globex", "acme"]
    for number, charge in enumerate(charges):
        place = spans.one(f"order.place #{number}")
        assert (charge.trace_id, charge.parent_id) == (place.trace_id, place.span_id)
        assert charge.raw is not None
        [link] = charge.raw.links  # to the batch span
        assert f"{link.context.span_id:016x}" == batch_process.span_id
    tenants_of: dict[str, set[str | None]] = {}
    for captured in spans.spans():
        tenants_of.setdefault(captured.trace_id, set()).add(captured.tenant)
    assert all(len(tenants) == 1 for tenants in tenants_of.values()), "one trace, one tenant"
