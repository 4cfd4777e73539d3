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
  Python call (see "Cost" below, ``_make_record`` and docs/logs-and-metrics.md).
  An ``extra`` of the same name wins and never raises ``KeyError``.
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
counts is the bytecode run per record. Outside any span and tenant scope a
record made by a ``Logger`` costs a check, a ``ContextVar`` read and five
attribute stores more, about 850 machine instructions, and the replacement of
``makeRecord`` runs ``LogRecord.__init__``'s body in its own frame, which saves
more than that: such a record costs fewer instructions with correlation than
without (see ``_make_record``'s doc for the breakdown). The alternatives,
measured: a Python-level ``__init__`` or ``getMessage`` around logging's own is
a call frame, about 0.7k instructions each; ``record.__dict__.update(...)``
builds the record's dict early and slows every later attribute access, about
3.5k.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

from tenantrace.observe import _make_record as _make_record_module
from tenantrace.observe._log_fields import (
    CORRELATION_FIELDS,
    correlation_fields,
    current_fields,
    fill,
)

# The record classes live in _log_records, the makeRecord replacement in
# _make_record; the private names are re-exported for tests and diagnostics.
from tenantrace.observe._log_records import CorrelatedLogRecord, chained
from tenantrace.observe._log_records import _FilledLogRecord as _FilledLogRecord  # noqa: PLC0414

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
_is_logging_make_record = _make_record_module.is_logging_make_record  # tests use it

LOG_CORRELATION_ENV: Final = "TENANTRACE_LOG_CORRELATION"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_LogRecord = logging.LogRecord


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
            fill(record.__dict__, current_fields())
        return True


def add_log_correlation(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: adds the five fields (values bound already are kept).

    ``structlog.configure(processors=[add_log_correlation, ..., JSONRenderer()])``.
    Runs in the logging call, so it reads that call's context.
    """
    fill(event_dict, current_fields())
    return event_dict


# ------------------------------------------------------------------ on and off

_state_lock = threading.Lock()
_installed: Callable[..., logging.LogRecord] | None = None
_previous: Callable[..., logging.LogRecord] | None = None


def _make_record_in_place() -> Callable[..., logging.LogRecord] | None:
    """The ``Logger.makeRecord`` replacement in place, if any (tests use it)."""
    return _make_record_module.active()


def correlate_logs() -> bool:
    """Give every stdlib log record the correlation fields; True if this call turned it on.

    Idempotent and thread-safe; chains the record factory in place and, while
    ``Logger.makeRecord`` is logging's own, replaces it (see the module's doc).
    Undo with ``uncorrelate_logs()``.
    """
    global _installed, _previous  # set under _state_lock
    with _state_lock:
        current = logging.getLogRecordFactory()
        if _installed is not None and current is _installed:
            return False
        factory = CorrelatedLogRecord if current is _LogRecord else chained(current)
        _installed, _previous = factory, current
        logging.setLogRecordFactory(factory)
        _make_record_module.install(factory, current)
    return True


def uncorrelate_logs() -> bool:
    """Put back the factory (and ``Logger.makeRecord``) ``correlate_logs()`` replaced;
    False if it was not on, or if another factory has since been installed over
    it (which still calls it)."""
    global _installed, _previous  # set under _state_lock
    with _state_lock:
        if _installed is None or logging.getLogRecordFactory() is not _installed:
            return False
        logging.setLogRecordFactory(_previous or _LogRecord)
        _make_record_module.uninstall()
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
