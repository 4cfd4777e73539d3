"""Celery: each task runs in the tenant, and the trace, of the code that sent it.

Run: python examples/celery_tasks.py

The broker is Redis on 127.0.0.1:6379, else RabbitMQ on 127.0.0.1:5672, with a
worker started inside this script (threads pool) so that it runs by itself;
with neither broker, Celery's eager mode runs the tasks inline. In production
the worker is its own process (``celery -A tasks worker``) and calls the same
``instrument_celery()`` at import.
"""

import socket
import uuid
from contextlib import nullcontext

from celery import Celery
from celery.contrib.testing.worker import start_worker

from tenantrace import current_tenant, get_telemetry_manager, tenant_scope
from tenantrace.propagation import get_trace_id
from tenantrace.propagation.celery import instrument_celery
from tenantrace.testing import capture_spans


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


if listening(6379):
    broker, backend = "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"
elif listening(5672):
    broker, backend = "amqp://guest:guest@127.0.0.1:5672//", "rpc://"
else:
    broker, backend = "memory://", None  # eager: tasks run inline, no worker

app = Celery("celery_tasks", broker=broker, backend=backend)
queue = f"tenantrace-example-{uuid.uuid4().hex[:8]}"
app.conf.update(
    task_default_queue=queue,
    task_always_eager=backend is None,
    broker_heartbeat=2,  # lets the in-script worker notice promptly that it should stop
    worker_hijack_root_logger=False,
)

# The one line, in the producer and in the worker: the tenant and the trace
# travel in one message header; the worker trusts its own broker.
instrument_celery()


@app.task(name="docs.summarize")
def summarize(document: str) -> dict[str, str | None]:
    # Runs in the sender's tenant: this span goes to that tenant's project.
    with get_telemetry_manager().span("summarize.llm"):
        return {"document": document, "tenant": current_tenant(), "trace": get_trace_id()}


with capture_spans() as spans:
    eager = backend is None
    worker = (
        nullcontext()
        if eager
        else start_worker(
            app, pool="threads", concurrency=2, perform_ping_check=False, loglevel="WARNING"
        )
    )
    print("broker:", "none (eager mode)" if eager else broker)
    sent = {}
    with worker:
        for tenant in ("acme", "globex"):
            with tenant_scope(tenant), spans.manager.span("upload"):
                sent[tenant] = (get_trace_id(), summarize.delay(f"report-{tenant}.pdf"))
        for tenant, (trace_id, result) in sent.items():
            answer = result.get(timeout=10)
            print(answer)
            assert answer["tenant"] == tenant and answer["trace"] == trace_id
    # The worker has stopped: every task span has ended.
    if not eager:
        with app.connection_for_write() as connection:
            app.amqp.queues[queue].bind(connection.default_channel).delete()

    print()
    for span in spans.spans():
        print(f"{span.name:24} {span.kind:9} tenant={span.tenant:7} trace={span.trace_id[:8]}")

    for tenant in ("acme", "globex"):
        mine = [s for s in spans.spans() if s.tenant == tenant]
        assert {s.name for s in mine} >= {"upload", "docs.summarize process", "summarize.llm"}
        assert all(s.project == f"cogniverse-{tenant}" for s in mine)
