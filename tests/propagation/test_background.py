"""Background work keeps the trace and the tenant: asyncio tasks, thread pools, carriers."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace as trace_api

from tenantrace import current_tenant, tenant_scope
from tenantrace.propagation import (
    bind_context,
    create_carrier_from_span,
    create_task_in_context,
    extract_trace_context,
    get_baggage,
    get_span_id,
    get_trace_id,
    set_baggage,
    submit_in_context,
)
from tenantrace.testing import SpanCapture


def where() -> tuple[str | None, str | None]:
    """(trace id, tenant) of the code calling it."""
    return get_trace_id(), current_tenant()


def test_get_trace_id_and_span_id(spans: SpanCapture) -> None:
    assert get_trace_id() is None and get_span_id() is None
    with spans.manager.span("request") as span:
        assert get_trace_id() == f"{span.get_span_context().trace_id:032x}"
        assert get_span_id() == f"{span.get_span_context().span_id:016x}"
    assert get_trace_id(span) == spans.one("request").trace_id


async def test_asyncio_tasks_keep_trace_and_tenant(spans: SpanCapture) -> None:
    async def job() -> tuple[str | None, str | None]:
        await asyncio.sleep(0)
        return where()

    with tenant_scope("acme"), spans.manager.span("request"):
        expected = where()
        results = await asyncio.gather(*(asyncio.create_task(job()) for _ in range(5)))
    assert results == [expected] * 5
    assert expected[1] == "acme"


def test_a_plain_thread_pool_loses_the_context_and_submit_in_context_keeps_it(
    spans: SpanCapture,
) -> None:
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        tenant_scope("acme"),
        spans.manager.span("request"),
    ):
        expected = where()
        set_baggage("request_id", "r-1")
        plain = pool.submit(where).result()
        kept = [submit_in_context(pool, where).result() for _ in range(4)]
        carried_baggage = submit_in_context(pool, get_baggage, "request_id").result()
        after = pool.submit(where).result()  # the pooled thread carries nothing over
    assert plain == (None, None)
    assert kept == [expected] * 4
    assert carried_baggage == "r-1"
    assert after == (None, None)


def test_thread_pool_job_as_a_child_span(spans: SpanCapture) -> None:
    def work(x: int) -> int:
        with spans.manager.span("inner"):
            return x * 2

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        tenant_scope("acme"),
        spans.manager.span("request"),
    ):
        assert pool.submit(bind_context(work, span_name="job"), 21).result() == 42
    request, job, inner = spans.one("request"), spans.one("job"), spans.one("inner")
    assert job.trace_id == inner.trace_id == request.trace_id
    assert (job.parent_id, inner.parent_id) == (request.span_id, job.span_id)
    assert job.tenant == inner.tenant == "acme"


def test_thread_pool_job_as_a_linked_new_trace(spans: SpanCapture) -> None:
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        tenant_scope("acme"),
        spans.manager.span("request"),
    ):
        linked = bind_context(where, span_name="reindex", mode="linked")
        trace_id, tenant = pool.submit(linked).result()
    request, job = spans.one("request"), spans.one("reindex")
    assert job.trace_id == trace_id != request.trace_id
    assert job.parent_id is None
    assert tenant == job.tenant == "acme"
    assert job.raw is not None
    [link] = job.raw.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        request.trace_id,
        request.span_id,
    )


def test_linked_mode_names_the_span_after_the_function(spans: SpanCapture) -> None:
    def nightly_sync() -> None:
        pass

    with spans.manager.span("request"):
        bind_context(nightly_sync, mode="linked")()
    assert spans.by_name("test_linked_mode_names_the_span_after_the_function.<locals>.nightly_sync")


async def test_an_unknown_mode_is_refused_up_front(spans: SpanCapture) -> None:
    with pytest.raises(ValueError):
        bind_context(where, mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        create_task_in_context(asyncio.sleep(0), mode="sideways")  # type: ignore[arg-type]


async def test_background_task_as_a_child_span(spans: SpanCapture) -> None:
    async def sync_memory() -> tuple[str | None, str | None]:
        await asyncio.sleep(0)
        return where()

    with tenant_scope("acme"), spans.manager.span("request"):
        task = create_task_in_context(sync_memory(), span_name="memory_sync")
    trace_id, tenant = await task
    request, job = spans.one("request"), spans.one("memory_sync")
    assert trace_id == job.trace_id == request.trace_id
    assert job.parent_id == request.span_id
    assert tenant == job.tenant == "acme"


async def test_background_task_as_a_linked_new_trace(spans: SpanCapture) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def long_running() -> tuple[str | None, str | None]:
        started.set()
        await release.wait()  # outlives the request
        return where()

    with tenant_scope("acme"), spans.manager.span("request"):
        task = create_task_in_context(long_running(), mode="linked", name="long")
        await started.wait()
    assert spans.names() == ["request"]  # the request's trace is complete without the task
    release.set()
    trace_id, tenant = await task
    assert task.get_name() == "long"
    request = spans.one("request")
    [job] = [s for s in spans.spans() if s.name != "request"]
    assert job.name.endswith("long_running")
    assert job.trace_id == trace_id != request.trace_id
    assert tenant == job.tenant == "acme"
    assert job.links == 1


async def test_a_failing_background_task_records_its_error(spans: SpanCapture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with spans.manager.span("request"):
        task = create_task_in_context(broken(), span_name="bg")
    with pytest.raises(RuntimeError):
        await task
    assert spans.one("bg").status == "ERROR"


def test_create_carrier_from_span_round_trip_in_a_thread(spans: SpanCapture) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def worker(carrier: dict[str, str]) -> None:
        ctx = extract_trace_context(carrier)  # no trust policy: the tenant was captured here
        with spans.manager.span("background_task", context=ctx):
            seen.append(where())

    with tenant_scope("acme"), spans.manager.span("initiate") as span:
        carrier = create_carrier_from_span(span)
    thread = threading.Thread(target=worker, args=(carrier,))
    thread.start()
    thread.join()
    initiate, background = spans.one("initiate"), spans.one("background_task")
    assert background.parent_id == initiate.span_id
    assert seen == [(initiate.trace_id, "acme")]
    assert background.tenant == "acme"
    assert spans.manager.get_stats()["rejected_tenants"] == 0


def test_a_copied_carrier_is_judged_like_any_other(spans: SpanCapture) -> None:
    with tenant_scope("acme"), spans.manager.span("initiate") as span:
        carrier = create_carrier_from_span(span)
    for copy in (dict(carrier), json.loads(json.dumps(carrier))):
        assert current_tenant(extract_trace_context(copy)) is None
        assert current_tenant(extract_trace_context(copy, trust=True)) == "acme"


def test_carrier_of_a_span_routed_explicitly_keeps_that_tenant(spans: SpanCapture) -> None:
    with spans.manager.span("explicit", tenant_id="globex") as span:
        pass
    carrier = create_carrier_from_span(span)  # outside any scope: the span knows its tenant
    assert current_tenant(extract_trace_context(carrier)) == "globex"


def test_carrier_of_no_span_is_empty() -> None:
    assert create_carrier_from_span() == {}
    assert create_carrier_from_span(trace_api.INVALID_SPAN) == {}
