"""What a span costs in an OTLP request: sizes, checks, and the one-pass path of plain spans.

gRPC servers refuse messages above 4 MiB by default (collectors, Phoenix), and a
batch is a count of spans, not of bytes; the pipeline sizes each span (an upper
bound of its encoded size) to split batches under the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from tenantrace.export._ended import ended_attributes, ended_items, has_items

__all__ = [
    "MAX_REQUEST_BYTES",
    "REQUEST_BUDGET_BYTES",
    "UnexportableSpanError",
    "plain_span_size",
    "resource_size",
    "span_size",
]

# ------------------------------------------------------- OTLP request limits
#
# gRPC servers refuse messages above 4 MiB by default (collectors, Phoenix), and
# a batch is a count of spans, not of bytes: 512 spans at the default limits
# (128 attributes of 4096 characters, 128 events) can be hundreds of MiB. The
# pipeline therefore estimates each span's encoded size (an upper bound, checked
# against the real OTLP encoder by the tests), splits batches so that each
# request stays under the budget, and trims the rare span that cannot fit on
# its own, recording what it removed in the standard ``dropped_*_count`` fields.
# The same pass repairs strings protobuf cannot encode (lone surrogates), which
# would otherwise make the encoder reject the whole batch, every tenant's spans.

MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
# Headroom under the limit for the request's own framing and estimate slack.
REQUEST_BUDGET_BYTES: Final = MAX_REQUEST_BYTES - 256 * 1024

# Upper bounds of protobuf framing, in bytes: tags, length prefixes, fixed fields.
_KEY_VALUE: Final = 20
_ARRAY_ITEM: Final = 12
_SCALAR: Final = 11
_SPAN: Final = 160
_EVENT: Final = 40
_LINK: Final = 64
_SCOPE: Final = 64
_RESOURCE: Final = 64
_INT64_LIMIT: Final = 2**63
_INT64 = range(-_INT64_LIMIT, _INT64_LIMIT)
# Span names and status descriptions have no SDK limit; a span too large for a
# request gets them cut to this many characters.
_MAX_TEXT: Final = 4096

_UINT64_LIMIT: Final = 2**64
_TRACE_ID_LIMIT: Final = 2**128


class UnexportableSpanError(ValueError):
    """A span that cannot be made encodable: its own context or a timestamp is unreadable."""


def _str_size(value: str) -> tuple[int, bool]:
    """Encoded size of a string, and whether protobuf can encode it."""
    if value.isascii():
        return len(value), True
    try:
        return len(value.encode("utf-8")), True
    except UnicodeEncodeError:  # a lone surrogate: protobuf would raise
        return len(value) * 3, False


def _text_size(value: object) -> tuple[int, bool]:
    """``_str_size`` of a field protobuf takes as a string; anything else cannot be encoded."""
    if isinstance(value, str):
        return _str_size(value)
    return _SCALAR, False


def _value_size(value: object) -> tuple[int, bool]:  # noqa: PLR0911 - one return per type
    if isinstance(value, str):
        return _str_size(value)
    if value is None or isinstance(value, bool | float):  # NaN and infinities encode
        return _SCALAR, True
    if isinstance(value, int):
        return _SCALAR, value in _INT64
    if isinstance(value, bytes):
        return len(value), True
    if isinstance(value, Sequence):
        total, ok = 0, True
        for item in value:
            size, item_ok = _value_size(item)
            total += size + _ARRAY_ITEM
            ok = ok and item_ok
        return total, ok
    if isinstance(value, Mapping):
        return _attributes_size(value)
    return _SCALAR, False  # a type the OTLP encoder refuses (it would drop the attribute)


def _attributes_size(attributes: Attributes | Mapping[str, object]) -> tuple[int, bool]:
    items = ended_attributes(attributes)
    if not items:
        return 0, True
    total, ok = 0, True
    for key, value in items.items():
        # Fast path for the common case, on the export thread for every span:
        # ASCII key, ASCII string or small scalar value.
        if type(key) is str and key.isascii():
            if type(value) is str and value.isascii():
                total += len(key) + len(value) + _KEY_VALUE
                continue
            if (
                type(value) is bool
                or type(value) is float
                or (type(value) is int and -_INT64_LIMIT <= value < _INT64_LIMIT)
            ):
                total += len(key) + _SCALAR + _KEY_VALUE
                continue
        key_size, key_ok = _text_size(key)
        value_size, value_ok = _value_size(value)
        total += key_size + value_size + _KEY_VALUE
        ok = ok and key_ok and value_ok
    return total, ok


def _time_ok(value: object) -> bool:
    """A timestamp the encoder takes: None or nanoseconds in a uint64."""
    return value is None or (type(value) is int and 0 <= value < _UINT64_LIMIT)


def _context_ok(context: object) -> bool:
    """A span context the encoder can write: a 128-bit trace id and a 64-bit span id."""
    if not isinstance(context, SpanContext):
        return False
    trace_id, span_id = context.trace_id, context.span_id
    return (
        type(trace_id) is int
        and 0 <= trace_id < _TRACE_ID_LIMIT
        and type(span_id) is int
        and 0 <= span_id < _UINT64_LIMIT
    )


def _fields_ok(span: ReadableSpan) -> bool:
    """The fields the SDK takes from callers unchecked (kind, status code,
    timestamps) and a transform could break (contexts) have types the encoder takes."""
    status = span._status
    parent = span._parent
    return (
        type(span._kind) is SpanKind
        and (status is None or type(status.status_code) is StatusCode)
        and _time_ok(span._start_time)
        and _time_ok(span._end_time)
        and (parent is None or _context_ok(parent))
        and _context_ok(span._context)
    )


def span_size(span: ReadableSpan) -> tuple[int, bool]:
    """An upper bound of ``span``'s OTLP-encoded size (without its Resource),
    and whether the OTLP encoder can encode all of it: every string (no lone
    surrogate), integer (64-bit), timestamp, id and field type.

    May raise on a span of a shape no SDK makes; the pipeline repairs such a span.
    """
    # Runs on the export thread for every span: the ended span's private fields
    # (the public properties copy) and the ASCII fast path inline.
    name = span._name
    total, ok = (len(name), True) if type(name) is str and name.isascii() else _text_size(name)
    envelope, envelope_ok = _envelope_size(span)
    total, ok = total + envelope, ok and envelope_ok and _fields_ok(span)
    description = span._status.description if span._status is not None else None
    if description:
        size, desc_ok = _text_size(description)
        total, ok = total + size, ok and desc_ok
    size, attrs_ok = _attributes_size(span._attributes)
    total, ok = total + size, ok and attrs_ok
    if has_items(span._events):  # most spans have neither events nor links
        for event in ended_items(span._events):
            size, name_ok = _text_size(event.name)
            attrs, attrs_ok = _attributes_size(event.attributes)
            total += _EVENT + size + attrs
            ok = ok and name_ok and attrs_ok and _time_ok(event.timestamp)
    if has_items(span._links):
        for link in ended_items(span._links):
            attrs, attrs_ok = _attributes_size(link.attributes)
            total += _LINK + attrs
            ok = ok and attrs_ok and _context_ok(link.context)
    return total, ok


def plain_span_size(
    span: ReadableSpan,
    keys: AbstractSet[str] | None = None,
    unchanged: Callable[[str, object], bool] | None = None,
) -> int | None:
    """``span_size`` of a plain span in one pass, or None when the span is not plain.

    Plain, as most spans are: no trace state, ASCII names and status
    description, the kind, status code and timestamps of the SDK's own types,
    and span, event and link attributes with ASCII keys (all in ``keys``, when
    given) and ASCII string, bool, float or 64-bit int values.
    Such a span is encodable, and a transform that leaves spans with only
    ``keys`` as they are need not see it: the export thread checks and sizes it
    here, touching each field once, instead of in two passes. With ``keys``
    (a scrubber in force) a plain span also has no events, no links and no
    status description: those are free text the scrubber judges by shape. An
    attribute whose key is not in ``keys`` still leaves the span plain when
    ``unchanged(key, value)`` says the scrubber would export it as it is (a URL
    with nothing to redact).
    """
    has_events = has_items(span._events)
    has_links = has_items(span._links)
    attributes = span._attributes
    values = attributes._dict if type(attributes) is BoundedAttributes else attributes
    name = span._name
    status = span._status
    description = status.description or ""
    context = span._context
    start, end = span._start_time, span._end_time
    scope = span._instrumentation_scope
    known = _SCOPE_SIZES.get(id(scope)) if scope is not None else (None, 0, True)
    if keys is not None and (description or has_events or has_links):
        return None
    if (
        type(name) is not str
        or not name.isascii()
        or not description.isascii()
        or (context is not None and context.trace_state is not DEFAULT_TRACE_STATE)
        # Set by callers and stored unchecked by the SDK: a span.end(end_time=1.5e18).
        or type(span._kind) is not SpanKind
        or type(status.status_code) is not StatusCode
        or not ((type(start) is int and 0 <= start < _UINT64_LIMIT) or start is None)
        or not ((type(end) is int and 0 <= end < _UINT64_LIMIT) or end is None)
        # The first span of a scope, or one that cannot be encoded: the full path.
        or known is None
        or known[0] is not scope
        or not known[2]
    ):
        return None
    size = _plain_attributes_size(values, keys, unchanged)
    if size is None:
        return None
    total = _SPAN + len(name) + len(description) + known[1] + size
    if has_events:  # most spans have neither events nor links
        for event in ended_items(span._events):
            event_name, timestamp = event.name, event.timestamp
            size = _plain_attributes_size(ended_attributes(event.attributes), keys)
            if (
                size is None
                or type(event_name) is not str
                or not event_name.isascii()
                or not (
                    (type(timestamp) is int and 0 <= timestamp < _UINT64_LIMIT) or timestamp is None
                )
            ):
                return None
            total += _EVENT + len(event_name) + size
    if has_links:
        for link in ended_items(span._links):
            size = _plain_attributes_size(ended_attributes(link.attributes), keys)
            if size is None or not _context_ok(link.context):
                return None
            total += _LINK + size
    return total


def _plain_attributes_size(
    values: Mapping[str, object] | None,
    keys: AbstractSet[str] | None,
    unchanged: Callable[[str, object], bool] | None = None,
) -> int | None:
    """``_attributes_size`` of plain attributes (see ``plain_span_size``), else None."""
    if not values:
        return 0
    if keys is not None and not values.keys() <= keys:
        if unchanged is None:
            return None
        for key in values.keys() - keys:
            if not unchanged(key, values[key]):
                return None
    total = 0
    for key, value in values.items():
        kind = type(value)
        if type(key) is not str or not key.isascii():
            return None
        if kind is str and value.isascii():  # type: ignore[attr-defined]
            total += len(key) + len(value) + _KEY_VALUE  # type: ignore[arg-type]
        elif kind is bool or kind is float or (kind is int and value in _INT64):
            total += len(key) + _SCALAR + _KEY_VALUE
        else:
            return None
    return total


def _envelope_size(span: ReadableSpan) -> tuple[int, bool]:
    """Fixed fields, the scope and the trace state: what trimming cannot remove."""
    total, ok = _SPAN, True
    scope = span._instrumentation_scope
    if scope is not None:
        # One scope per tracer serves many spans: remembered by identity, which
        # costs less than the scope's Python-level hash.
        known = _SCOPE_SIZES.get(id(scope))
        if known is None or known[0] is not scope:
            if len(_SCOPE_SIZES) >= _MAX_SCOPES:
                _SCOPE_SIZES.clear()
            known = _SCOPE_SIZES[id(scope)] = (scope, *_scope_size(scope))
        total += known[1]
        ok = known[2]
    context = span._context
    if context is not None and context.trace_state:
        total += len(context.trace_state.to_header())
    return total, ok


_MAX_SCOPES: Final = 256
_SCOPE_SIZES: dict[int, tuple[InstrumentationScope, int, bool]] = {}


def _scope_size(scope: InstrumentationScope) -> tuple[int, bool]:
    # Library tracers' scope names and versions come from callers too.
    try:
        name, name_ok = _text_size(scope.name)
        version, version_ok = _text_size(scope.version or "")
        schema, schema_ok = _text_size(scope.schema_url or "")
        attributes, attributes_ok = _attributes_size(scope.attributes)
    except Exception:  # a scope of a shape no SDK makes: repaired with its span
        return _SCOPE, False
    size = _SCOPE + name + version + attributes + schema
    return size, name_ok and version_ok and schema_ok and attributes_ok


# id(resource) -> (resource, size): a tenant's Resource is sized once, not per batch.
# The Resource is held so that its id cannot be reused while cached.
_RESOURCE_SIZES: dict[int, tuple[Resource, int]] = {}
_MAX_RESOURCE_SIZES: Final = 16_384


def resource_size(resource: Resource) -> int:
    """An upper bound of the encoded size of ``resource`` in a request."""
    own = getattr(resource, "otlp_size", None)  # a tenant's Resource keeps its size
    if own is not None:
        return own  # type: ignore[no-any-return]
    known = _RESOURCE_SIZES.get(id(resource))
    if known is not None and known[0] is resource:
        return known[1]
    size, _ = _attributes_size(resource.attributes)
    total = _RESOURCE + size + len(resource.schema_url or "")
    if hasattr(type(resource), "otlp_size"):
        resource.otlp_size = total  # type: ignore[attr-defined]
        return total
    if len(_RESOURCE_SIZES) >= _MAX_RESOURCE_SIZES:
        _RESOURCE_SIZES.clear()
    _RESOURCE_SIZES[id(resource)] = (resource, total)
    return total
