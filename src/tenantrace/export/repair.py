"""Spans protobuf cannot encode, or too large for one request: repaired or trimmed alone.

One bad span must never cost another: the pipeline repairs what the OTLP
encoder would refuse (lone surrogates, ints past int64, values of unsupported
types, float timestamps), trims the rare span too large for any request
(recording what it removed in the standard ``dropped_*_count`` fields), and,
when an export still fails for a content reason, asks the real encoder which
spans it refuses (``unencodable``) to drop those alone.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from tenantrace.export._ended import ended_attributes
from tenantrace.export._scrub_rebuild import rebuilt_span
from tenantrace.export.sizing import (
    _EVENT,
    _INT64,
    _KEY_VALUE,
    _LINK,
    _MAX_TEXT,
    _UINT64_LIMIT,
    REQUEST_BUDGET_BYTES,
    UnexportableSpanError,
    _attributes_size,
    _context_ok,
    _envelope_size,
    _str_size,
    span_size,
)

__all__ = ["fit_span", "unencodable"]

# ------------------------------------------------------------------- repair

_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# What _repair_value returns for a value of a type the OTLP encoder refuses.
_UNSUPPORTED: Final = object()


def _repair_str(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD, as a UTF-8 decoder would."""
    return value if _str_size(value)[1] else _SURROGATE.sub("\ufffd", value)


def _int_text(value: int) -> str:
    """An integer as text: decimal, or hexadecimal past Python's digit limit."""
    try:
        return str(value)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return hex(value)


def _text(value: object) -> str:
    """What protobuf takes as a string field, made from whatever a caller put there."""
    if isinstance(value, str):
        return _repair_str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_text(value)
    try:
        text = str(value)
    except Exception:  # a __str__ that raises
        text = f"<unprintable {type(value).__name__}>"
    return _repair_str(text)


def _repair_value(value: object) -> object:
    """``value`` as the OTLP encoder takes it, or ``_UNSUPPORTED`` (a type it refuses)."""
    if value is None or isinstance(value, bool | float | bytes):
        return value
    if isinstance(value, str):
        return _repair_str(value)
    if isinstance(value, int):
        # Beyond int64 the encoder drops the attribute: its decimal string instead.
        return value if value in _INT64 else _int_text(value)
    if isinstance(value, Sequence):
        return tuple(_nested(item) for item in value)
    if isinstance(value, Mapping):
        return {_text(key): _nested(item) for key, item in value.items()}
    return _UNSUPPORTED


def _nested(value: object) -> object:
    """An array item or map value: one of a type the encoder refuses becomes empty (None)."""
    repaired = _repair_value(value)
    return None if repaired is _UNSUPPORTED else repaired


def _bounded(values: Mapping[str, object], dropped: int) -> BoundedAttributes:
    bounded = BoundedAttributes(maxlen=None, attributes=cast("Attributes", values), immutable=True)
    bounded.dropped = dropped
    return bounded


def _repaired(attributes: Attributes, dropped: int, limit: int | None = None) -> BoundedAttributes:
    """Attributes the encoder takes: strings and big integers repaired; an
    attribute with a non-string key or a value of a type the encoder refuses
    dropped, and counted with ``dropped``."""
    items = list(ended_attributes(attributes).items())
    kept: dict[str, object] = {}
    for key, raw in items if limit is None else items[:limit]:
        value = _repair_value(raw)
        if isinstance(key, str) and value is not _UNSUPPORTED:
            kept[_repair_str(key)] = value
    return _bounded(kept, dropped + len(items) - len(kept))


