"""tenantrace.export.encode_spans against the SDK's OTLP encoder, on generated spans.

Each batch is encoded by both; the decoded ``ExportTraceServiceRequest``s must
be equal, and the bytes are compared too: every batch so far encodes to the
very same bytes, which the tests assert (the tally is printed with ``-s``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, Status, StatusCode
from otlp_spans import (
    attribute_dicts,
    batches,
    compare,
    resources,
    span_contexts,
    texts,
    values,
)

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
_TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_tally() -> Iterator[None]:
    yield
    print(f"\nencoder equality: {dict(_TALLY)}")


def _check(batch: list[Any], case: str) -> None:
    identical = compare(batch)
    _TALLY[f"{case}: identical bytes" if identical else f"{case}: equal messages only"] += 1
    assert identical, "the decoded requests are equal but the bytes differ"


@_SETTINGS
@given(batches())
def test_constructed_spans_encode_as_the_sdk_does(batch: list[ReadableSpan]) -> None:
    _check(batch, "ReadableSpan(...)")


class _DrawnIds(IdGenerator):
    """Span and trace ids from hypothesis' randomness (the SDK's use the random module)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1


@st.composite
def _provider_batches(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans made by real TracerProviders (one per resource), with span limits that drop."""
    limits = SpanLimits(
        max_span_attributes=draw(st.integers(1, 6)),
        max_events=draw(st.integers(1, 3)),
        max_links=draw(st.integers(1, 3)),
        max_event_attributes=draw(st.integers(1, 4)),
        max_link_attributes=draw(st.integers(1, 4)),
        max_attribute_length=draw(st.one_of(st.none(), st.integers(1, 30))),
    )
    exporter = InMemorySpanExporter()
    ids = _DrawnIds(draw(st.randoms(use_true_random=False)))
    providers = []
    for resource in draw(st.lists(resources(), min_size=1, max_size=3)):
        provider = TracerProvider(resource=resource, span_limits=limits, id_generator=ids)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
    for _ in range(draw(st.integers(1, 6))):
        provider = draw(st.sampled_from(providers))
        tracer = provider.get_tracer(
            draw(st.sampled_from(["app", "db", "http"])),
            draw(st.sampled_from([None, "1.0"])),
            schema_url=draw(st.sampled_from([None, "https://opentelemetry.io/schemas/1.21.0"])),
            attributes=draw(st.one_of(st.none(), attribute_dicts)),
        )
        parent = draw(st.one_of(st.none(), span_contexts()))
        ctx = trace_api.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        span_links = [
            Link(draw(span_contexts()), draw(st.one_of(st.none(), attribute_dicts)))
            for _ in range(draw(st.integers(0, 4)))
        ]
        span = tracer.start_span(
            draw(texts),
            context=ctx,
            kind=draw(st.sampled_from(list(SpanKind))),
            attributes=draw(attribute_dicts),
            links=span_links,
        )
        for key, value in draw(st.dictionaries(texts, values, max_size=4)).items():
            span.set_attribute(key, value)
        for _ in range(draw(st.integers(0, 4))):
            span.add_event(draw(texts), draw(st.one_of(st.none(), attribute_dicts)))
        if draw(st.booleans()):
            span.record_exception(ValueError(draw(texts)))
        code = draw(st.sampled_from(list(StatusCode)))
        span.set_status(Status(code, draw(st.one_of(st.none(), texts))))
        span.end()
    for provider in providers:
        provider.shutdown()
    return list(exporter.get_finished_spans())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_provider_batches())
def test_tracer_provider_spans_encode_as_the_sdk_does(batch: list[ReadableSpan]) -> None:
    token = otel_context.attach(otel_context.Context())
    try:
        _check(batch, "TracerProvider")
    finally:
        otel_context.detach(token)


def test_values_at_the_edges() -> None:
    edges: dict[str, Any] = {
        "min": -(1 << 63),
        "max": (1 << 63) - 1,
        "zero": 0,
        "neg": -1,
        "false": False,
        "empty": "",
        "negzero": -0.0,
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "bytes": b"\x00\xff",
        "no_items": (),
        "none_inside": ("a", None, "b"),
        "none": None,
        "nested": {"a": (1, {"b": None}), 7: "int key"},
        "non-ascii": "żółw 🐢 鍵",
        "long": "x" * 300,
        "": "empty key",
    }
    resource = Resource({"service.name": "edges"})
    spans = [
        ReadableSpan("edges", next(_contexts()), None, resource, edges, start_time=1, end_time=2),
        ReadableSpan("", next(_contexts()), None, resource, None),  # no name, no times
    ]
    _check(spans, "edges")


def _contexts() -> Iterator[trace_api.SpanContext]:
    yield trace_api.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False)


class _RedactingSpan(ReadableSpan):
    """A ReadableSpan whose public accessors differ from its private fields."""

    @property
    def attributes(self) -> Any:
        return {key: "redacted" for key in self._attributes or {}}

    @property
    def name(self) -> str:
        return "public name"


def test_a_subclass_with_its_own_accessors_is_read_through_them() -> None:
    span = _RedactingSpan(
        "private name",
        next(_contexts()),
        attributes={"secret": "s3cret"},
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "x"),
        start_time=5,
        end_time=6,
    )
    _check([span], "subclass")
