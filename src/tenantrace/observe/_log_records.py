"""The record classes log correlation makes, and the factories over another one.

- ``CorrelatedLogRecord``: the factory ``correlate_logs()`` installs; its records
  capture the context they were made in and fill the fields when first formatted;
- ``_FilledLogRecord``: the class of the records the replaced ``Logger.makeRecord``
  makes, whose fields are set as they are made (``_make_record``);
- ``chained`` / ``filled_chained``: the same over a factory installed before ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from tenantrace.observe._context import EMPTY, get_context
from tenantrace.observe._log_fields import OTEL_SERVICE, Fields, context_fields, fill

_LogRecord = logging.LogRecord
_record_init = logging.LogRecord.__init__
_get_message = logging.LogRecord.getMessage


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
            self._fill(context_fields(ctx) if ctx else EMPTY)

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
        if fields[3] and getattr(self, OTEL_SERVICE, None) == "":
            setattr(self, OTEL_SERVICE, fields[3])

    def getMessage(self) -> str:
        try:
            ctx = self._tenantrace_context
        except AttributeError:
            ctx = None
        if ctx is not None:  # the first call: fill (``_fill`` inlined, this is hot)
            self._tenantrace_context = None
            fields = context_fields(ctx) if ctx else EMPTY
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
            if fields[3] and getattr(self, OTEL_SERVICE, None) == "":
                setattr(self, OTEL_SERVICE, fields[3])
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
    (The replacement usually makes it with ``object.__new__`` and runs
    ``LogRecord.__init__``'s body itself: see ``_make_record``.)

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


def chained(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
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
        fill(record.__dict__, context_fields(ctx) if ctx else EMPTY)
        return record

    return factory


def filled_chained(
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
