"""The one span exporter the shared pipeline writes to, and what OTLP asks of it.

- ``build_exporter``: the exporter for the config; an OTLP exporter is rebuilt in
  a forked child (``PerProcessExporter``).
- ``rate_limit_otel_logs``: the SDK's and the OTLP exporters' per-attribute and
  per-batch log lines, once per message per minute.
- ``span_size`` / ``fit_span``: OTLP request limits (the pipeline splits batches
  to fit gRPC's 4 MiB messages and repairs spans protobuf cannot encode).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import IO, Final, TypeVar
from urllib.parse import urlsplit

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, Status
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes, AttributeValue

from tenantrace.instrumentation._ended import ended_attributes, ended_items, has_items
from tenantrace.instrumentation.config import TelemetryConfig

__all__ = [
    "MAX_REQUEST_BYTES",
    "REQUEST_BUDGET_BYTES",
    "CompactConsoleSpanExporter",
    "NullSpanExporter",
    "PerProcessExporter",
    "RateLimitFilter",
    "build_exporter",
    "fit_span",
    "otlp_http_url",
    "plain_span_size",
    "rate_limit_otel_logs",
    "resource_size",
    "span_size",
]

_T = TypeVar("_T")

# The OTLP exporters log every failed batch (and every retry) at ERROR/WARNING:
# during a collector outage that is a line or more per batch, forever. The
# failures are already counted in get_stats(), so these loggers are rate limited.
# The SDK's attribute bounds log every truncated value and every attribute
# dropped from a full span, and the OTLP encoder logs (with a traceback) every
# attribute it cannot encode: per call, from user code. Rate limited as well.
OTEL_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.common._internal",
    "opentelemetry.attributes",
    "opentelemetry.sdk.trace",
)
LOG_INTERVAL_S: Final = 60.0
# Distinct message templates remembered by the filter; past it, the oldest are forgotten.
_MAX_TEMPLATES: Final = 256


class RateLimitFilter(logging.Filter):
    """Lets each message template through once per ``interval_s``; counts the rest.

    The next record let through says how many like it were suppressed, so an
    outage stays visible in the logs without flooding them.
    """

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self._interval_s:
                self._last[key] = (last, suppressed + 1)
                return False
            if key not in self._last and len(self._last) >= _MAX_TEMPLATES:
                self._last.pop(next(iter(self._last)))
            self._last[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
        return True


_filter_lock = threading.Lock()


def rate_limit_otel_logs() -> None:
    """Install one ``RateLimitFilter`` on each noisy OpenTelemetry logger (idempotent)."""
    with _filter_lock:
        for name in OTEL_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
                logger.addFilter(RateLimitFilter())


class NullSpanExporter(SpanExporter):
    """Accepts every span and sends it nowhere (``OTEL_TRACES_EXPORTER=none``)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class CompactConsoleSpanExporter(SpanExporter):
    """One line per span: project, tenant, name, duration, status, ids."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        import sys

        out = self._out or sys.stdout
        for span in spans:
            out.write(format_span_line(span) + "\n")
        out.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def format_span_line(span: ReadableSpan) -> str:
    resource = span.resource.attributes
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    ctx = span.get_span_context()
    trace_id = f"{ctx.trace_id:032x}" if ctx is not None else "-"
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "root"
    project = resource.get("openinference.project.name", "?")
    return (
        f"[{project}] tenant={resource.get('tenant.id', '?')} "
        f"{span.name} {duration_ms:.2f}ms {span.status.status_code.name} "
        f"trace={trace_id} parent={parent}"
    )


def otlp_http_url(endpoint: str, use_tls: bool) -> str:
    """The OTLP/HTTP traces URL for ``endpoint``: scheme added, ``/v1/traces`` appended.

    As the OTLP exporter specification says for ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    a base URL without a path gets the signal path appended.
    """
    url = endpoint if "://" in endpoint else f"{'https' if use_tls else 'http'}://{endpoint}"
    if urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + "/v1/traces"
    return url


class PerProcessExporter(SpanExporter):
    """An exporter that is rebuilt, once, in a process forked after it was made.

    A gRPC channel or an HTTP connection pool made before ``fork()`` shares its
    sockets with the parent; gRPC documents such a channel as unusable in the
    child. A forked worker (gunicorn, uvicorn ``--workers``) therefore gets its
    own exporter, built from the same settings on its first export. The
    parent's exporter is left alone in the child: closing it could write on the
    parent's connection.
    """

    def __init__(self, factory: Callable[[], SpanExporter]) -> None:
        self._factory = factory
        self._exporter = factory()  # fails here, at start-up, if it cannot be built
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def wrapped(self) -> SpanExporter:
        return self._exporter

    def _current(self) -> SpanExporter:
        if self._pid == os.getpid():
            return self._exporter
        with self._lock:
            if self._pid != os.getpid():
                self._exporter = self._factory()
                self._pid = os.getpid()
        return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._current().export(spans)

    def shutdown(self) -> None:
        if self._pid == os.getpid():  # a child that never exported has nothing of its own
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._pid != os.getpid():
            return True
        return self._exporter.force_flush(timeout_millis)


def build_exporter(config: TelemetryConfig) -> SpanExporter:
    """The exporter for ``config``; raises if it cannot be built (the caller degrades)."""
    kind = config.effective_exporter
    if kind == "none":
        return NullSpanExporter()
    if kind == "memory":
        return InMemorySpanExporter()
    if kind == "console":
        return CompactConsoleSpanExporter()
    rate_limit_otel_logs()
    return PerProcessExporter(lambda: _build_otlp(config))


def _build_otlp(config: TelemetryConfig) -> SpanExporter:
    timeout_s = config.batch_config.export_timeout_millis / 1000
    headers = dict(config.otlp_headers) or None
    if config.otlp_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(
            endpoint=otlp_http_url(config.otlp_endpoint, config.otlp_use_tls),
            headers=headers,
            timeout=timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    endpoint = config.otlp_endpoint
    # The gRPC exporter decides TLS from the scheme when one is given.
    insecure = not config.otlp_use_tls
    if "://" in endpoint:
        insecure = urlsplit(endpoint).scheme != "https"
    return GrpcExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout_s)


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


def _str_size(value: str) -> tuple[int, bool]:
    """Encoded size of a string, and whether protobuf can encode it."""
    if value.isascii():
        return len(value), True
    try:
        return len(value.encode("utf-8")), True
    except UnicodeEncodeError:  # a lone surrogate: protobuf would raise
        return len(value) * 3, False


def _value_size(value: object) -> tuple[int, bool]:  # noqa: PLR0911 - one return per type
    if isinstance(value, str):
        return _str_size(value)
    if isinstance(value, bool | float):
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
    return _SCALAR, True


def _attributes_size(attributes: Attributes | Mapping[str, object]) -> tuple[int, bool]:
    items = ended_attributes(attributes)
    if not items:
        return 0, True
    total, ok = 0, True
    for key, value in items.items():
        # Fast path for the common case, on the export thread for every span:
        # ASCII key, ASCII string or small scalar value.
        if key.isascii():
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
        key_size, key_ok = _str_size(key)
        value_size, value_ok = _value_size(value)
        total += key_size + value_size + _KEY_VALUE
        ok = ok and key_ok and value_ok
    return total, ok


def span_size(span: ReadableSpan) -> tuple[int, bool]:
    """An upper bound of ``span``'s OTLP-encoded size (without its Resource),
    and whether every string and integer in it can be encoded."""
    # Runs on the export thread for every span: the ended span's private fields
    # (the public properties copy) and the ASCII fast path inline.
    name = span._name
    total, ok = (len(name), True) if name.isascii() else _str_size(name)
    envelope, envelope_ok = _envelope_size(span)
    total, ok = total + envelope, ok and envelope_ok
    description = span._status.description
    if description:
        size, desc_ok = _str_size(description)
        total, ok = total + size, ok and desc_ok
    size, attrs_ok = _attributes_size(span._attributes)
    total, ok = total + size, ok and attrs_ok
    if has_items(span._events):  # most spans have neither events nor links
        for event in ended_items(span._events):
            size, name_ok = _str_size(event.name)
            attrs, attrs_ok = _attributes_size(event.attributes)
            total += _EVENT + size + attrs
            ok = ok and name_ok and attrs_ok
    if has_items(span._links):
        for link in ended_items(span._links):
            attrs, attrs_ok = _attributes_size(link.attributes)
            total += _LINK + attrs
            ok = ok and attrs_ok
    return total, ok


def plain_span_size(span: ReadableSpan, keys: AbstractSet[str] | None = None) -> int | None:
    """``span_size`` of a plain span in one pass, or None when the span is not plain.

    Plain, as most spans are: no trace state, ASCII names and status
    description, and span, event and link attributes with ASCII keys (all in
    ``keys``, when given) and ASCII string, bool, float or 64-bit int values.
    Such a span is encodable, and a transform that leaves spans with only
    ``keys`` as they are need not see it: the export thread checks and sizes it
    here, touching each field once, instead of in two passes.
    """
    attributes = span._attributes
    values = attributes._dict if type(attributes) is BoundedAttributes else attributes
    name = span._name
    description = span._status.description or ""
    context = span._context
    scope = span._instrumentation_scope
    known = _SCOPE_SIZES.get(id(scope)) if scope is not None else (None, 0, True)
    if (
        not name.isascii()
        or not description.isascii()
        or (context is not None and context.trace_state is not DEFAULT_TRACE_STATE)
        # The first span of a scope, or one that cannot be encoded: the full path.
        or known is None
        or known[0] is not scope
        or not known[2]
    ):
        return None
    size = _plain_attributes_size(values, keys)
    if size is None:
        return None
    total = _SPAN + len(name) + len(description) + known[1] + size
    if has_items(span._events):  # most spans have neither events nor links
        for event in ended_items(span._events):
            size = _plain_attributes_size(ended_attributes(event.attributes), keys)
            if size is None or not event.name.isascii():
                return None
            total += _EVENT + len(event.name) + size
    if has_items(span._links):
        for link in ended_items(span._links):
            size = _plain_attributes_size(ended_attributes(link.attributes), keys)
            if size is None:
                return None
            total += _LINK + size
    return total


def _plain_attributes_size(
    values: Mapping[str, object] | None, keys: AbstractSet[str] | None
) -> int | None:
    """``_attributes_size`` of plain attributes (see ``plain_span_size``), else None."""
    if not values:
        return 0
    if keys is not None and not values.keys() <= keys:
        return None
    total = 0
    for key, value in values.items():
        kind = type(value)
        if not key.isascii():
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
    name, name_ok = _str_size(scope.name)
    version, version_ok = _str_size(scope.version or "")
    attributes, attributes_ok = _attributes_size(scope.attributes)
    size = _SCOPE + name + version + attributes + len(scope.schema_url or "")
    return size, name_ok and version_ok and attributes_ok


def _repaired_scope(scope: InstrumentationScope | None) -> InstrumentationScope | None:
    if scope is None:
        return None
    return InstrumentationScope(
        _repair_str(scope.name),
        _repair_str(scope.version) if scope.version else scope.version,
        scope.schema_url,
        _repaired(scope.attributes, 0) if scope.attributes else scope.attributes,
    )


def resource_size(resource: Resource) -> int:
    """An upper bound of the encoded size of ``resource`` in a request."""
    size, _ = _attributes_size(resource.attributes)
    return _RESOURCE + size + len(resource.schema_url or "")


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _repair_str(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD, as a UTF-8 decoder would."""
    return value if _str_size(value)[1] else _SURROGATE.sub("\ufffd", value)


