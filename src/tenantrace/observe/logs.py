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

Two ways a record gets its fields, both reading the context the record is made
in (so a record formatted on another thread, a queue listener's, shows the span
it was logged in, not the formatting thread's):

- Records made by a ``Logger`` (``logger.info(...)``: nearly all of them) get
  them as soon as they are made, after the call's ``extra``. While
  ``Logger.makeRecord`` is logging's own, ``correlate_logs()`` replaces it by
  one that does what it did and then sets the five fields: a record made outside
  any span costs one ``ContextVar`` read and five attribute stores more, no
  Python call (see "Cost" below and docs/logs-and-metrics.md). An ``extra`` of
  the same name wins and never raises ``KeyError``.
- Any other record (``logging.makeLogRecord``, a ``Logger`` subclass's own
  ``makeRecord``, a factory called directly, or every record when
  ``Logger.makeRecord`` had already been replaced by someone else) is made by
  the factory, ``CorrelatedLogRecord``: it captures the context and fills the
  fields the first time it is formatted (``getMessage``) or ``correlate()`` is
  called, only where the record has no value of that name (its ``extra``).

``CorrelationFilter`` does the same as a filter, for a ``dictConfig`` that wants
it on chosen handlers only. structlog: put ``add_log_correlation`` in the
processor chain.

Cost (CPython 3.11; benchmarks/bench_logs.py, docs/logs-and-metrics.md): what
counts is the bytecode run per record, and the no-span path runs none it could
skip (about 1.1k machine instructions in all, against 80k for a formatted
``logger.info``). The alternatives, measured: a Python-level ``__init__`` or
``getMessage`` around logging's own is a call frame, about 0.7k instructions
each; checking field by field whether the call's ``extra`` set it, about 0.4k
each, as 3.11 cannot specialize reading an attribute the instance lacks;
``record.__dict__.update(...)`` builds the record's dict early and slows every
later attribute access, about 4k. Filling the fields inside ``makeRecord``,
after ``extra``, needs none of these.
"""

from __future__ import annotations

import logging
import os
import threading
import types
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

from tenantrace.observe._context import (
    EMPTY,
    SPAN_KEY,
    TENANT_KEY,
    correlation,
    get_context,
)

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
# logging's module namespace: ``makeRecord`` below reads the factory in force
# from it (``_logRecordFactory``, what ``setLogRecordFactory`` sets) the way
# logging's own ``makeRecord`` does, without a call.
_LOGGING: Final[dict[str, Any]] = vars(logging)

Fields = tuple[str, str, str, str, str]

# The context keys of the current span and of tenantrace's tenant: a context
# with neither correlates to five empty strings. "" when a release moved one
# (then ``_make_record`` is not installed: see below).
_SPAN_KEY: Final = SPAN_KEY or ""
_TENANT_KEY: Final = TENANT_KEY or ""

_EMPTY_VALUES: Final = dict.fromkeys(CORRELATION_FIELDS, "")


def _fill(values: MutableMapping[str, Any], fields: Fields) -> None:
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

    The factory ``correlate_logs()`` installs. The context is kept in a slot
    (never in ``__dict__``, so a JSON formatter that dumps every attribute does
    not see it) until the fields are filled, by ``getMessage()`` (every
    formatter calls it first) or ``correlate()``. Before that a field reads as
    ``""`` (a filter that routes on ``tenant_id`` calls ``correlate()`` first,
    or is put after ``CorrelationFilter``). Copies and pickles carry the filled
    fields, not the context. Records a ``Logger`` makes while
    ``correlate_logs()`` is on are of a subclass whose fields are set when the
    record is made (``correlate()`` does nothing on them).

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
            self._fill(_context_fields(ctx) if ctx else EMPTY)

    def _fill(self, fields: Fields) -> None:
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
            fields = _context_fields(ctx) if ctx else EMPTY
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


class _FilledLogRecord(CorrelatedLogRecord):
    """A record made by ``Logger.makeRecord`` while correlation is on: its fields
    are set right after it is made, so it needs none of its base's machinery.

    logging's own ``__init__`` and ``getMessage`` are put back as they are (not
    wrapped: a wrapper would cost a call frame per record). The fields' class
    values are plain ``""``: the base's ``_UNSET`` is of a class defined in
    Python, and CPython 3.11 does not specialize stores to an attribute whose
    class-level value has a mutable type, which made the five stores cost twice
    as much. The base's slot stays unset; nothing reads it here.
    """

    __slots__ = ()

    __init__ = _LogRecord.__init__
    getMessage = _LogRecord.getMessage
    trace_id: str = ""
    span_id: str = ""
    tenant_id: str = ""
    service_name: str = ""
    project_name: str = ""

    def correlate(self) -> None:
        """Nothing to do: the fields were set when the record was made."""


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
            _fill(record.__dict__, _context_fields(ctx) if ctx else EMPTY)
        return True


def add_log_correlation(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: adds the five fields (values bound already are kept).

    ``structlog.configure(processors=[add_log_correlation, ..., JSONRenderer()])``.
    Runs in the logging call, so it reads that call's context.
    """
    ctx = get_context()
    _fill(event_dict, _context_fields(ctx) if ctx else EMPTY)
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
        _fill(record.__dict__, _context_fields(ctx) if ctx else EMPTY)
        return record

    return factory


