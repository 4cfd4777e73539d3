"""Hypothesis strategies for SDK ended spans, and the comparison with the SDK's encoder.

Spans are real ``opentelemetry.sdk.trace.ReadableSpan`` objects, built with the
containers the SDK itself uses (``BoundedAttributes`` that clean values and
count the dropped ones, ``BoundedList`` for events and links) or with plain
dicts and tuples, as ``ReadableSpan(...)`` accepts both.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from tenantrace.export import encode_spans
from tenantrace.instrumentation.providers import TenantResource

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Any unicode but lone surrogates (which no UTF-8 encoder accepts).
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
long_texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=100, max_size=400)
keys = st.one_of(
    st.sampled_from(["http.method", "db.statement", "tenant.id", "k", "ключ", "鍵"]),
    texts,
)
ints = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([0, 1, -1, 127, 128, INT64_MIN, INT64_MAX, 1 << 32]),
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, float("inf"), float("-inf"), float("nan")]),
)
scalars = st.one_of(texts, long_texts, st.booleans(), ints, floats, st.binary(max_size=20))


def _homogeneous(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(element, max_size=5).map(tuple),
        st.lists(element, max_size=5),
        st.lists(st.one_of(element, st.none()), max_size=5).map(tuple),  # None inside
    )


sequences = st.one_of(
    *(_homogeneous(kind) for kind in (texts, st.booleans(), ints, floats, st.binary(max_size=8)))
)
# Extended attributes (SDK >= 1.3x): None, mappings, mixed and nested sequences.
extended = st.recursive(
    st.one_of(scalars, st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=6,
)
values = st.one_of(scalars, sequences, extended)
attribute_dicts = st.dictionaries(keys, values, max_size=8)


@st.composite
def attributes(draw: st.DrawFn, *, allow_plain: bool = True) -> Any:
    """None, a plain dict, or a BoundedAttributes (which may drop some: dropped count)."""
    raw = draw(attribute_dicts)
    choice = draw(st.sampled_from(["bounded", "plain", "none"] if allow_plain else ["bounded"]))
    if choice == "plain":
        return raw
    if choice == "none":
        return None
    maxlen = draw(st.one_of(st.none(), st.integers(0, 8)))
    bounded = BoundedAttributes(maxlen, raw, immutable=False)
    bounded.dropped += draw(st.integers(0, 3))
    return bounded


trace_states = st.one_of(
    st.just(TraceState()),
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_\-]{0,8}", fullmatch=True),
            st.from_regex(r"[a-zA-Z0-9]{1,8}", fullmatch=True),
        ),
        max_size=4,
        unique_by=lambda pair: pair[0],
    ).map(TraceState),
)


@st.composite
def span_contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        trace_id=draw(st.one_of(st.integers(1, (1 << 128) - 1), st.just(0))),
        span_id=draw(st.one_of(st.integers(1, (1 << 64) - 1), st.just(0))),
        is_remote=draw(st.booleans()),
        trace_flags=TraceFlags(draw(st.integers(0, 255))),
        trace_state=draw(trace_states),
    )


times = st.one_of(st.integers(0, (1 << 64) - 1), st.integers(1_600_000_000_000_000_000, 1 << 62))


@st.composite
def events(draw: st.DrawFn) -> Event:
    return Event(draw(texts), draw(attributes()), timestamp=draw(times))


@st.composite
def links(draw: st.DrawFn) -> Link:
    return Link(draw(span_contexts()), draw(attributes()))


def _bounded(items: list[Any], maxlen: int | None, extra_dropped: int) -> BoundedList[Any]:
    bounded: BoundedList[Any] = BoundedList(maxlen)
    bounded.extend(items)
    bounded.dropped += extra_dropped
    return bounded


@st.composite
def sequences_of(draw: st.DrawFn, element: st.SearchStrategy[Any]) -> Any:
    items = draw(st.lists(element, max_size=3))
    if draw(st.booleans()):
        return tuple(items)
    return _bounded(items, draw(st.one_of(st.none(), st.integers(0, 3))), draw(st.integers(0, 2)))


statuses = st.one_of(
    st.sampled_from([Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR)]),
    st.builds(Status, st.just(StatusCode.ERROR), st.one_of(st.none(), texts)),
)


@st.composite
def resources(draw: st.DrawFn) -> Resource:
    return Resource(draw(attribute_dicts), draw(st.one_of(st.none(), st.just(""), texts)))


@st.composite
def scopes(draw: st.DrawFn) -> InstrumentationScope | None:
    if draw(st.integers(0, 5)) == 0:
        return None
    return InstrumentationScope(
        draw(texts),
        draw(st.one_of(st.none(), texts)),
        draw(st.one_of(st.none(), texts)),
        draw(st.one_of(st.none(), attribute_dicts)),
    )


@st.composite
def spans(
    draw: st.DrawFn,
    resource_pool: list[Resource] | None = None,
    scope_pool: list[InstrumentationScope | None] | None = None,
) -> ReadableSpan:
    resource = draw(st.sampled_from(resource_pool)) if resource_pool else draw(resources())
    scope = draw(st.sampled_from(scope_pool)) if scope_pool else draw(scopes())
    return ReadableSpan(
        name=draw(texts),
        context=draw(span_contexts()),
        parent=draw(st.one_of(st.none(), span_contexts())),
        resource=resource,
        attributes=draw(attributes()),
        events=draw(sequences_of(events())),
        links=draw(sequences_of(links())),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=draw(statuses),
        start_time=draw(st.one_of(st.none(), times)),
        end_time=draw(st.one_of(st.none(), times)),
        instrumentation_scope=scope,
    )


def _copies(resource: Resource) -> list[Resource]:
    """The resource, an equal copy, an equal copy with its attributes in reverse
    order (equal for Resource.__eq__, so the SDK puts them in one ResourceSpans), and
    an equal tenant's Resource (which keeps its encoded entry on itself)."""
    attrs = dict(resource.attributes or {})
    return [
        resource,
        Resource(attrs, resource.schema_url),
        Resource(dict(reversed(list(attrs.items()))), resource.schema_url),
        TenantResource(Resource(attrs, resource.schema_url), "tenant", "project"),
    ]


@st.composite
def batches(draw: st.DrawFn) -> list[ReadableSpan]:
    """Spans across several resources (some equal but distinct objects) and scopes."""
    resource_pool = [
        copy
        for resource in draw(st.lists(resources(), min_size=1, max_size=3))
        for copy in _copies(resource)
    ]
    scope_pool = draw(st.lists(scopes(), min_size=1, max_size=4))
    if scope_pool[0] is not None:  # an equal, distinct scope
        first = scope_pool[0]
        scope_pool.append(
            InstrumentationScope(first.name, first.version, first.schema_url, first.attributes)
        )
    return draw(st.lists(spans(resource_pool, scope_pool), min_size=1, max_size=8))


def decode(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def compare(batch: list[ReadableSpan]) -> bool:
    """Encode with both encoders; assert the decoded requests are equal; return
    whether the bytes are identical too."""
    expected = sdk_encode(batch).SerializeToString()
    actual = encode_spans(batch)
    if actual == expected:
        return True
    assert decode(actual) == decode(expected), (decode(actual), decode(expected))
    return False