def _repair_value(value: object) -> AttributeValue:
    if isinstance(value, str):
        return _repair_str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return str(value)  # beyond int64: the encoder would drop the attribute
    if isinstance(value, tuple | list):
        return tuple(_repair_value(item) for item in value)
    return value  # type: ignore[return-value]


def _repaired(attributes: Attributes, dropped: int, limit: int | None = None) -> BoundedAttributes:
    items = list((attributes or {}).items())
    kept = items if limit is None else items[:limit]
    bounded = BoundedAttributes(
        maxlen=None,
        attributes={_repair_str(k): _repair_value(v) for k, v in kept},
        immutable=True,
    )
    bounded.dropped = dropped + len(items) - len(kept)
    return bounded


def _dropped(attributes: Attributes) -> int:
    return attributes.dropped if isinstance(attributes, BoundedAttributes) else 0


def _shorten(attributes: Attributes, budget: int) -> BoundedAttributes:
    """Attributes cut to ``budget`` bytes: long strings shortened, and the rest
    dropped (counted) if the keys alone do not fit."""
    items = list((attributes or {}).items())
    share = max(16, budget // max(1, len(items)) - _KEY_VALUE)
    kept: dict[str, AttributeValue] = {}
    used = 0
    for key, raw in items:
        value = _repair_value(raw)
        if isinstance(value, str) and len(value) > share:
            value = value[:share]
        size = _attributes_size({key: value})[0]
        if used + size > budget:
            break
        kept[_repair_str(key)] = value
        used += size
    bounded = BoundedAttributes(maxlen=None, attributes=kept, immutable=True)
    bounded.dropped = _dropped(attributes) + len(items) - len(kept)
    return bounded


def fit_span(span: ReadableSpan, budget: int = REQUEST_BUDGET_BYTES) -> ReadableSpan:
    """A copy of ``span`` that encodes, and whose estimated size fits ``budget``.

    Names and strings protobuf cannot encode get U+FFFD in place of the bad
    characters. If the span is too large, span attributes keep at most half the
    budget (long values shortened), then events and links are kept in order
    while they fit; what was removed is counted in the span's
    ``dropped_attributes_count`` / ``dropped_events_count`` / ``dropped_links_count``.
    """
    size, _ = span_size(span)
    oversize = size > budget
    name = _repair_str(span.name[:_MAX_TEXT] if oversize else span.name)
    fixed = _envelope_size(span)[0] + 3 * (
        len(name) + min(len(span.status.description or ""), _MAX_TEXT)
    )
    attributes: BoundedAttributes
    if oversize and _attributes_size(span.attributes)[0] > budget // 2:
        attributes = _shorten(span.attributes, budget // 2)
    else:
        attributes = _repaired(span.attributes, span.dropped_attributes)
    room = budget - fixed - _attributes_size(attributes)[0]
    events: BoundedList[Event] = BoundedList(None)
    for event in span.events:
        event_attrs = _repaired(event.attributes, event.dropped_attributes)
        cost = _EVENT + len(event.name) * 3 + _attributes_size(event_attrs)[0]
        if oversize and cost > room:
            break
        room -= cost
        events.append(
            Event(_repair_str(event.name), event_attrs, timestamp=event.timestamp, limit=None)
        )
    events.dropped = span.dropped_events + len(span.events) - len(events)
    links: BoundedList[Link] = BoundedList(None)
    for link in span.links:
        link_attrs = _repaired(link.attributes, link.dropped_attributes)
        cost = _LINK + _attributes_size(link_attrs)[0]
        if oversize and cost > room:
            break
        room -= cost
        links.append(Link(link.context, link_attrs))
    links.dropped = span.dropped_links + len(span.links) - len(links)
    status = span.status
    if status.description and (oversize or not _str_size(status.description)[1]):
        description = status.description[:_MAX_TEXT] if oversize else status.description
        status = Status(status.status_code, _repair_str(description))
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=_repaired_scope(span.instrumentation_scope),
    )
