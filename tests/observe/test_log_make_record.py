"""The ``Logger.makeRecord`` replacement (``tenantrace.observe._make_record``): a record
it makes is the record logging's own ``makeRecord`` makes, plus the five fields
``CorrelationFilter`` would add, in every context, with and without ``extra``; and it
falls back to calling the factory when ``LogRecord.__init__`` is not logging's own."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context

from tenantrace import TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.observe import (
    CORRELATION_FIELDS,
    CorrelationFilter,
    _make_record,
    correlate_logs,
    uncorrelate_logs,
)
from tenantrace.observe._log_records import _FilledLogRecord

LOGGING_MAKE_RECORD = logging.Logger.__dict__["makeRecord"]
TIMING = ("created", "msecs", "relativeCreated")
WHERE = ("outside", "never attached", "baggage", "scope", "span", "span and scope")
# extra names: free ones, the fields' own (the call's value wins), and names
# logging refuses (KeyError from both).
EXTRA_KEYS = ("order", "user", "trace_id", "tenant_id", "project_name", "msg", "message")


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    previous = logging.getLogRecordFactory()
    uncorrelate_logs()
    yield
    uncorrelate_logs()
    logging.setLogRecordFactory(previous)
    logging.Logger.makeRecord = LOGGING_MAKE_RECORD  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def manager() -> Iterator[TelemetryManager]:
    made = TelemetryManager(TelemetryConfig(exporter_type="none", service_name="checkout"))
    yield made
    made.shutdown(timeout_millis=1000)


def _enter(stack: ExitStack, manager: TelemetryManager, where: str, tenant: str) -> None:
    if where == "baggage":  # a context that is not empty, without span or tenant
        token = context.attach(baggage.set_baggage("k", "v"))
        stack.callback(context.detach, token)
    if where.startswith("span"):
        stack.enter_context(manager.span("op", tenant_id=tenant))
    if where.endswith("scope"):
        stack.enter_context(tenant_scope(f"{tenant}-scoped"))


def _made(logger: logging.Logger, call: tuple[Any, ...], *, correlated: bool) -> Any:
    """The record (or the KeyError) of ``makeRecord(*call)``: by the replacement when
    ``correlated``, else by logging's own followed by ``CorrelationFilter``."""
    try:
        record = logger.makeRecord(*call)
    except KeyError as exc:
        return ("KeyError", str(exc))
    if correlated:
        assert type(record) is _FilledLogRecord
    else:
        assert type(record) is logging.LogRecord
        CorrelationFilter().filter(record)
    return record


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, KeyError, ValueError) as exc:  # a message and args that do not fit
        return type(exc).__name__


def _comparable(made: Any) -> Any:
    """The record's attributes but its timing ones: a dict, and the order of its keys
    but the fields' (with ``extra``, the replacement sets them before the extra)."""
    if isinstance(made, tuple):
        return made
    values = {k: v for k, v in made.__dict__.items() if k not in TIMING}
    return values, [k for k in values if k not in CORRELATION_FIELDS]


calls = st.tuples(
    st.sampled_from(["svc.a", "svc.b"]),
    st.sampled_from([logging.DEBUG, logging.INFO, logging.ERROR]),
    st.sampled_from(["/srv/app/orders.py", "noext", "/a/b.c.py", "", None]),
    st.integers(0, 5000),
    st.sampled_from(["done", "order %s", "%(a)s"]),
    st.sampled_from([(), ("42",), ({"a": 1},), ({},), (1, 2)]),
    st.sampled_from([None, (ValueError, ValueError("x"), None)]),
    st.sampled_from([None, "handler"]),
    st.none()
    | st.dictionaries(st.sampled_from(EXTRA_KEYS), st.text(max_size=3) | st.integers(), max_size=3),
    st.sampled_from([None, "Stack (most recent call last):"]),
)


