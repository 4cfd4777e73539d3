"""A ``@trace_function`` generator runs every step in its own context.

The context is copied from the caller's when the generator is called, so the
generator's span has the caller's parent and tenant. A scope the body enters
(tenant, baggage, current span) stays in force across its yields and never
reaches the consumer; the consumer's scopes between steps never reach the
body; ``close()``, ``finally`` and the collector's close run in the
generator's context too. The autouse fixture checks that no context leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api

from tenantrace import current_tenant, tenant_scope
from tenantrace.layers import get_current_span, get_tracer, trace_function
from tenantrace.propagation import baggage_scope, get_baggage
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

tracer = get_tracer(__name__)
ARGUMENT = "code.function.argument."


@trace_function(name="child")
def child(label: str) -> str | None:
    """A traced call made by a generator's body: its span shows where it was routed."""
    get_current_span().set_attribute("label", label)
    return current_tenant()


def labelled(spans: SpanCapture, label: str) -> CapturedSpan:
    [span] = [span for span in spans.by_name("child") if span.attributes.get("label") == label]
    return span


def made_under(span: CapturedSpan, generator: CapturedSpan) -> bool:
    """``span`` was made inside ``generator``'s span: its child or, when the tenants
    differ and the configuration splits cross-tenant traces, a new trace linked to it."""
    if span.parent_id == generator.span_id:
        return True
    links = span.raw.links if span.raw is not None else ()
    return span.tenant != generator.tenant and any(
        f"{link.context.span_id:016x}" == generator.span_id for link in links
    )


def no_detach_errors(caplog: pytest.LogCaptureFixture) -> None:
    assert "Failed to detach context" not in caplog.text


# ------------------------------------------------- sync: scopes across yields