def _filled_chained(
    previous: Callable[..., logging.LogRecord],
) -> Callable[..., _FilledLogRecord]:
    """What ``makeRecord`` makes its records with over another factory: that
    factory's record, as a ``_FilledLogRecord`` when it is a plain ``LogRecord``."""

    def make(*args: Any) -> _FilledLogRecord:
        record = previous(*args)
        if type(record) is _LogRecord:
            ours: _FilledLogRecord = _FilledLogRecord.__new__(_FilledLogRecord)
            ours.__dict__ = record.__dict__
            return ours
        # A class of someone else's, typed as ours for the five attribute stores
        # ``_make_record`` makes, which any record takes.
        return record  # type: ignore[return-value]

    return make


# -------------------------------------------------------- Logger.makeRecord
#
# ``makeRecord`` is where a ``Logger`` makes its records: it calls the factory,
# then adds the call's ``extra`` (raising KeyError for a name the record has).
# While correlation is on, ``Logger.makeRecord`` is replaced by ``_make_record``:
# the same, plus the five fields set after ``extra`` (so an ``extra`` of the
# same name wins). It is put in place only when the current ``makeRecord`` is
# logging's own, checked by compiling the source below (logging's, the same in
# CPython 3.11 and 3.12) and comparing the bytecode: if a Python release changes
# that method, or a library has wrapped it (ddtrace does), it is left alone and
# every record goes through the factory, more slowly (about as before).

_LOGGING_MAKE_RECORD: Final = '''
def makeRecord(self, name, level, fn, lno, msg, args, exc_info,
               func=None, extra=None, sinfo=None):
    """
    A factory method which can be overridden in subclasses to create
    specialized LogRecords.
    """
    rv = _logRecordFactory(name, level, fn, lno, msg, args, exc_info, func,
                         sinfo)
    if extra is not None:
        for key in extra:
            if (key in ["message", "asctime"]) or (key in rv.__dict__):
                raise KeyError("Attempt to overwrite %r in LogRecord" % key)
            rv.__dict__[key] = extra[key]
    return rv
'''

# Set by correlate_logs() (under _state_lock) before the factory is installed.
_new_record: Callable[..., _FilledLogRecord] = _FilledLogRecord
_over_foreign_factory: bool = False  # the factory before ours is not logging's own
_logging_make_record: Callable[..., logging.LogRecord] | None = None
# The last context a Logger made a record in, with its fields: a request logs
# many records under one span, all in the same (immutable) Context object. The
# Context is referenced here until a record is made in another, so its id is
# not reused meanwhile.
_last_context: tuple[object, Fields] = (None, EMPTY)


def _is_logging_make_record(function: object) -> bool:
    """True when ``function`` is logging's own ``Logger.makeRecord``, unchanged."""
    if type(function) is not types.FunctionType or function.__globals__ is not _LOGGING:
        return False
    module = compile(_LOGGING_MAKE_RECORD, "<makeRecord>", "exec", dont_inherit=True)
    reference = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    code = function.__code__
    return (
        code.co_code == reference.co_code
        and code.co_names == reference.co_names
        and code.co_varnames == reference.co_varnames
        and code.co_consts[1:] == reference.co_consts[1:]  # [0] is the docstring
    )


def _remember_context(ctx: Mapping[str, object]) -> Fields:
    global _last_context  # noqa: PLW0603 - read by every record made in a span: a global
    fields = correlation(ctx)
    _last_context = (ctx, fields)
    return fields


