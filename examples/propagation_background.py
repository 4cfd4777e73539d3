"""Background work keeps the trace and the tenant: asyncio tasks and a thread pool.

Run: python examples/propagation_background.py  (no server; spans printed from memory)

- a child task: its span belongs to the request's trace;
- a linked task: a new trace of its own, same tenant, linked back to the request;
- a thread-pool job: plain ``pool.submit`` loses the context, ``submit_in_context``
  and ``bind_context`` keep it.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tenantrace import current_tenant, tenant_scope
from tenantrace.propagation import (
    bind_context,
    create_task_in_context,
    get_trace_id,
    submit_in_context,
)
from tenantrace.testing import capture_spans


async def refresh_cache() -> str | None:
    await asyncio.sleep(0)
    return current_tenant()


async def handle_request() -> None:
    with tenant_scope("acme"), spans.manager.span("request"):
        child = create_task_in_context(refresh_cache(), span_name="cache.refresh")
        linked = create_task_in_context(refresh_cache(), span_name="reindex", mode="linked")
        print("request trace       :", get_trace_id())
    print("child task tenant   :", await child)
    print("linked task tenant  :", await linked)


with capture_spans() as spans:
    asyncio.run(handle_request())

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        tenant_scope("globex"),
        spans.manager.span("batch.request"),
    ):
        print("plain submit        :", pool.submit(current_tenant).result())
        print("submit_in_context   :", submit_in_context(pool, current_tenant).result())
        pool.submit(bind_context(current_tenant, span_name="thumbnail")).result()

    print()
    for span in spans.spans():
        parent = span.parent_id or "-"
        print(
            f"{span.name:14} tenant={span.tenant:7} trace={span.trace_id[:8]} "
            f"parent={parent[:8]} links={span.links}"
        )

    request, child_span, linked_span = (
        spans.one("request"),
        spans.one("cache.refresh"),
        spans.one("reindex"),
    )
    assert child_span.trace_id == request.trace_id and child_span.parent_id == request.span_id
    assert linked_span.trace_id != request.trace_id and linked_span.links == 1
    assert child_span.tenant == linked_span.tenant == "acme"
    assert spans.one("thumbnail").tenant == "globex"
