"""The one span exporter the shared pipeline writes to, and what OTLP asks of it.

- ``build_exporter``: the exporter for the config; an OTLP exporter is rebuilt in
  a forked child (``PerProcessExporter``).
- ``rate_limit_otel_logs``: the SDK's and the OTLP exporters' per-attribute and
  per-batch log lines, once per message per minute.
- ``span_size`` / ``fit_span``: OTLP request limits (the pipeline splits batches
  to fit gRPC's 4 MiB messages and repairs spans protobuf cannot encode).
- ``unencodable``: which spans the real OTLP encoder refuses, one by one (the
  pipeline drops those alone when an export fails for a content reason).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import IO, Any, Final, TypeVar, cast
from urllib.parse import urlsplit

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes

from tenantrace.instrumentation._ended import ended_attributes, ended_items, has_items
from tenantrace.instrumentation.config import TelemetryConfig

__all__ = [
    "MAX_REQUEST_BYTES",
    "REQUEST_BUDGET_BYTES",
    "SYNC_EXPORT_TIMEOUT_MILLIS",
    "CompactConsoleSpanExporter",
    "NullSpanExporter",
    "PerProcessExporter",
    "RateLimitFilter",
    "UnexportableSpanError",
    "build_exporter",
    "fit_span",
    "otlp_http_url",
    "plain_span_size",
    "rate_limit_otel_logs",
    "resource_size",
    "span_size",
    "unencodable",
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


# In sync mode every span's export runs on the caller's thread, when its span
# ends: the OTLP exporter's timeout (which bounds its retries too) is capped to
# this, so a dead collector costs a span at most about this long (and the
# pipeline's circuit breaker then skips exports for a growing interval).
SYNC_EXPORT_TIMEOUT_MILLIS: Final = 1000


def _build_otlp(config: TelemetryConfig) -> SpanExporter:
    timeout_millis = config.batch_config.export_timeout_millis
    if config.batch_config.use_sync_export:
        timeout_millis = min(timeout_millis, SYNC_EXPORT_TIMEOUT_MILLIS)
    timeout_s = timeout_millis / 1000
    headers = dict(config.otlp_headers) or None
    # otlp_encoder="tenantrace": tenantrace.export's exporters, same options (docs/export.md).
    if config.otlp_protocol == "http/protobuf":
        if config.otlp_encoder == "tenantrace":
            from tenantrace.export.http import HttpSpanExporter

            http = HttpSpanExporter(
                endpoint=otlp_http_url(config.otlp_endpoint, config.otlp_use_tls),
                headers=headers,
                timeout=timeout_s,
            )
            http.name_tenants = config.tenant_id_on_every_span
            return http
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
    if config.otlp_encoder == "tenantrace":
        from tenantrace.export.grpc import GrpcSpanExporter

        grpc = GrpcSpanExporter(endpoint, insecure=insecure, headers=headers, timeout=timeout_s)
        grpc.name_tenants = config.tenant_id_on_every_span
        return grpc
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
    known = _RESOURCE_SIZES.get(id(resource))
    if known is not None and known[0] is resource:
        return known[1]
    size, _ = _attributes_size(resource.attributes)
    total = _RESOURCE + size + len(resource.schema_url or "")
    if len(_RESOURCE_SIZES) >= _MAX_RESOURCE_SIZES:
        _RESOURCE_SIZES.clear()
    _RESOURCE_SIZES[id(resource)] = (resource, total)
    return total


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
        instrumentation_scope=span.instrumentation_scope,
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