def test_scope_entered_in_the_body_persists_across_yields(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    @trace_function(name="gen")
    def gen() -> Iterator[str | None]:
        with tenant_scope("acme"):
            yield child("first")
            yield child("second")
        yield child("after")

    with tenant_scope("globex"):
        it = gen()
        assert next(it) == "acme"
        # The body's scope does not reach the consumer.
        assert current_tenant() == "globex"
        assert not trace_api.get_current_span().is_recording()
        assert next(it) == "acme"
        assert current_tenant() == "globex"
        assert next(it) == "globex"  # the body left its scope: the caller's tenant again
        assert list(it) == []
    generator = spans.one("gen")
    assert generator.tenant == "globex"  # the span itself: the caller's tenant
    for label, tenant in (("first", "acme"), ("second", "acme"), ("after", "globex")):
        span = labelled(spans, label)
        assert span.tenant == tenant and made_under(span, generator)
    no_detach_errors(caplog)


def test_consumer_scope_between_steps_does_not_reach_the_body(spans: SpanCapture) -> None:
    @trace_function(name="gen")
    def gen() -> Generator[str | None, None, None]:
        while True:
            yield child("step")

    with tenant_scope("acme"):
        it = gen()  # the generator's context is copied here
    with tenant_scope("globex"):
        assert next(it) == "acme"
    assert next(it) == "acme"
    with tenant_scope("initech"), baggage_scope(user="bob"):
        assert next(it) == "acme"
    it.close()
    generator = spans.one("gen")
    assert generator.tenant == "acme"
    assert [(s.tenant, s.parent_id) for s in spans.by_name("child")] == [
        ("acme", generator.span_id)
    ] * 3


def test_current_span_and_baggage_set_in_the_body_persist(spans: SpanCapture) -> None:
    seen: list[Any] = []

    @trace_function(name="gen")
    def gen() -> Iterator[int]:
        with baggage_scope(request="r-1"), tracer.start_as_current_span("inner"):
            yield 1
            seen.append(get_baggage("request"))
            child("in inner")
            yield 2

    with baggage_scope(request="consumer"):
        it = gen()
        assert next(it) == 1
        assert get_baggage("request") == "consumer"
        assert not trace_api.get_current_span().is_recording()
        assert next(it) == 2
        assert list(it) == []
    assert seen == ["r-1"]
    inner, generator = spans.one("inner"), spans.one("gen")
    assert labelled(spans, "in inner").parent_id == inner.span_id
    assert inner.parent_id == generator.span_id


def test_send_values_reach_the_body_in_its_own_context(spans: SpanCapture) -> None:
    @trace_function(name="echo")
    def echo() -> Generator[str, str | None, None]:
        with tenant_scope("acme"):
            received = yield "ready"
            while received is not None:
                received = yield f"{received}@{child(str(received))}"

    with tenant_scope("globex"):
        it = echo()
        assert next(it) == "ready"
        assert it.send("a") == "a@acme"
        assert it.send("b") == "b@acme"
        with pytest.raises(StopIteration):
            it.send(None)
    assert [s.tenant for s in spans.by_name("child")] == ["acme", "acme"]
    assert spans.one("echo").tenant == "globex"


def test_generator_return_value_and_yield_from(spans: SpanCapture) -> None:
    def inner() -> Generator[str | None, None, str]:
        yield current_tenant()
        return "done"

    @trace_function(name="outer")
    def outer() -> Iterator[str | None]:
        with tenant_scope("acme"):
            result = yield from inner()
            yield result

    with tenant_scope("globex"):
        assert list(outer()) == ["acme", "done"]
    assert spans.one("outer").status == "UNSET"


# ------------------------------------------------ sync: finally and closing


def closing_generator(
    log: list[tuple[str, str | None]],
) -> Callable[[], Generator[int, None, None]]:
    @trace_function(name="gen")
    def gen() -> Generator[int, None, None]:
        with tenant_scope("acme"):
            try:
                yield 1
                yield 2
            except ValueError:
                log.append(("caught", current_tenant()))
                yield 3
            finally:
                log.append(("finally", current_tenant()))
                child("cleanup")

    return gen


def assert_cleanup_in_acme(spans: SpanCapture, log: list[tuple[str, str | None]]) -> None:
    assert ("finally", "acme") in log
    generator = spans.one("gen")
    cleanup = labelled(spans, "cleanup")
    assert cleanup.tenant == "acme" and made_under(cleanup, generator)
    assert generator.tenant == "default"  # called outside any scope, closed in globex


def test_explicit_close_runs_finally_in_the_generators_context(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []
    it = closing_generator(log)()
    assert next(it) == 1
    with tenant_scope("globex"):
        it.close()
        assert current_tenant() == "globex"
    assert_cleanup_in_acme(spans, log)
    assert spans.one("gen").status == "UNSET"  # an early close is not an error
    no_detach_errors(caplog)


def test_exhausted_generator_runs_finally_in_its_context(spans: SpanCapture) -> None:
    log: list[tuple[str, str | None]] = []
    it = closing_generator(log)()
    with tenant_scope("globex"):
        assert list(it) == [1, 2]
    assert_cleanup_in_acme(spans, log)


def test_abandoned_generator_is_closed_in_its_context(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []
    it = closing_generator(log)()
    assert next(it) == 1
    with caplog.at_level(logging.DEBUG), tenant_scope("globex"):
        del it  # the last reference: the generator is finalised here, in globex
        gc.collect()
        assert current_tenant() == "globex"
    assert_cleanup_in_acme(spans, log)
    no_detach_errors(caplog)


def test_throw_runs_in_the_generators_context(spans: SpanCapture) -> None:
    log: list[tuple[str, str | None]] = []
    it = closing_generator(log)()
    assert next(it) == 1
    with tenant_scope("globex"):
        assert it.throw(ValueError("into the body")) == 3
        assert current_tenant() == "globex"
        it.close()
    assert log == [("caught", "acme"), ("finally", "acme")]
    assert_cleanup_in_acme(spans, log)
    assert spans.one("gen").status == "UNSET"


def test_uncaught_throw_is_recorded_once_and_finally_runs_in_context(
    spans: SpanCapture,
) -> None:
    log: list[tuple[str, str | None]] = []
    it = closing_generator(log)()
    assert next(it) == 1
    with tenant_scope("globex"), pytest.raises(KeyError):
        it.throw(KeyError("not handled"))
    assert log == [("finally", "acme")]
    assert_cleanup_in_acme(spans, log)
    generator = spans.one("gen")
    assert generator.status == "ERROR" and generator.attributes["error.type"] == "KeyError"
    assert [name for name in generator.events if name == "exception"] == ["exception"]


def test_body_exception_after_a_yield_is_recorded_in_the_generators_span(
    spans: SpanCapture,
) -> None:
    @trace_function(name="gen")
    def gen() -> Iterator[int]:
        with tenant_scope("acme"):
            yield 1
            raise RuntimeError("late")

    it = gen()
    assert next(it) == 1
    with tenant_scope("globex"), pytest.raises(RuntimeError, match="late"):
        next(it)
    generator = spans.one("gen")
    assert generator.status == "ERROR" and generator.events == ["exception"]


def test_reentering_a_running_generator_is_refused(spans: SpanCapture) -> None:
    holder: list[Iterator[int]] = []

    @trace_function(name="gen")
    def gen() -> Iterator[int]:
        yield next(holder[0])

    holder.append(gen())
    with pytest.raises(ValueError, match="already executing"):
        next(holder[0])


# --------------------------------------------------- sync: context managers


def test_contextmanager_over_a_traced_generator(spans: SpanCapture) -> None:
    log: list[tuple[str, str | None]] = []

    @contextlib.contextmanager
    @trace_function(name="resource")
    def resource(suppress: bool) -> Iterator[str | None]:
        with tenant_scope("acme"):
            try:
                yield current_tenant()
            except ValueError:
                log.append(("caught", current_tenant()))
                if not suppress:
                    raise
            finally:
                log.append(("finally", current_tenant()))

    with tenant_scope("globex"):
        with resource(suppress=False) as value:
            assert value == "acme"
            assert current_tenant() == "globex"  # the body's scope stays in the body
        with resource(suppress=True):
            raise ValueError("suppressed by the generator")
        with pytest.raises(ValueError, match="propagated"), resource(suppress=False):
            raise ValueError("propagated")
    assert log == [
        ("finally", "acme"),
        ("caught", "acme"),
        ("finally", "acme"),
        ("caught", "acme"),
        ("finally", "acme"),
    ]
    ok, suppressed, failed = spans.by_name("resource")
    assert ok.tenant == suppressed.tenant == failed.tenant == "globex"
    assert (ok.status, suppressed.status, failed.status) == ("UNSET", "UNSET", "ERROR")


async def test_asynccontextmanager_over_a_traced_async_generator(spans: SpanCapture) -> None:
    log: list[tuple[str, str | None]] = []

    @contextlib.asynccontextmanager
    @trace_function(name="resource")
    async def resource() -> AsyncIterator[str | None]:
        async with tenant_scope("acme"):
            try:
                await asyncio.sleep(0)
                yield current_tenant()
            except ValueError:
                log.append(("caught", current_tenant()))
                raise
            finally:
                await asyncio.sleep(0)
                log.append(("finally", current_tenant()))

    with tenant_scope("globex"):
        async with resource() as value:
            assert value == "acme"
            assert current_tenant() == "globex"
        with pytest.raises(ValueError, match="propagated"):
            async with resource():
                raise ValueError("propagated")
    assert log == [("finally", "acme"), ("caught", "acme"), ("finally", "acme")]
    ok, failed = spans.by_name("resource")
    assert (ok.tenant, ok.status, failed.status) == ("globex", "UNSET", "ERROR")


# ---------------------------------------------------------------- threads


def test_generator_made_in_a_pool_thread_consumed_in_another(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    @trace_function(name="gen")
    def gen() -> Iterator[tuple[str | None, str | None]]:
        yield current_tenant(), child("called tenant")
        with tenant_scope("acme"):
            for _ in range(3):
                yield current_tenant(), child(threading.current_thread().name)

    def make() -> Iterator[tuple[str | None, str | None]]:
        with tenant_scope("initech"):
            return gen()

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool") as pool:
        it = pool.submit(make).result()
        assert next(it) == ("initech", "initech")
        # Each step in another thread: the body's scope follows the generator.
        assert pool.submit(next, it).result() == ("acme", "acme")
        with tenant_scope("globex"):
            assert next(it) == ("acme", "acme")
        assert pool.submit(next, it).result() == ("acme", "acme")
        assert pool.submit(list, it).result() == []
    generator = spans.one("gen")
    assert generator.tenant == "initech"
    assert [s.tenant for s in spans.by_name("child")] == ["initech", "acme", "acme", "acme"]
    no_detach_errors(caplog)


def test_generators_of_several_tenants_stepped_from_pool_threads(spans: SpanCapture) -> None:
    @trace_function(name="gen")
    def gen(tenant: str) -> Generator[str | None, None, None]:
        with tenant_scope(tenant):
            for _ in range(20):
                yield child(tenant)

    generators = [gen(f"t{i}") for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(20):
            results = list(pool.map(next, generators))
            assert results == [f"t{i}" for i in range(4)]
    for it in generators:
        it.close()
    assert all(s.tenant == s.attributes["label"] for s in spans.by_name("child"))
    assert len(spans.by_name("child")) == 80


# ------------------------------------------------------- async generators


async def test_async_scope_persists_across_yields_and_awaits(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    @trace_function(name="agen")
    async def agen() -> AsyncIterator[str | None]:
        async with tenant_scope("acme"):
            await asyncio.sleep(0)
            yield child("first")
            await asyncio.sleep(0.001)
            yield child("second")
        yield child("after")

    with tenant_scope("globex"):
        it = agen()
        assert await it.__anext__() == "acme"
        assert current_tenant() == "globex"
        assert not trace_api.get_current_span().is_recording()
    with tenant_scope("initech"):
        assert await it.__anext__() == "acme"
        assert current_tenant() == "initech"
        assert await it.__anext__() == "globex"
        assert [x async for x in it] == []
    generator = spans.one("agen")
    assert generator.tenant == "globex"
    for label, tenant in (("first", "acme"), ("second", "acme"), ("after", "globex")):
        span = labelled(spans, label)
        assert span.tenant == tenant and made_under(span, generator)
    no_detach_errors(caplog)


async def test_async_asend_and_athrow_run_in_the_generators_context(
    spans: SpanCapture,
) -> None:
    log: list[tuple[str, str | None]] = []

    @trace_function(name="agen")
    async def agen() -> AsyncGenerator[str, str | None]:
        async with tenant_scope("acme"):
            try:
                received = yield "ready"
                while True:
                    await asyncio.sleep(0)
                    try:
                        received = yield f"{received}@{child(str(received))}"
                    except ValueError:
                        log.append(("caught", current_tenant()))
                        received = yield "recovered"
            finally:
                log.append(("finally", current_tenant()))

    with tenant_scope("globex"):
        it = agen()
        assert await it.asend(None) == "ready"
        assert await it.asend("a") == "a@acme"
        assert await it.athrow(ValueError("into the body")) == "recovered"
        assert await it.asend("b") == "b@acme"
        assert current_tenant() == "globex"
        await it.aclose()
    assert log == [("caught", "acme"), ("finally", "acme")]
    assert [s.tenant for s in spans.by_name("child")] == ["acme", "acme"]
    assert spans.one("agen").status == "UNSET"


def async_closing_generator(
    log: list[tuple[str, str | None]],
) -> Callable[[], AsyncGenerator[int, None]]:
    @trace_function(name="gen")
    async def gen() -> AsyncGenerator[int, None]:
        async with tenant_scope("acme"):
            try:
                yield 1
                await asyncio.sleep(0)
                yield 2
            finally:
                await asyncio.sleep(0)  # an await in finally still runs in the context
                log.append(("finally", current_tenant()))
                child("cleanup")

    return gen


async def test_async_aclose_exhaustion_and_uncaught_athrow(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []
    make = async_closing_generator(log)
    with tenant_scope("globex"):
        closed = make()
        assert await closed.__anext__() == 1
        await closed.aclose()
        assert [x async for x in make()] == [1, 2]
        thrown = make()
        assert await thrown.__anext__() == 1
        with pytest.raises(KeyError):
            await thrown.athrow(KeyError("not handled"))
    assert log == [("finally", "acme")] * 3
    assert [s.tenant for s in spans.by_name("child")] == ["acme"] * 3
    assert [s.status for s in spans.by_name("gen")] == ["UNSET", "UNSET", "ERROR"]
    no_detach_errors(caplog)


async def test_async_abandoned_generator_is_closed_in_its_context(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []

    async def consume_one() -> None:
        it = async_closing_generator(log)()
        assert await it.__anext__() == 1  # then dropped

    with caplog.at_level(logging.DEBUG), tenant_scope("globex"):
        await consume_one()
        gc.collect()
        # The event loop's finaliser hook schedules aclose() in a task of its own.
        for _ in range(10):
            await asyncio.sleep(0)
            if log:
                break
    assert log == [("finally", "acme")]
    generator, cleanup = spans.one("gen"), labelled(spans, "cleanup")
    assert cleanup.tenant == "acme" and made_under(cleanup, generator)
    no_detach_errors(caplog)


async def test_async_abandoned_generator_in_a_reference_cycle(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []

    class Holder:
        it: AsyncIterator[int]
        cycle: object

    holder = Holder()
    holder.it = async_closing_generator(log)()
    holder.cycle = holder  # only the collector frees it
    assert await holder.it.__anext__() == 1
    with caplog.at_level(logging.DEBUG), tenant_scope("globex"):
        del holder
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
            if log:
                break
    assert log == [("finally", "acme")]
    generator, cleanup = spans.one("gen"), labelled(spans, "cleanup")
    assert cleanup.tenant == "acme" and made_under(cleanup, generator)
    no_detach_errors(caplog)


def test_loop_shutdown_closes_a_pending_async_generator_in_its_context(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[tuple[str, str | None]] = []
    errors: list[dict[str, Any]] = []
    held: list[AsyncIterator[int]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, error: errors.append(error))
        it = async_closing_generator(log)()
        assert await it.__anext__() == 1
        held.append(it)  # still suspended when asyncio.run() shuts the loop down

    with tenant_scope("globex"):
        asyncio.run(main())
    # The loop closes the wrapper only; the wrapper closes the body, in its context.
    assert log == [("finally", "acme")]
    assert errors == []
    assert labelled(spans, "cleanup").tenant == "acme"
    no_detach_errors(caplog)


async def test_async_consumer_cancelled_while_the_body_awaits(spans: SpanCapture) -> None:
    log: list[tuple[str, str | None]] = []
    started = asyncio.Event()

    @trace_function(name="agen")
    async def agen() -> AsyncGenerator[int, None]:
        async with tenant_scope("acme"):
            try:
                yield 1
                started.set()
                await asyncio.sleep(60)
                yield 2
            finally:
                log.append(("finally", current_tenant()))

    async def consume() -> None:
        it = agen()
        try:
            async for _ in it:
                pass
        finally:
            await it.aclose()

    with tenant_scope("globex"):
        task = asyncio.ensure_future(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert log == [("finally", "acme")]
    [span] = spans.by_name("agen")
    assert span.status == "ERROR" and span.attributes["error.type"] == "CancelledError"


async def test_async_generators_of_several_tenants_in_concurrent_tasks(
    spans: SpanCapture,
) -> None:
    @trace_function(name="agen")
    async def agen(tenant: str) -> AsyncIterator[str | None]:
        async with tenant_scope(tenant):
            for i in range(5):
                await asyncio.sleep(0.001 * (i % 2))
                yield child(tenant)

    async def consume(it: AsyncIterator[str | None], scope: str) -> list[str | None]:
        with tenant_scope(scope):
            return [x async for x in it]

    generators = {f"t{i}": agen(f"t{i}") for i in range(4)}
    results = await asyncio.gather(*(consume(it, "consumer") for it in generators.values()))
    assert results == [[tenant] * 5 for tenant in generators]
    assert all(s.tenant == s.attributes["label"] for s in spans.by_name("child"))


async def test_tasks_started_in_the_body_inherit_the_generators_context(
    spans: SpanCapture,
) -> None:
    @trace_function(name="agen")
    async def agen() -> AsyncIterator[str | None]:
        async with tenant_scope("acme"):
            yield await asyncio.create_task(asyncio.to_thread(current_tenant))

    with tenant_scope("globex"):
        assert [x async for x in agen()] == ["acme"]


# ---------------------------------------------------------------- property


STEP = st.tuples(
    st.integers(min_value=0, max_value=3),  # which generator
    st.sampled_from(["next", "send", "throw", "close"]),
    st.sampled_from([None, "globex", "initech"]),  # the consumer's scope for this step
)


def take_step(it: Generator[str | None, None, None], action: str) -> str | None:
    if action == "close":
        it.close()
        return None
    if action == "next":
        return next(it)
    if action == "send":
        return it.send(None)
    return it.throw(ValueError("x"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, max_size=40), scoped=st.lists(st.booleans(), min_size=4, max_size=4))
def test_interleaved_steps_keep_every_span_in_its_generators_tenant(
    spans: SpanCapture, steps: list[tuple[int, str, str | None]], scoped: list[bool]
) -> None:
    """Each generator's spans land in its tenant, however the steps interleave.

    Generator ``i`` gets tenant ``g{i}`` either from its caller's scope or from
    a scope its own body enters; the consumer steps them in a random order
    (next / send / throw / close) under random scopes of its own.
    """
    spans.clear()
    finally_seen: dict[str, str | None] = {}

    @trace_function(name="gen", capture_args=["tenant"])
    def gen(tenant: str, enter: bool) -> Generator[str | None, None, None]:
        scope = tenant_scope(tenant) if enter else contextlib.nullcontext()
        with scope:
            try:
                while True:
                    try:
                        yield child(tenant)
                    except ValueError:
                        child(tenant)
            finally:
                finally_seen[tenant] = current_tenant()
                child(tenant)

    def make(i: int) -> Generator[str | None, None, None]:
        if scoped[i]:
            return gen(f"g{i}", True)
        with tenant_scope(f"g{i}"):
            return gen(f"g{i}", False)

    generators = [make(i) for i in range(4)]
    started: set[int] = set()
    closed: set[int] = set()
    for index, action, consumer in steps:
        it = generators[index]
        with tenant_scope(consumer) if consumer else contextlib.nullcontext():
            try:
                value = take_step(it, action)
            except StopIteration:
                assert index in closed
            except ValueError:
                # Thrown into a body that never ran, or a closed one: it is not caught.
                assert index not in started or index in closed
                closed.add(index)
            else:
                if action == "close":
                    closed.add(index)
                else:
                    assert value == f"g{index}"
                    started.add(index)
            assert current_tenant() == consumer
            assert not trace_api.get_current_span().is_recording()
    for it in generators:
        it.close()
    assert all(seen == tenant for tenant, seen in finally_seen.items())
    generator_spans = {str(s.attributes[ARGUMENT + "tenant"]): s for s in spans.by_name("gen")}
    for span in spans.by_name("child"):
        tenant = str(span.attributes["label"])
        assert span.tenant == tenant
        assert made_under(span, generator_spans[tenant])
        if not scoped[int(tenant[1:])]:
            # The caller's scope, copied at call time: the generator's span has it too.
            assert generator_spans[tenant].tenant == tenant


ASYNC_STEP = st.tuples(
    st.integers(min_value=0, max_value=3),
    st.sampled_from(["asend", "athrow", "aclose"]),
    st.sampled_from([None, "globex", "initech"]),
)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(ASYNC_STEP, max_size=30), scoped=st.lists(st.booleans(), min_size=4, max_size=4)
)
def test_interleaved_async_steps_keep_every_span_in_its_generators_tenant(
    steps: list[tuple[int, str, str | None]], scoped: list[bool]
) -> None:
    """The same with async generators whose bodies await between their yields."""
    finally_seen: dict[str, str | None] = {}

    @trace_function(name="agen")
    async def agen(tenant: str, enter: bool) -> AsyncGenerator[str | None, None]:
        async with tenant_scope(tenant) if enter else contextlib.nullcontext():
            try:
                while True:
                    await asyncio.sleep(0)
                    try:
                        yield child(tenant)
                    except ValueError:
                        await asyncio.sleep(0)
            finally:
                await asyncio.sleep(0)
                finally_seen[tenant] = current_tenant()
                child(tenant)

    def make(i: int) -> AsyncGenerator[str | None, None]:
        if scoped[i]:
            return agen(f"g{i}", True)
        with tenant_scope(f"g{i}"):
            return agen(f"g{i}", False)

    async def main() -> None:
        generators = [make(i) for i in range(4)]
        started: set[int] = set()
        closed: set[int] = set()
        for index, action, consumer in steps:
            it = generators[index]
            with tenant_scope(consumer) if consumer else contextlib.nullcontext():
                try:
                    if action == "aclose":
                        await it.aclose()
                        closed.add(index)
                    else:
                        step = it.asend(None) if action == "asend" else it.athrow(ValueError("x"))
                        # Python 3.11 answers athrow() on a closed async generator with None.
                        assert await step == f"g{index}" or index in closed
                        started.add(index)
                except StopAsyncIteration:
                    assert index in closed
                except ValueError:
                    # Thrown into a body that never ran: it ends the generator.
                    assert index not in started or index in closed
                    closed.add(index)
                assert current_tenant() == consumer
                assert not trace_api.get_current_span().is_recording()
        for it in generators:
            await it.aclose()

    with capture_spans() as spans:
        asyncio.run(main())
        assert all(seen == tenant for tenant, seen in finally_seen.items())
        for span in spans.by_name("child"):
            assert span.tenant == span.attributes["label"]
        assert spans.unfinished() == 0
