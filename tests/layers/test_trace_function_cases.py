"""``@trace_function`` on every kind of callable, with whole-span assertions.

Each case checks the span's name, tenant/project, parent, status and the
exception events, and the autouse fixture checks no context leaked.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest
from opentelemetry import trace as trace_api

from tenantrace import TelemetryConfig, TelemetryLevel, tenant_scope
from tenantrace.layers import get_current_span, trace_function
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

F = TypeVar("F", bound=Callable[..., Any])


def exception_events(span: CapturedSpan) -> list[str]:
    return [name for name in span.events if name == "exception"]


def no_detach_errors(caplog: pytest.LogCaptureFixture) -> None:
    assert "Failed to detach context" not in caplog.text


# ------------------------------------------------------------- functions


def test_plain_function_span_is_whole(spans: SpanCapture) -> None:
    @trace_function(name="calc", attributes={"component": "memory"})
    def calc(x: int) -> int:
        assert get_current_span().is_recording()
        return x * 2

    with tenant_scope("acme"):
        assert calc(21) == 42
    [span] = spans.spans()
    assert span == CapturedSpan(
        name="calc",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_id=None,
        kind="INTERNAL",
        status="UNSET",
        attributes={"component": "memory"},
    )
    assert span.raw is not None and span.raw.end_time is not None
    assert span.raw.end_time >= (span.raw.start_time or 0)


def test_default_name_is_the_qualified_name(spans: SpanCapture) -> None:
    @trace_function
    def helper() -> None:
        return None

    helper()
    assert spans.names() == [helper.__qualname__]
    assert "<locals>" in spans.names()[0]  # qualified, not just "helper"


async def test_coroutine_span_covers_the_await(spans: SpanCapture) -> None:
    @trace_function
    async def inner() -> str:
        await asyncio.sleep(0)
        return "ok"

    @trace_function(name="outer")
    async def outer() -> str:
        return await inner()

    with tenant_scope("acme"):
        assert await outer() == "ok"
    inner_span, outer_span = spans.spans()
    assert outer_span.name == "outer" and outer_span.parent_id is None
    assert inner_span.parent_id == outer_span.span_id
    assert inner_span.trace_id == outer_span.trace_id
    assert {inner_span.tenant, outer_span.tenant} == {"acme"}


async def test_concurrent_coroutines_keep_their_own_tenant(spans: SpanCapture) -> None:
    @trace_function(name="work")
    async def work(tenant: str) -> str:
        await asyncio.sleep(0)
        return tenant

    async def run(tenant: str) -> str:
        with tenant_scope(tenant):
            return await work(tenant)

    tenants = [f"t{i}" for i in range(20)]
    assert await asyncio.gather(*(run(t) for t in tenants)) == tenants
    assert sorted(s.tenant or "" for s in spans.spans()) == sorted(tenants)


# -------------------------------------------------------------- exceptions


def test_exception_reraised_unchanged_and_recorded_once_across_nested_calls(
    spans: SpanCapture,
) -> None:
    class Boom(Exception):
        pass

    error = Boom("bad input")

    @trace_function
    def inner() -> None:
        raise error

    @trace_function
    def middle() -> None:
        inner()

    @trace_function(name="outer")
    def outer() -> None:
        middle()

    with pytest.raises(Boom) as raised:
        outer()
    assert raised.value is error
    inner_span, middle_span, outer_span = spans.spans()
    for span in (inner_span, middle_span, outer_span):
        assert span.status == "ERROR"
        assert span.attributes["error.type"] == Boom.__qualname__
    assert exception_events(inner_span) == ["exception"]
    assert exception_events(middle_span) == []
    assert exception_events(outer_span) == []


def test_record_exception_false_sets_status_without_event(spans: SpanCapture) -> None:
    @trace_function(record_exception=False)
    def fails() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        fails()
    [span] = spans.spans()
    assert span.status == "ERROR" and span.attributes["error.type"] == "KeyError"
    assert span.events == []


async def test_async_exception_recorded_once(spans: SpanCapture) -> None:
    @trace_function
    async def inner() -> None:
        raise ValueError("nope")

    @trace_function
    async def outer() -> None:
        await inner()

    with pytest.raises(ValueError, match="nope"):
        await outer()
    inner_span, outer_span = spans.spans()
    assert exception_events(inner_span) == ["exception"]
    assert exception_events(outer_span) == []
    assert outer_span.status == inner_span.status == "ERROR"


# -------------------------------------------------------------- generators


@trace_function(name="numbers")
def numbers(n: int) -> Iterator[int]:
    for i in range(n):
        # The span is current while the generator's own code runs.
        assert get_current_span().is_recording()
        yield i


def test_generator_span_covers_the_whole_iteration(spans: SpanCapture) -> None:
    with tenant_scope("acme"):
        gen = numbers(3)
        assert spans.spans() == []  # nothing started before the first next()
        first = next(gen)
        # Between steps the consumer's context is current, not the generator's span.
        assert not trace_api.get_current_span().is_recording()
        assert [first, *gen] == [0, 1, 2]
    [span] = spans.spans()
    assert (span.name, span.tenant, span.status) == ("numbers", "acme", "UNSET")


def test_generator_children_are_parented_to_its_span(spans: SpanCapture) -> None:
    @trace_function(name="child")
    def child(i: int) -> int:
        return i

    @trace_function(name="producer")
    def producer() -> Iterator[int]:
        for i in range(2):
            yield child(i)

    assert list(producer()) == [0, 1]
    child_a, child_b, parent = spans.spans()
    assert parent.name == "producer"
    assert child_a.parent_id == child_b.parent_id == parent.span_id


def test_generator_closed_early_ends_its_span_cleanly(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    closed: list[bool] = []

    @trace_function(name="stream")
    def stream() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    for item in stream():
        if item == 2:
            break
    gc.collect()
    [span] = spans.spans()
    assert span.status == "UNSET" and span.events == []  # an early stop is not an error
    assert closed == [True]
    no_detach_errors(caplog)


def test_generator_abandoned_without_close_ends_its_span(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    def consume_one() -> None:
        gen = numbers(10)
        next(gen)  # then dropped: the generator is finalised by the collector

    with caplog.at_level(logging.ERROR):
        consume_one()
        gc.collect()
    [span] = spans.spans()
    assert span.name == "numbers" and span.status == "UNSET"
    no_detach_errors(caplog)


def test_generator_exception_and_thrown_exception(spans: SpanCapture) -> None:
    @trace_function(name="fails_late")
    def fails_late() -> Iterator[int]:
        yield 1
        raise RuntimeError("late")

    with pytest.raises(RuntimeError, match="late"):
        list(fails_late())

    @trace_function(name="catches")
    def catches() -> Iterator[str]:
        try:
            yield "first"
        except ValueError:
            yield "recovered"

    gen = catches()
    assert next(gen) == "first"
    assert gen.throw(ValueError("into the generator")) == "recovered"
    gen.close()
    late, caught = spans.spans()
    assert late.status == "ERROR" and exception_events(late) == ["exception"]
    assert caught.status == "UNSET"


def test_generator_send_and_return_value(spans: SpanCapture) -> None:
    @trace_function(name="echo")
    def echo() -> Iterator[Any]:
        received = yield "ready"
        yield f"got {received}"

    @trace_function(name="delegating")
    def delegating() -> Iterator[Any]:
        result = yield from returns()
        yield result

    def returns() -> Iterator[int]:
        yield 1
        return 99

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    gen.close()
    assert list(delegating()) == [1, 99]
    assert spans.names() == ["echo", "delegating"]


async def test_async_generator_whole_iteration_and_early_close(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    @trace_function(name="ticks")
    async def ticks(n: int) -> AsyncIterator[int]:
        for i in range(n):
            assert get_current_span().is_recording()
            await asyncio.sleep(0)
            yield i

    with tenant_scope("acme"):
        assert [i async for i in ticks(3)] == [0, 1, 2]
        agen = ticks(100)
        async for i in agen:
            if i == 1:
                break
        await agen.aclose()  # type: ignore[attr-defined]
    full, early = spans.spans()
    assert (full.name, full.tenant, full.status) == ("ticks", "acme", "UNSET")
    assert (early.name, early.status) == ("ticks", "UNSET")
    no_detach_errors(caplog)


async def test_async_generator_exception_recorded(spans: SpanCapture) -> None:
    @trace_function(name="bad_stream")
    async def bad_stream() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("peer went away")

    with pytest.raises(ConnectionError):
        async for _ in bad_stream():
            pass
    [span] = spans.spans()
    assert span.status == "ERROR" and span.attributes["error.type"] == "ConnectionError"
    assert exception_events(span) == ["exception"]


async def test_async_generator_abandoned_ends_its_span(
    spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    @trace_function(name="endless")
    async def endless() -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    agen = endless()
    assert await agen.__anext__() == 0
    await agen.aclose()  # what the event loop's asyncgen hook does for an abandoned one
    del agen
    gc.collect()
    [span] = spans.spans()
    assert span.name == "endless" and span.status == "UNSET"
    no_detach_errors(caplog)


# ----------------------------------------------------------------- methods


class Service:
    factor = 3

    def __init__(self) -> None:
        self.calls = 0

    @trace_function
    def method(self, x: int) -> int:
        self.calls += 1
        return x * self.factor

    @trace_function
    @classmethod
    def klass(cls, x: int) -> int:
        return x * cls.factor

    @classmethod
    @trace_function
    def klass_inner(cls, x: int) -> int:
        return x * cls.factor

    @trace_function
    @staticmethod
    def static(x: int) -> int:
        return x + 1

    @staticmethod
    @trace_function
    def static_inner(x: int) -> int:
        return x + 2

    @trace_function
    async def amethod(self) -> int:
        return self.factor


async def test_methods_classmethods_staticmethods(spans: SpanCapture) -> None:
    service = Service()
    assert service.method(2) == 6 and service.calls == 1
    assert Service.klass(2) == 6 and service.klass(1) == 3
    assert Service.klass_inner(2) == 6
    assert Service.static(1) == 2 and service.static(1) == 2
    assert Service.static_inner(1) == 3
    assert await service.amethod() == 3
    assert spans.names() == [
        "Service.method",
        "Service.klass",
        "Service.klass",
        "Service.klass_inner",
        "Service.static",
        "Service.static",
        "Service.static_inner",
        "Service.amethod",
    ]
    assert all(s.status == "UNSET" for s in spans.spans())


# ------------------------------------------------------- stacked decorators


def plain_decorator(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs) + 1

    return wrapper  # type: ignore[return-value]


def async_decorator(func: F) -> F:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return (await func(*args, **kwargs)) + 1

    return wrapper  # type: ignore[return-value]


async def test_stacked_decorators_in_either_order(spans: SpanCapture) -> None:
    @trace_function(name="outside")
    @plain_decorator
    def outside(x: int) -> int:
        return x

    @plain_decorator
    @trace_function(name="inside")
    def inside(x: int) -> int:
        return x

    @trace_function(name="async_outside")
    @async_decorator
    async def async_outside(x: int) -> int:
        return x

    @async_decorator
    @trace_function(name="async_inside")
    async def async_inside(x: int) -> int:
        return x

    @trace_function(name="twice_outer")
    @trace_function(name="twice_inner")
    def twice(x: int) -> int:
        return x

    assert outside(1) == 2 and inside(1) == 2
    assert await async_outside(1) == 2 and await async_inside(1) == 2
    assert twice(5) == 5
    assert inspect.iscoroutinefunction(async_outside)
    names = spans.names()
    assert names == [
        "outside",
        "inside",
        "async_outside",
        "async_inside",
        "twice_inner",
        "twice_outer",
    ]
    inner, outer = spans.spans()[-2:]
    assert inner.parent_id == outer.span_id


def test_signature_name_and_doc_are_preserved() -> None:
    def original(a: int, b: str = "x", *, c: float = 1.0) -> str:
        """Docstring."""
        return f"{a}{b}{c}"

    decorated = trace_function(original)
    assert inspect.signature(decorated) == inspect.signature(original)
    assert decorated.__name__ == "original" and decorated.__doc__ == "Docstring."
    assert decorated.__wrapped__ is original  # type: ignore[attr-defined]


# ------------------------------------------------------------ options/levels


def test_capture_args_records_chosen_arguments_and_redacts_secrets(spans: SpanCapture) -> None:
    @trace_function(capture_args=["user", "password", "limit"])
    def login(user: str, password: str, limit: int = 10, other: str = "x") -> bool:
        return True

    assert login("alice", "hunter2", other="not captured")
    [span] = spans.spans()
    assert span.attributes == {
        "code.function.argument.user": "alice",
        "code.function.argument.password": "[REDACTED]",
        "code.function.argument.limit": 10,
    }


def test_explicit_tenant_and_project(spans: SpanCapture) -> None:
    @trace_function(tenant_id="globex", project_name="video")
    def search() -> str:
        return "found"

    with tenant_scope("acme"):
        search()
    [span] = spans.spans()
    assert (span.tenant, span.project) == ("globex", "cogniverse-globex-video")


def test_level_gated_decorator_is_a_pass_through() -> None:
    @trace_function(level=TelemetryLevel.VERBOSE)
    def verbose() -> str:
        assert not get_current_span().is_recording()
        return "ran"

    @trace_function(name="basic", level=TelemetryLevel.BASIC)
    def basic() -> str:
        return "ran"

    with capture_spans(TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")) as cap:
        assert verbose() == "ran" and basic() == "ran"
        assert cap.names() == ["basic"]


def test_disabled_telemetry_calls_straight_through() -> None:
    @trace_function
    def work() -> int:
        return 7

    with capture_spans(TelemetryConfig(enabled=False, exporter_type="memory")) as cap:
        assert work() == 7
        assert cap.spans() == []