def _shorten(attributes: Attributes, budget: int, dropped: int) -> BoundedAttributes:
    """Attributes cut to ``budget`` bytes: long strings shortened, and the rest
    dropped (counted) if the keys alone do not fit."""
    items = list(ended_attributes(attributes).items())
    share = max(16, budget // max(1, len(items)) - _KEY_VALUE)
    kept: dict[str, object] = {}
    used = 0
    for key, raw in items:
        value = _repair_value(raw)
        if not isinstance(key, str) or value is _UNSUPPORTED:
            continue
        if isinstance(value, str) and len(value) > share:
            value = value[:share]
        size = _attributes_size({key: value})[0]
        if used + size > budget:
            break
        kept[_repair_str(key)] = value
        used += size
    return _bounded(kept, dropped + len(items) - len(kept))


def _timestamp(value: object) -> int | None:
    """A timestamp the encoder takes (uint64 nanoseconds); raises if none can be made."""
    if value is None:
        return None
    if type(value) is int and 0 <= value < _UINT64_LIMIT:
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and 0 <= number < _UINT64_LIMIT:
            return int(number)  # a float timestamp, e.g. span.end(end_time=1.7e18)
    raise UnexportableSpanError(f"an unreadable timestamp of type {type(value).__qualname__}")


def _repaired_scope(scope: InstrumentationScope | None) -> InstrumentationScope | None:
    if scope is None:
        return None
    return InstrumentationScope(
        _text(scope.name),
        _text(scope.version) if scope.version is not None else None,
        _text(scope.schema_url) if scope.schema_url is not None else None,
        _repaired(scope.attributes, 0) if scope.attributes else None,
    )


def _repaired_status(status: object) -> Status:
    if not isinstance(status, Status):
        return Status(StatusCode.UNSET)
    code = status.status_code
    if type(code) is not StatusCode:
        return Status(StatusCode.UNSET)
    if code is StatusCode.ERROR and status.description:
        return Status(code, _text(status.description))
    return Status(code)


def _repaired_events(span: ReadableSpan) -> BoundedList[Event]:
    """The span's events, repaired; one with an unreadable timestamp dropped (counted)."""
    events: BoundedList[Event] = BoundedList(None)
    lost = 0
    for event in span.events:
        try:
            timestamp = _timestamp(event.timestamp)
            attributes = _repaired(event.attributes, event.dropped_attributes)
            events.append(Event(_text(event.name), attributes, timestamp=timestamp, limit=None))
        except Exception:
            lost += 1
    events.dropped = span.dropped_events + lost
    return events


def _repaired_links(span: ReadableSpan) -> BoundedList[Link]:
    """The span's links, repaired; one whose context has no readable ids dropped (counted)."""
    links: BoundedList[Link] = BoundedList(None)
    lost = 0
    for link in span.links:
        try:
            if not _context_ok(link.context):
                raise UnexportableSpanError("an unreadable link context")
            links.append(Link(link.context, _repaired(link.attributes, link.dropped_attributes)))
        except Exception:
            lost += 1
    links.dropped = span.dropped_links + lost
    return links


def _repaired_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` the OTLP encoder accepts (not yet cut to any size).

    Raises ``UnexportableSpanError`` when its own context or its start or end
    time cannot be read: such a span cannot be repaired, only dropped.
    """
    context = span.context
    if not _context_ok(context):
        raise UnexportableSpanError("the span's context has no readable trace and span id")
    parent = span.parent
    return ReadableSpan(
        name=_text(span.name),
        context=context,
        parent=parent if parent is None or _context_ok(parent) else None,
        resource=span.resource,
        attributes=_repaired(span.attributes, span.dropped_attributes),
        events=_repaired_events(span),
        links=_repaired_links(span),
        kind=span.kind if type(span.kind) is SpanKind else SpanKind.INTERNAL,
        status=_repaired_status(span.status),
        start_time=_timestamp(span.start_time),
        end_time=_timestamp(span.end_time),
        instrumentation_scope=_repaired_scope(span.instrumentation_scope),
    )


def fit_span(span: ReadableSpan, budget: int = REQUEST_BUDGET_BYTES) -> ReadableSpan:
    """A copy of ``span`` that encodes, and whose estimated size fits ``budget``.

    First what the OTLP encoder would refuse is repaired: a name, event name,
    status description or scope name that is not a string becomes its
    ``str()``, lone surrogates become U+FFFD, integers beyond int64 their
    decimal string, float timestamps integers, an unknown kind INTERNAL; an
    attribute with a non-string key or a value of a type the encoder refuses
    is dropped, and so are an event with an unreadable timestamp and a link
    with an unreadable context (each counted in the span's
    ``dropped_attributes_count`` / ``dropped_events_count`` /
    ``dropped_links_count``). A span whose own context or start/end time
    cannot be read raises ``UnexportableSpanError``: it can only be dropped.

    Then, if the span is too large, span attributes keep at most half the
    budget (long values shortened), then events and links are kept in order
    while they fit; what was removed is counted in the same ``dropped_*`` fields.
    """
    span = _repaired_span(span)
    size, ok = span_size(span)
    if not ok:
        raise UnexportableSpanError("the span is still not encodable after repair")
    if size <= budget:
        return span
    return _trimmed(span, budget)


def _trimmed(span: ReadableSpan, budget: int) -> ReadableSpan:
    """A repaired span that is over ``budget``, cut to fit it."""
    name = span.name[:_MAX_TEXT]
    description = (span.status.description or "")[:_MAX_TEXT]
    fixed = _envelope_size(span)[0] + 3 * (len(name) + len(description))
    attributes: BoundedAttributes
    if _attributes_size(span.attributes)[0] > budget // 2:
        attributes = _shorten(span.attributes, budget // 2, span.dropped_attributes)
    else:
        attributes = _repaired(span.attributes, span.dropped_attributes)
    room = budget - fixed - _attributes_size(attributes)[0]
    events: BoundedList[Event] = BoundedList(None)
    for event in span.events:
        cost = _EVENT + len(event.name) * 3 + _attributes_size(event.attributes)[0]
        if cost > room:
            break
        room -= cost
        events.append(event)
    events.dropped = span.dropped_events + len(span.events) - len(events)
    links: BoundedList[Link] = BoundedList(None)
    for link in span.links:
        cost = _LINK + _attributes_size(link.attributes)[0]
        if cost > room:
            break
        room -= cost
        links.append(link)
    links.dropped = span.dropped_links + len(span.links) - len(links)
    status = span.status
    if status.description:
        status = Status(status.status_code, description)
    return rebuilt_span(
        span, name=name, attributes=attributes, events=events, links=links, status=status
    )


# ------------------------------------------------- the real encoder as judge


def _otlp_encoder() -> Callable[[Sequence[ReadableSpan]], Any] | None:
    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    except ImportError:  # pragma: no cover - a dependency of tenantrace
        return None
    return encode_spans


def unencodable(spans: Sequence[ReadableSpan]) -> list[int] | None:
    """The indexes of the spans the real OTLP encoder refuses, each tried alone
    (``[]`` when the whole request encodes); None without the OTLP exporter package.

    Encoding needs no network: this is how the pipeline tells an export that
    failed for a content reason (one bad span) from a collector that failed.
    """
    encode = _otlp_encoder()
    if encode is None:
        return None
    try:
        encode(spans)
    except Exception:
        pass
    else:
        return []
    bad: list[int] = []
    for index, span in enumerate(spans):
        try:
            encode([span])
        except Exception:
            bad.append(index)
    return bad
