"""Telemetry never raises into user code, and never replaces the user's exception.

- An exception whose ``str()`` raises (a broken ``__str__``, or an int past
  Python's digit limit: ``str(10**5000)`` raises ``ValueError``) comes out of
  every API unchanged; the span still says ERROR and records the exception.
- Baggage with a lone surrogate (as JSON decoding gives ``"\\ud800"``) is refused
  and counted, never raised.
- A span name that is not a string becomes its ``str()``; attributes that are
  not a mapping are left out; both are counted.
- An ERROR description the user set before the exception escaped stands.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.trace import Status, StatusCode

from tenantrace.instrumentation.routing import TenantRoutingTracerProvider
from tenantrace.instrumentation.spans import UNPRINTABLE, record_exception_once
from tenantrace.layers.decorators import trace_function
from tenantrace.propagation.baggage import (
    baggage_scope,
    get_all_baggage,
    get_baggage,
    set_baggage,
)
from tenantrace.testing import CapturedSpan, SpanCapture


class _StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class _ReprOnly(Exception):
    def __str__(self) -> str:
        raise ValueError("nor this one")


# Fresh instances per test: a recorded exception is marked as such.
EXCEPTIONS: dict[str, Callable[[], Exception]] = {
    "str-raises": lambda: _StrRaises("x"),
    "str-raises-valueerror": _ReprOnly,
    "holds-a-huge-int": lambda: ValueError(10**5000),
}


def _via_manager_span(spans: SpanCapture, exc: Exception) -> None:
    with spans.manager.span("op", tenant_id="acme"):
        raise exc


def _via_get_tracer(spans: SpanCapture, exc: Exception) -> None:
    with spans.manager.get_tracer("lib").start_as_current_span("op"):
        raise exc


def _via_global_routing_tracer(spans: SpanCapture, exc: Exception) -> None:
    # The global routing provider follows the process-wide manager (the capture's).
    with TenantRoutingTracerProvider().get_tracer("lib").start_as_current_span("op"):
        raise exc


def _via_routing_decorator(spans: SpanCapture, exc: Exception) -> None:
    @TenantRoutingTracerProvider().get_tracer("lib").start_as_current_span("op")
    def op() -> None:
        raise exc

    op()


def _via_trace_function(spans: SpanCapture, exc: Exception) -> None:
    @trace_function(name="op", tenant_id="acme")
    def op() -> None:
        raise exc

    op()


def _via_async_trace_function(spans: SpanCapture, exc: Exception) -> None:
    @trace_function(name="op", tenant_id="acme")
    async def op() -> None:
        raise exc

    asyncio.run(op())


APIS: dict[str, Callable[[SpanCapture, Exception], None]] = {
    "manager.span": _via_manager_span,
    "get_tracer": _via_get_tracer,
    "global-routing-tracer": _via_global_routing_tracer,
    "routing-tracer-decorator": _via_routing_decorator,
    "trace_function": _via_trace_function,
    "async-trace_function": _via_async_trace_function,
}


@pytest.fixture(params=list(EXCEPTIONS))
def unprintable(request: pytest.FixtureRequest) -> Iterator[Exception]:
    exc = EXCEPTIONS[request.param]()
    with pytest.raises(Exception):  # noqa: B017 - whichever error str() raises
        str(exc)
    yield exc


@pytest.mark.parametrize("api", list(APIS))
def test_an_exception_str_fails_on_comes_out_unchanged(
    api: str, unprintable: Exception, spans: SpanCapture
) -> None:
    with pytest.raises(type(unprintable)) as raised:
        APIS[api](spans, unprintable)
    assert raised.value is unprintable
    span: CapturedSpan = spans.one("op")
    assert span.status == "ERROR"
    assert span.raw is not None
    assert span.raw.status.description == f"{type(unprintable).__name__}: {UNPRINTABLE}"
    [event] = [e for e in span.raw.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.message"] == UNPRINTABLE
    assert type(unprintable).__qualname__ in str(event.attributes["exception.type"])


def test_record_exception_once_never_raises_whatever_the_exception(spans: SpanCapture) -> None:
    with spans.manager.span("op", tenant_id="acme") as span:
        for make in EXCEPTIONS.values():
            record_exception_once(span, make())
    assert spans.one("op").status == "ERROR"


# -------------------------------------------------------------- baggage


def test_a_lone_surrogate_in_baggage_is_refused_and_counted(spans: SpanCapture) -> None:
    value = json.loads('"\\ud800"')  # what a JSON body can hand over
    set_baggage("user.name", value)
    assert get_baggage("user.name") is None
    with baggage_scope({"a": "\udfff tail", "b": "fine"}):
        assert get_baggage("a") is None
        assert get_baggage("b") == "fine"
    with baggage_scope(request_id=value) as ctx:
        assert get_all_baggage(ctx) == {}
    assert spans.manager.get_stats()["propagation.baggage_refused"] == 3


def test_baggage_that_cannot_be_made_text_is_refused_and_counted(spans: SpanCapture) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    set_baggage("big", 10**5000)  # str() raises ValueError past the digit limit
    set_baggage("obj", Unprintable())
    set_baggage(Unprintable(), "value")  # type: ignore[arg-type]
    with baggage_scope({"obj": Unprintable()}):
        pass
    assert get_all_baggage() == {}
    assert spans.manager.get_stats()["propagation.baggage_refused"] == 4


# ------------------------------------------------ names and attributes at start


def test_a_span_name_of_another_type_becomes_its_str_and_never_raises(
    spans: SpanCapture,
) -> None:
    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("no name")

    manager = spans.manager
    with manager.span(12345, tenant_id="acme"):  # type: ignore[arg-type]
        pass
    with manager.span(Weird(), tenant_id="acme"):  # type: ignore[arg-type]
        pass
    manager.start_span(10**5000, tenant_id="acme").end()  # type: ignore[arg-type]
    with manager.span("listed", tenant_id="acme", attributes=[("k", "v")]):  # type: ignore[arg-type]
        pass
    assert spans.names() == ["12345", "<unprintable Weird>", "<unprintable int>", "listed"]
    assert spans.one("listed").attributes == {"tenant.id": "acme"}
    stats = manager.get_stats()
    assert stats["span_names_converted"] == 3
    assert stats["span_attributes_refused"] == 1


def test_a_library_tracer_given_bad_attributes_yields_a_no_op_span(spans: SpanCapture) -> None:
    tracer = TenantRoutingTracerProvider().get_tracer("lib")
    ran = False
    with tracer.start_as_current_span("x", attributes=[1, 2]) as span:  # type: ignore[arg-type]
        ran = True
    assert ran and not span.is_recording()
    assert spans.names() == []


# ------------------------------------------------------ status descriptions


def test_an_error_description_the_user_set_stands(spans: SpanCapture) -> None:
    with pytest.raises(KeyError), spans.manager.span("checkout", tenant_id="acme") as span:
        span.set_status(Status(StatusCode.ERROR, "payment provider refused"))
        raise KeyError("card")
    with pytest.raises(KeyError), spans.manager.span("plain", tenant_id="acme"):
        raise KeyError("card")
    tracer = TenantRoutingTracerProvider().get_tracer("lib")
    with pytest.raises(KeyError), tracer.start_as_current_span("routed") as routed:
        routed.set_status(Status(StatusCode.ERROR, "upstream said no"))
        raise KeyError("card")
    checkout = spans.one("checkout")
    assert checkout.raw is not None and checkout.raw.status.description == (
        "payment provider refused"
    )
    assert checkout.attributes["error.type"] == "KeyError"
    assert checkout.events == ["exception"]
    plain = spans.one("plain").raw
    assert plain is not None and plain.status.description == "KeyError: 'card'"
    routed_span = spans.one("routed").raw
    assert routed_span is not None and routed_span.status.description == "upstream said no"


def test_a_description_tenantrace_set_is_not_taken_for_the_users(spans: SpanCapture) -> None:
    """The same span recording a second exception (a generator thrown into, then
    failing): the description says the last one, as before."""
    with spans.manager.span("twice", tenant_id="acme") as span:
        record_exception_once(span, KeyError("first"))
        record_exception_once(span, ValueError("second"))
    twice = spans.one("twice").raw
    assert twice is not None and twice.status.description == "ValueError: second"
