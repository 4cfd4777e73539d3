"""tenantrace.export.encode_spans: what it does with what the SDK cannot encode,
its caches and their bounds, and concurrent callers."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PB2Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceState
from otlp_spans import compare, decode

from tenantrace.export import _groups, _wire, clear_caches, encode_spans, encoder

_CONTEXT = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False)
_RESOURCE = Resource({"service.name": "svc", "tenant.id": "acme"})


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


def _span(**fields: Any) -> ReadableSpan:
    fields.setdefault("name", "op")
    fields.setdefault("context", _CONTEXT)
    fields.setdefault("resource", _RESOURCE)
    fields.setdefault("start_time", 1)
    fields.setdefault("end_time", 2)
    return ReadableSpan(**fields)


def _only_span(data: bytes) -> PB2Span:
    (resource_spans,) = decode(data).resource_spans
    (scope_spans,) = resource_spans.scope_spans
    (span,) = scope_spans.spans
    return span


# ------------------------------------------------- what the SDK cannot encode

_UNENCODABLE: dict[Any, Any] = {
    "int above int64": 1 << 63,
    "int below int64": -(1 << 63) - 1,
    "object": object(),
    "lone surrogate": "a\udc00",
    "in a sequence": (1, 1 << 70),
    "in a mapping": {"k": object()},
    5: "a key that is not a str",
    "\ud800": "a key with a lone surrogate",
}


def test_an_unencodable_attribute_is_left_out_and_counted() -> None:
    attributes = {"before": "kept", **_UNENCODABLE, "after": 7}
    span = _span(attributes=attributes)
    expected = _only_span(sdk_encode([span]).SerializeToString())  # logs, leaves them out
    actual = _only_span(encode_spans([span]))
    assert [kv.key for kv in actual.attributes] == ["before", "after"]
    assert actual.attributes == expected.attributes
    assert expected.dropped_attributes_count == 0  # the SDK does not count them
    assert actual.dropped_attributes_count == len(_UNENCODABLE)
    actual.dropped_attributes_count = 0
    assert actual == expected


def test_unencodable_attributes_of_events_links_resources_and_scopes_are_counted() -> None:
    bad = {"ok": True, "big": 1 << 64}
    resource = Resource(bad)
    scope = InstrumentationScope("lib", attributes=bad)
    span = _span(
        resource=resource,
        instrumentation_scope=scope,
        events=[Event("e", bad, timestamp=3)],
        links=[Link(_CONTEXT, bad)],
    )
    request = decode(encode_spans([span]))
    expected = sdk_encode([span])
    (resource_spans,) = request.resource_spans
    assert resource_spans.resource.dropped_attributes_count == 1
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.dropped_attributes_count == 1
    (actual,) = scope_spans.spans
    assert actual.events[0].dropped_attributes_count == 1
    assert actual.links[0].dropped_attributes_count == 1
    for message in (
        resource_spans.resource,
        scope_spans.scope,
        actual.events[0],
        actual.links[0],
    ):
        assert [kv.key for kv in message.attributes] == ["ok"]
        message.dropped_attributes_count = 0
    assert request == expected


def test_the_sdk_tracer_lets_an_oversized_int_through_and_it_is_counted() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=_RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("op") as span:
        span.set_attribute("huge", 1 << 80)
        span.set_attribute("fine", 1)
    provider.shutdown()
    (finished,) = exporter.get_finished_spans()
    actual = _only_span(encode_spans([finished]))
    assert [kv.key for kv in actual.attributes] == ["fine"]
    assert actual.dropped_attributes_count == 1


def _no_resource() -> ReadableSpan:
    span = _span()
    span._resource = None  # type: ignore[assignment]
    return span


def _dropped(count: int) -> Any:
    attributes = BoundedAttributes(None, {"a": 1})
    attributes.dropped = count
    return attributes


_REFUSED: dict[str, Callable[[], ReadableSpan]] = {
    "a name with a lone surrogate": lambda: _span(name="\udc00"),
    "a kind the SDK does not know": lambda: _span(kind="SERVER"),
    "a negative start time": lambda: _span(start_time=-1),
    "an end time beyond uint64": lambda: _span(end_time=1 << 64),
    "a trace id beyond 128 bits": lambda: _span(context=SpanContext(1 << 128, 1, False)),
    "no span context": lambda: _span(context=None),
    "no resource": _no_resource,
    "a dropped count beyond uint32": lambda: _span(attributes=_dropped(1 << 32)),
}


@pytest.mark.parametrize("case", list(_REFUSED))
def test_a_span_the_sdk_refuses_raises_too(case: str) -> None:
    span = _REFUSED[case]()
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises
        sdk_encode([span]).SerializeToString()
    with pytest.raises(Exception):  # noqa: B017
        encode_spans([span])


def test_no_spans_is_an_empty_request() -> None:
    assert encode_spans([]) == b"" == sdk_encode([]).SerializeToString()


# -------------------------------------------------------------------- caches


def test_a_resource_and_a_scope_are_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(name: str) -> Callable[[Any], Any]:
        original = getattr(_groups, name)

        def wrapper(obj: Any) -> Any:
            calls.append(name)
            return original(obj)

        return wrapper

    monkeypatch.setattr(_groups, "_resource_entry", counting("_resource_entry"))
    monkeypatch.setattr(_groups, "_scope_entry", counting("_scope_entry"))
    tenants = [Resource({"service.name": "svc", "tenant.id": f"t{i}"}) for i in range(100)]
    scope = InstrumentationScope("lib", "1.0")
    batch = [_span(resource=tenants[i % 100], instrumentation_scope=scope) for i in range(512)]
    for _ in range(3):
        assert compare(batch)
    assert calls.count("_resource_entry") == 100
    assert calls.count("_scope_entry") == 1


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_groups, "RESOURCE_CACHE_SIZE", 8)
    monkeypatch.setattr(encoder, "NAME_CACHE_SIZE", 8)
    monkeypatch.setattr(_wire, "KEY_CACHE_SIZE", 8)
    for round_ in range(20):
        batch = [
            _span(
                name=f"op-{round_}-{i}",
                resource=Resource({"tenant.id": f"t{round_}-{i}"}),
                instrumentation_scope=InstrumentationScope(f"lib-{round_}-{i}"),
                attributes={f"key-{round_}-{i}": i},
                events=[Event(f"event-{round_}-{i}", timestamp=4)],
            )
            for i in range(5)
        ]
        assert compare(batch)
    # a request may add up to its own count above a bound before the next request drops them
    assert len(_groups._resources) <= 8 + 5
    assert len(_groups._scopes) <= 8 + 5
    assert len(encoder._span_names) <= 8
    assert len(encoder._event_names) <= 8
    assert len(_wire._KEYS) <= 8


def test_long_keys_and_names_are_not_cached() -> None:
    long = "k" * (max(_wire.KEY_CACHE_MAX_LENGTH, encoder._NAME_MAX_LENGTH) + 1)
    assert compare([_span(name=long, attributes={long: long})])
    assert long not in _wire._KEYS
    assert long not in encoder._span_names


def test_a_resource_object_is_not_confused_with_a_later_one_at_the_same_address() -> None:
    # The cache keeps the resources it encoded alive, so an id is never reused while
    # cached; after clear_caches() a new object at a recycled id is encoded afresh.
    for i in range(50):
        resource = Resource({"tenant.id": f"t{i}"})
        assert compare([_span(resource=resource)])
        clear_caches()
        del resource


# ---------------------------------------------------------------- concurrency


def test_concurrent_callers_each_get_their_own_request() -> None:
    """Callers on several threads, some emptying the caches, each get the SDK's bytes."""
    tenants = [Resource({"tenant.id": f"t{i}"}) for i in range(30)]
    batches = [
        [
            _span(
                name=f"op{t}",
                resource=tenants[(t + i) % 30],
                kind=SpanKind.SERVER,
                attributes={"n": i, "s": "x" * i},
            )
            for i in range(40)
        ]
        for t in range(8)
    ]
    expected = [sdk_encode(batch).SerializeToString() for batch in batches]
    failures: list[int] = []

    def work(index: int) -> None:
        for _ in range(20):
            if index % 3 == 0:
                clear_caches()
            if encode_spans(batches[index]) != expected[index]:
                failures.append(index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def test_large_values_spans_and_requests() -> None:
    """Lengths past one- and two-byte varints, and past the precomputed varint table."""
    big = _span(
        name="n" * 5000,
        attributes={
            "huge": "ż" * 100_000,
            "blob": b"\x01" * 70_000,
            "many": tuple(range(-1000, 1000)),
            **{f"k{i}": i for i in range(3000)},
        },
        events=[Event("e" * 300, {"v": "x" * 200}, timestamp=3) for _ in range(50)],
    )
    assert compare([big])
    scopes = [InstrumentationScope(f"lib{i % 3}", "1") for i in range(3)]
    assert compare([_span(instrumentation_scope=scopes[i % 3]) for i in range(3000)])


# --------------------------------------------- subclasses, shared trace states


class _Attributes(BoundedAttributes):
    pass


class _Events(BoundedList):  # type: ignore[type-arg]
    pass


class _Event(Event):
    @property
    def name(self) -> str:
        return "public " + self._name


class _Link(Link):
    @property
    def attributes(self) -> Any:
        return {"public": True}


class _Status(Status):
    pass


def test_subclasses_of_the_sdk_containers_are_read_through_their_accessors() -> None:
    events = _Events(1)
    events.extend([_Event("dropped", timestamp=1), _Event("kept", {"a": 1}, timestamp=2)])
    span = _span(
        attributes=_Attributes(2, {"a": 1, "b": 2, "c": 3}),
        events=events,
        links=[_Link(_CONTEXT, {"private": True})],
        status=_Status(StatusCode.ERROR, "boom"),
    )
    assert compare([span])
    decoded = _only_span(encode_spans([span]))
    assert decoded.dropped_attributes_count == 1
    assert decoded.dropped_events_count == 1
    assert decoded.events[0].name == "public kept"
    assert [kv.key for kv in decoded.links[0].attributes] == ["public"]


class _CountingTraceState(TraceState):
    items_calls = 0

    def items(self) -> Any:
        _CountingTraceState.items_calls += 1
        return super().items()


def test_a_trace_state_shared_by_spans_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    states = [_CountingTraceState([("vendor", f"v{i}"), ("other", "x")]) for i in range(3)]
    contexts = [SpanContext(i + 1, i + 1, False, trace_state=s) for i, s in enumerate(states)]
    batch = [_span(context=contexts[i % 3], parent=contexts[i % 3]) for i in range(40)]
    assert compare(batch)
    _CountingTraceState.items_calls = 0
    encode_spans(batch)
    assert _CountingTraceState.items_calls == 0  # all three came from the cache
    monkeypatch.setattr(encoder, "NAME_CACHE_SIZE", 4)
    many = [
        SpanContext(i + 1, i + 1, False, trace_state=TraceState([("v", f"{i}")])) for i in range(10)
    ]
    assert compare([_span(context=context) for context in many])
    assert len(encoder._trace_states) <= 4