@settings(max_examples=150, deadline=None)
@given(call=calls, where=st.sampled_from(WHERE), tenant=st.sampled_from(["acme", "globex"]))
def test_a_record_is_logging_s_own_plus_the_filter_s_fields(
    manager: TelemetryManager, call: tuple[Any, ...], where: str, tenant: str
) -> None:
    logger = logging.getLogger("hypothesis.records")
    name, level, fn, lno, msg, args, exc_info, func, extra, sinfo = call
    arguments = (name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)
    try:
        with ExitStack() as stack:
            _enter(stack, manager, where, tenant)
            assert correlate_logs()
            replacement = _make_record.active()
            assert replacement is not None
            assert replacement.inlined  # type: ignore[attr-defined]
            if where == "never attached":  # the context variable's default
                ours = contextvars.Context().run(_made, logger, arguments, correlated=True)
            else:
                ours = _made(logger, arguments, correlated=True)
            assert uncorrelate_logs()
            theirs = _made(logger, arguments, correlated=False)
    finally:
        uncorrelate_logs()
    assert _comparable(ours) == _comparable(theirs)
    if not isinstance(ours, tuple):
        assert _message(ours) == _message(theirs)
        assert all(isinstance(ours.__dict__[key], float) for key in TIMING)


def test_a_replaced_log_record_init_is_called_not_inlined(
    manager: TelemetryManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = logging.LogRecord.__init__
    seen: list[str] = []

    def __init__(self: logging.LogRecord, *args: Any, **kwargs: Any) -> None:
        seen.append("init")
        original(self, *args, **kwargs)

    monkeypatch.setattr(logging.LogRecord, "__init__", __init__)
    monkeypatch.setattr(_make_record, "_compiled", {})
    monkeypatch.setattr(_FilledLogRecord, "__init__", __init__)
    assert _make_record._init_body() is None
    assert correlate_logs()
    replacement = _make_record.active()
    assert replacement is not None
    assert not replacement.inlined  # type: ignore[attr-defined]
    logger = logging.getLogger("replaced.init")
    with manager.span("op", tenant_id="acme"):
        inside = logger.makeRecord("n", logging.INFO, "f.py", 1, "m", (), None)
    outside = logger.makeRecord("n", logging.INFO, "f.py", 1, "m", (), None)
    assert seen == ["init", "init"]
    assert inside.__dict__["tenant_id"] == "acme"
    assert len(inside.__dict__["trace_id"]) == 32
    assert outside.__dict__["tenant_id"] == outside.__dict__["trace_id"] == ""


def test_a_factory_before_ours_is_called_by_the_replacement() -> None:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)
        record.tagged = True
        return record

    logging.setLogRecordFactory(factory)
    assert correlate_logs()
    replacement = _make_record.active()
    assert replacement is not None
    assert not replacement.inlined  # type: ignore[attr-defined]
    record = logging.getLogger("before").makeRecord("n", logging.INFO, "f.py", 1, "m", (), None)
    assert record.__dict__["tagged"] is True
    assert record.__dict__["span_id"] == ""


def test_the_replacement_is_compiled_in_logging_s_namespace_and_named_as_its_own() -> None:
    assert correlate_logs()
    replacement = _make_record.active()
    assert replacement is not None
    assert replacement.__globals__ is vars(logging)
    assert replacement.__qualname__ == "Logger.makeRecord"
    assert replacement.__module__ == _make_record.__name__
    assert uncorrelate_logs()
    assert _make_record.active() is None
    assert logging.Logger.__dict__["makeRecord"] is LOGGING_MAKE_RECORD


def test_correlating_again_over_a_later_factory_rebuilds_the_replacement() -> None:
    assert correlate_logs()
    first = _make_record.active()
    later = logging.getLogRecordFactory()

    def over(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return later(*args, **kwargs)

    logging.setLogRecordFactory(over)
    # The first replacement sees a factory that is not its own: logging's way.
    record = logging.getLogger("later").makeRecord("n", logging.INFO, "f.py", 1, "m", (), None)
    assert record.getMessage() == "m"
    assert record.__dict__["tenant_id"] == ""
    assert correlate_logs()
    second = _make_record.active()
    assert second is not None
    assert second is not first
    assert not second.inlined  # type: ignore[attr-defined]
