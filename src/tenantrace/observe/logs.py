"""Log correlation: every log record knows the trace, span, tenant and project it was made in.

``correlate_logs()`` (or ``TENANTRACE_LOG_CORRELATION=true``, see
``correlate_logs_from_env``) gives every stdlib ``logging`` record five
attributes, usable in any format string (``%(trace_id)s``), by
``logging.config.dictConfig`` formatters and by JSON formatters, which read a
record's ``__dict__``:

- ``trace_id`` (32 hex digits) and ``span_id`` (16) of the span current when
  the record was made;
- ``tenant_id``: ``tenantrace.current_tenant()`` then (a ``tenant_scope()``
  without a span gives a tenant and no ids);
- ``service_name`` and ``project_name``: ``service.name`` and the tenant's
  project of the current span's Resource.

Outside any span and tenant scope they are empty strings, never missing.

Why a record factory and not a ``logging.Filter``: a filter on a logger sees
only the records logged on that very logger, not those its children propagate
to it, and a filter on a handler has to be put on every handler, including the
ones ``dictConfig`` builds and the ones a library adds later. A record factory
is process-wide: it survives ``dictConfig`` (which never touches it), and a
handler or formatter added at any later time sees the fields. It chains the
factory already installed (OpenTelemetry's logging instrumentation, yours).

The record's context is captured when it is made (one ``ContextVar`` read), so
a record formatted on another thread (a queue listener) shows the span it was
logged in, not the formatting thread's. The five strings are filled in the
first time the record is formatted (``getMessage``) or one of them is read, and
only where the record has no value of that name already: a call's own
``extra={"tenant_id": ...}`` wins and never raises ``KeyError`` (it would,
were the factory to set the names itself). ``CorrelationFilter`` does the same
as a filter, for a ``dictConfig`` that wants it on chosen handlers only.

structlog: put ``add_log_correlation`` in the processor chain.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

from tenantrace.observe._context import EMPTY, correlation, get_context

__all__ = [
    "CORRELATION_FIELDS",
    "LOG_CORRELATION_ENV",
    "CorrelatedLogRecord",
    "CorrelationFilter",
    "add_log_correlation",
    "correlate_logs",
    "correlate_logs_from_env",
    "correlation_fields",
    "log_correlation_enabled",
    "uncorrelate_logs",
]

_logger = logging.getLogger(__name__)

CORRELATION_FIELDS: Final = ("trace_id", "span_id", "tenant_id", "service_name", "project_name")
LOG_CORRELATION_ENV: Final = "TENANTRACE_LOG_CORRELATION"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
# opentelemetry-instrumentation-logging's service field: empty under a routing
# provider (it reads the global provider's Resource, which has no tenant).
_OTEL_SERVICE: Final = "otelServiceName"
_FIELD_SET: Final = frozenset(CORRELATION_FIELDS)

_LogRecord = logging.LogRecord
_record_init = logging.LogRecord.__init__
_get_message = logging.LogRecord.getMessage


_EMPTY_VALUES: Final = dict.fromkeys(CORRELATION_FIELDS, "")


def _fill(values: MutableMapping[str, Any], fields: tuple[str, str, str, str, str]) -> None:
    """Put the five fields into ``values`` where it has none of that name."""
    if _FIELD_SET.isdisjoint(values):  # the common case: one C-level update
        if fields is EMPTY:
            values.update(_EMPTY_VALUES)
        else:
            values.update(zip(CORRELATION_FIELDS, fields, strict=True))
    else:
        for key, value in zip(CORRELATION_FIELDS, fields, strict=True):
            if key not in values:
                values[key] = value
    if fields[3] and values.get(_OTEL_SERVICE) == "":
        values[_OTEL_SERVICE] = fields[3]


class _Unset(str):
    """The class-level value of a field a record has not filled yet: equal to ``""``."""

    __slots__ = ()


_UNSET: Final = _Unset("")


class CorrelatedLogRecord(logging.LogRecord):
    """A ``LogRecord`` that carries the context it was made in and shows its correlation.

    The context is kept in a slot (never in ``__dict__``, so a JSON formatter
    that dumps every attribute does not see it) until the fields are filled,
    by ``getMessage()`` (every formatter calls it first) or ``correlate()``.
    Before that a field reads as ``""`` (a filter that routes on ``tenant_id``
    calls ``correlate()`` first, or is put after ``CorrelationFilter``).
    Copies and pickles carry the filled fields, not the context.

    The fields are filled by attribute stores, never through ``__dict__``:
    adding keys to a record's materialised ``__dict__`` costs CPython about
    0.4 us per record, stores to its inline attributes next to nothing.
    """

    __slots__ = ("_tenantrace_context",)

    # A field the record has not got (filled, or from the call's ``extra``).
    trace_id: str = _UNSET
    span_id: str = _UNSET
    tenant_id: str = _UNSET
    service_name: str = _UNSET
    project_name: str = _UNSET

    def __init__(  # noqa: PLR0917 - LogRecord's own signature
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        sinfo: str | None = None,
        **kwargs: Any,
    ) -> None:
        # LogRecord ignores **kwargs; not passing them on saves the hot path a dict.
        _record_init(self, name, level, pathname, lineno, msg, args, exc_info, func, sinfo)
        self._tenantrace_context: Mapping[str, object] | None = get_context()

    def correlate(self) -> None:
        """Fill the five fields now, where the record has none of that name (idempotent)."""
        try:
            ctx = self._tenantrace_context
        except AttributeError:  # made by a copy or an unpickling: already filled
            return
        if ctx is not None:
            self._tenantrace_context = None
            self._fill(correlation(ctx) if ctx else EMPTY)

    def _fill(self, fields: tuple[str, str, str, str, str]) -> None:
        if self.trace_id is _UNSET:
            self.trace_id = fields[0]
        if self.span_id is _UNSET:
            self.span_id = fields[1]
        if self.tenant_id is _UNSET:
            self.tenant_id = fields[2]
        if self.service_name is _UNSET:
            self.service_name = fields[3]
        if self.project_name is _UNSET:
            self.project_name = fields[4]
        if fields[3] and getattr(self, _OTEL_SERVICE, None) == "":
            setattr(self, _OTEL_SERVICE, fields[3])

    def getMessage(self) -> str:
        try:
            ctx = self._tenantrace_context
        except AttributeError:
            ctx = None
        if ctx is not None:  # the first call: fill (``_fill`` inlined, this is hot)
            self._tenantrace_context = None
            fields = correlation(ctx) if ctx else EMPTY
            if self.trace_id is _UNSET:
                self.trace_id = fields[0]
            if self.span_id is _UNSET:
                self.span_id = fields[1]
            if self.tenant_id is _UNSET:
                self.tenant_id = fields[2]
            if self.service_name is _UNSET:
                self.service_name = fields[3]
            if self.project_name is _UNSET:
                self.project_name = fields[4]
            if fields[3] and getattr(self, _OTEL_SERVICE, None) == "":
                setattr(self, _OTEL_SERVICE, fields[3])
        return _get_message(self)

    def __getstate__(self) -> dict[str, Any]:
        self.correlate()
        return self.__dict__

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)
        self._tenantrace_context = None


def correlation_fields(context: Mapping[str, object] | None = None) -> dict[str, str]:
    """The five correlation fields of ``context`` (default: the current one), as a dict."""
    ctx = get_context() if context is None else context
    return dict(zip(CORRELATION_FIELDS, correlation(ctx) if ctx else EMPTY, strict=True))


class CorrelationFilter(logging.Filter):
    """The same fields, as a filter for chosen handlers (``dictConfig``'s ``filters``).

    ``{"filters": {"tenantrace": {"()": "tenantrace.observe.CorrelationFilter"}}}``
    then ``"filters": ["tenantrace"]`` on a handler. Never filters a record out.
    On a record made while ``correlate_logs()`` is on it only fills what the
    record captured; on any other record it reads the context of the thread
    handling it (the logging call's own, for every handler but a queue's listener).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record, CorrelatedLogRecord):
            record.correlate()
        else:
            ctx = get_context()
            _fill(record.__dict__, correlation(ctx) if ctx else EMPTY)
        return True