def _context_fields(ctx: Mapping[str, object]) -> Fields:
    """``correlation(ctx)``, from the one-entry cache when ``ctx`` is the last context."""
    last = _last_context
    return last[1] if last[0] is ctx else _remember_context(ctx)


def _add_extra(record: logging.LogRecord, extra: Mapping[str, object]) -> None:
    """logging's own handling of ``extra``, then the fields it did not set."""
    values = record.__dict__
    for key in extra:
        if key in ("message", "asctime") or key in values:
            raise KeyError(f"Attempt to overwrite {key!r} in LogRecord")
        values[key] = extra[key]
    ctx = get_context()
    _fill(values, _context_fields(ctx) if ctx else EMPTY)


def _make_record(  # noqa: PLR0917 - Logger.makeRecord's own signature
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    """``Logger.makeRecord`` while correlation is on: the record gets its fields now.

    Every line here runs for every record; each one was measured (see the
    module's doc). Outside a span and tenant scope: one ``ContextVar`` read and
    five attribute stores, no call.
    """
    if _LOGGING["_logRecordFactory"] is not _installed:
        # Another factory was installed over ours (it may call ours), or ours is
        # off: logging's own way, the fields (if any) from our factory's records.
        assert _logging_make_record is not None
        return _logging_make_record(
            self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo
        )
    record = _new_record(name, level, fn, lno, msg, args, exc_info, func, sinfo)
    if extra is not None:
        _add_extra(record, extra)
        return record
    ctx = get_context()
    if ctx and (ctx.get(_SPAN_KEY) is not None or ctx.get(_TENANT_KEY) is not None):
        last = _last_context
        fields = last[1] if last[0] is ctx else _remember_context(ctx)
        (
            record.trace_id,
            record.span_id,
            record.tenant_id,
            record.service_name,
            record.project_name,
        ) = fields
        if _over_foreign_factory and fields[3] and getattr(record, _OTEL_SERVICE, None) == "":
            setattr(record, _OTEL_SERVICE, fields[3])
    else:
        # No span and no tenant (a Context is an immutable dict: an empty one is
        # the default, outside everything). Literal stores: the cheapest there are.
        record.trace_id = ""
        record.span_id = ""
        record.tenant_id = ""
        record.service_name = ""
        record.project_name = ""
    return record


def _install_make_record() -> None:
    global _logging_make_record  # noqa: PLW0603 - set under _state_lock
    current = logging.Logger.__dict__.get("makeRecord")
    if current is _make_record:
        return
    if _LOGGING.get("_logRecordFactory") is not logging.getLogRecordFactory():
        return  # logging keeps its factory elsewhere now: the factory alone does it
    if not _SPAN_KEY or not _TENANT_KEY or not _is_logging_make_record(current):
        return
    _logging_make_record = current
    logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]


def _uninstall_make_record() -> None:
    if logging.Logger.__dict__.get("makeRecord") is _make_record:
        logging.Logger.makeRecord = _logging_make_record  # type: ignore[method-assign,assignment]


def correlate_logs() -> bool:
    """Give every stdlib log record the correlation fields; True if this call turned it on.

    Idempotent and thread-safe; chains the record factory in place and, while
    ``Logger.makeRecord`` is logging's own, replaces it (see the module's doc).
    Undo with ``uncorrelate_logs()``.
    """
    # Globals, set under _state_lock: _make_record reads them for every record.
    global _installed, _previous, _new_record, _over_foreign_factory  # noqa: PLW0603
    with _state_lock:
        current = logging.getLogRecordFactory()
        if _installed is not None and current is _installed:
            return False
        factory: Callable[..., logging.LogRecord]
        if current is _LogRecord:
            factory, _new_record = CorrelatedLogRecord, _FilledLogRecord
        else:
            factory, _new_record = _chained(current), _filled_chained(current)
        _over_foreign_factory = current is not _LogRecord
        _installed, _previous = factory, current
        logging.setLogRecordFactory(factory)
        _install_make_record()
    return True


def uncorrelate_logs() -> bool:
    """Put back the factory (and ``Logger.makeRecord``) ``correlate_logs()`` replaced;
    False if it was not on, or if another factory has since been installed over
    it (which still calls it)."""
    global _installed, _previous
    with _state_lock:
        if _installed is None or logging.getLogRecordFactory() is not _installed:
            return False
        logging.setLogRecordFactory(_previous or _LogRecord)
        _uninstall_make_record()
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