def add_log_correlation(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: adds the five fields (values bound already are kept).

    ``structlog.configure(processors=[add_log_correlation, ..., JSONRenderer()])``.
    Runs in the logging call, so it reads that call's context.
    """
    ctx = get_context()
    _fill(event_dict, correlation(ctx) if ctx else EMPTY)
    return event_dict


# ------------------------------------------------------------------ the factory

_state_lock = threading.Lock()
_installed: Callable[..., logging.LogRecord] | None = None
_previous: Callable[..., logging.LogRecord] | None = None


def _chained(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A factory over another one: its record, with the context captured."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ctx = get_context()
        if type(record) is _LogRecord:
            # Same record, our class: its attributes are moved over, not copied.
            ours = CorrelatedLogRecord.__new__(CorrelatedLogRecord)
            ours.__dict__ = record.__dict__
            ours._tenantrace_context = ctx
            return ours
        if isinstance(record, CorrelatedLogRecord):
            return record
        # A record class of someone else's: the fields are set now (an ``extra``
        # of the same name would then raise, as it would for that class's own).
        _fill(record.__dict__, correlation(ctx) if ctx else EMPTY)
        return record

    return factory


def correlate_logs() -> bool:
    """Give every stdlib log record the correlation fields; True if this call turned it on.

    Idempotent and thread-safe; chains the record factory in place. Undo with
    ``uncorrelate_logs()``.
    """
    global _installed, _previous
    with _state_lock:
        current = logging.getLogRecordFactory()
        if _installed is not None and current is _installed:
            return False
        factory: Callable[..., logging.LogRecord]
        factory = CorrelatedLogRecord if current is _LogRecord else _chained(current)
        logging.setLogRecordFactory(factory)
        _installed, _previous = factory, current
    return True


def uncorrelate_logs() -> bool:
    """Put back the factory ``correlate_logs()`` replaced; False if it was not on, or if
    another factory has since been installed over it (which still calls it)."""
    global _installed, _previous
    with _state_lock:
        if _installed is None or logging.getLogRecordFactory() is not _installed:
            return False
        logging.setLogRecordFactory(_previous or _LogRecord)
        _installed, _previous = None, None
    return True


def log_correlation_enabled() -> bool:
    """True while the factory ``correlate_logs()`` installed is the one in force."""
    return _installed is not None and logging.getLogRecordFactory() is _installed


def _parse_bool(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def correlate_logs_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Turn log correlation on when ``TENANTRACE_LOG_CORRELATION`` is true.

    Returns whether correlation is on afterwards. A value that is not a boolean
    is logged once and ignored. Meant to run at start-up: ``init_telemetry()``
    and the zero-code configurator call it (see docs/logs-and-metrics.md).
    """
    env = os.environ if environ is None else environ
    raw = env.get(LOG_CORRELATION_ENV)
    if raw is None:
        return log_correlation_enabled()
    wanted = _parse_bool(raw)
    if wanted is None:
        _logger.warning(
            "tenantrace: ignoring %s=%r (expected true or false)", LOG_CORRELATION_ENV, raw
        )
        return log_correlation_enabled()
    if wanted:
        correlate_logs()
    return log_correlation_enabled()
