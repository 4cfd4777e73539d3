"""Log correlation along both ways a record is made: by a Logger (``Logger.makeRecord``,
replaced while correlation is on) and by the record factory alone (records made
elsewhere, or every record when ``Logger.makeRecord`` was already wrapped by another
library). Behaviour only: the timing goals live in benchmarks/bench_logs.py."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import logging.config
import logging.handlers
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from observe_helpers import SmallJsonFormatter, require_module
from opentelemetry import baggage, context
from opentelemetry import trace as trace_api

from tenantrace import TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.observe import (
    CORRELATION_FIELDS,
    CorrelatedLogRecord,
    add_log_correlation,
    correlate_logs,
    uncorrelate_logs,
)
from tenantrace.observe import logs as logs_module

FORMAT = "%(trace_id)s|%(span_id)s|%(tenant_id)s|%(service_name)s|%(project_name)s|%(message)s"
EMPTY_LINE = "|||||"
LOGGING_MAKE_RECORD = logging.Logger.__dict__["makeRecord"]


def _wrapped_make_record() -> Callable[..., logging.LogRecord]:
    """What a library that wraps Logger.makeRecord installs (ddtrace does)."""

    def makeRecord(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return LOGGING_MAKE_RECORD(self, *args, **kwargs)  # type: ignore[no-any-return]

    return makeRecord


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Each test starts and ends with logging's own factory and makeRecord."""
    previous = logging.getLogRecordFactory()
    uncorrelate_logs()
    yield
    uncorrelate_logs()
    logging.setLogRecordFactory(previous)
    logging.Logger.makeRecord = LOGGING_MAKE_RECORD  # type: ignore[method-assign]


@pytest.fixture(params=["makeRecord", "factory"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Turn correlation on, either way: ``factory`` finds Logger.makeRecord wrapped
    by another library, leaves it alone and correlates through the factory."""
    if request.param == "factory":
        logging.Logger.makeRecord = _wrapped_make_record()  # type: ignore[method-assign]
    assert correlate_logs()
    replaced = logs_module._make_record_in_place() is not None
    assert replaced is (request.param == "makeRecord")
    yield request.param


@pytest.fixture
def manager() -> Iterator[TelemetryManager]:
    made = TelemetryManager(TelemetryConfig(exporter_type="none", service_name="checkout"))
    yield made
    made.shutdown(timeout_millis=1000)


def _logger(name: str, fmt: str = FORMAT) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def _ids(span: trace_api.Span) -> tuple[str, str]:
    span_context = span.get_span_context()
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def _line(span: trace_api.Span, tenant: str, message: str, service: str = "checkout") -> str:
    trace_id, span_id = _ids(span)
    return f"{trace_id}|{span_id}|{tenant}|{service}|cogniverse-{tenant}|{message}"


# ------------------------------------------------------------------ the two ways


def test_logging_s_own_make_record_is_replaced_while_correlation_is_on() -> None:
    assert logs_module._is_logging_make_record(LOGGING_MAKE_RECORD)
    assert correlate_logs()
    replacement = logs_module._make_record_in_place()
    assert replacement is not None
    assert logging.Logger.__dict__["makeRecord"] is replacement
    assert logging.getLogRecordFactory() is CorrelatedLogRecord
    assert not correlate_logs()
    assert uncorrelate_logs()
    assert logging.Logger.__dict__["makeRecord"] is LOGGING_MAKE_RECORD
    assert logging.getLogRecordFactory() is logging.LogRecord


def test_a_wrapped_make_record_is_left_alone_and_the_factory_correlates() -> None:
    wrapped = _wrapped_make_record()
    logging.Logger.makeRecord = wrapped  # type: ignore[method-assign]
    assert correlate_logs()
    assert logging.Logger.__dict__["makeRecord"] is wrapped
    logger, stream = _logger("p.wrapped")
    logger.info("through the factory")
    assert stream.getvalue() == f"{EMPTY_LINE}through the factory\n"
    assert uncorrelate_logs()
    assert logging.Logger.__dict__["makeRecord"] is wrapped


def test_a_changed_make_record_is_not_taken_for_logging_s_own() -> None:
    def makeRecord(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return LOGGING_MAKE_RECORD(self, *args, **kwargs)  # type: ignore[no-any-return]

    assert not logs_module._is_logging_make_record(makeRecord)
    assert not logs_module._is_logging_make_record(logging.Logger.findCaller)
    assert not logs_module._is_logging_make_record(None)


# ------------------------------------------------------------------ the fields


def test_outside_any_span_the_fields_are_empty_strings(path: str) -> None:
    logger, stream = _logger(f"p.outside.{path}")
    logger.info("no span %s", 1)
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
    assert stream.getvalue() == f"{EMPTY_LINE}no span 1\n"
    record.getMessage()  # a formatter's first step
    assert {key: record.__dict__[key] for key in CORRELATION_FIELDS} == dict.fromkeys(
        CORRELATION_FIELDS, ""
    )
    assert isinstance(record, CorrelatedLogRecord)


def test_outside_any_span_json_and_dictconfig_formatters_get_the_fields(path: str) -> None:
    logger, stream = _logger(f"p.json.{path}")
    logger.handlers[0].setFormatter(SmallJsonFormatter(CORRELATION_FIELDS))
    logger.info("json")
    assert json.loads(stream.getvalue()) == {
        "message": "json",
        **dict.fromkeys(CORRELATION_FIELDS, ""),
    }
    out = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"f": {"format": "[%(tenant_id)s][%(trace_id)s] %(message)s"}},
            "handlers": {
                "out": {"class": "logging.StreamHandler", "formatter": "f", "stream": out}
            },
            "loggers": {
                f"p.dict.{path}": {"handlers": ["out"], "level": "INFO", "propagate": False}
            },
        }
    )
    logging.getLogger(f"p.dict.{path}").info("configured")
    assert out.getvalue() == "[][] configured\n"


def test_a_context_with_neither_span_nor_tenant_gives_empty_fields(path: str) -> None:
    logger, stream = _logger(f"p.baggage.{path}")
    token = context.attach(baggage.set_baggage("region", "eu"))
    try:
        assert context.get_current()  # not the empty default context
        logger.info("baggage only")
    finally:
        context.detach(token)
    assert stream.getvalue() == f"{EMPTY_LINE}baggage only\n"


def test_in_a_span_the_fields_name_its_trace_tenant_service_and_project(
    path: str, manager: TelemetryManager
) -> None:
    logger, stream = _logger(f"p.span.{path}")
    with manager.span("checkout", tenant_id="acme") as span:
        logger.info("paid %s", 42)
        logger.warning("twice")
    assert stream.getvalue().splitlines() == [
        _line(span, "acme", "paid 42"),
        _line(span, "acme", "twice"),
    ]


def test_nested_spans_and_the_return_to_the_outer_one(path: str, manager: TelemetryManager) -> None:
    """The outer span's Context object is current again after the inner one ends."""
    logger, stream = _logger(f"p.nested.{path}")
    with manager.span("outer", tenant_id="acme") as outer:
        logger.info("a")
        with manager.span("inner", tenant_id="acme") as inner:
            logger.info("b")
        logger.info("c")
    with manager.span("next", tenant_id="globex") as following:
        logger.info("d")
    logger.info("e")
    assert stream.getvalue().splitlines() == [
        _line(outer, "acme", "a"),
        _line(inner, "acme", "b"),
        _line(outer, "acme", "c"),
        _line(following, "globex", "d"),
        f"{EMPTY_LINE}e",
    ]


def test_tenant_scopes_with_and_without_a_span(path: str, manager: TelemetryManager) -> None:
    logger, stream = _logger(f"p.scope.{path}", "%(tenant_id)s|%(trace_id)s|%(message)s")
    with tenant_scope("globex"):
        logger.info("scope, no span")
        with manager.span("job") as span:  # the scope's tenant
            logger.info("span in scope")
            with tenant_scope("initech"):  # switches the tenant of what follows
                logger.info("scope in span")
    trace_id = _ids(span)[0]
    assert stream.getvalue().splitlines() == [
        "globex||scope, no span",
        f"globex|{trace_id}|span in scope",
        f"initech|{trace_id}|scope in span",
    ]


def test_a_record_keeps_the_span_it_was_made_in(path: str, manager: TelemetryManager) -> None:
    """Buffered (MemoryHandler) and formatted after the span ended, on the same thread."""
    target_stream = io.StringIO()
    target = logging.StreamHandler(target_stream)
    target.setFormatter(logging.Formatter(FORMAT))
    buffer = logging.handlers.MemoryHandler(100, flushLevel=logging.CRITICAL, target=target)
    logger = logging.getLogger(f"p.buffered.{path}")
    logger.handlers[:] = [buffer]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with manager.span("op", tenant_id="acme") as span:
        logger.info("buffered")
    with manager.span("other", tenant_id="globex"):
        buffer.flush()
    assert target_stream.getvalue() == _line(span, "acme", "buffered") + "\n"


# ------------------------------------------------------------------ extra=


def test_an_extra_of_a_field_s_name_wins_in_and_outside_spans(
    path: str, manager: TelemetryManager
) -> None:
    logger, stream = _logger(f"p.extra.{path}")
    logger.info("outside", extra={"tenant_id": "mine", "trace_id": None, "order": 7})
    with manager.span("op", tenant_id="acme") as span:
        logger.info("inside", extra={"tenant_id": "mine", "order": 7})
        logger.info("other keys", extra={"order": 8})
    trace_id, span_id = _ids(span)
    assert stream.getvalue().splitlines() == [
        "None||mine|||outside",
        f"{trace_id}|{span_id}|mine|checkout|cogniverse-acme|inside",
        _line(span, "acme", "other keys"),
    ]


def test_an_extra_that_overwrites_a_record_attribute_still_raises(path: str) -> None:
    logger, _ = _logger(f"p.extra.raises.{path}")
    for key in ("message", "asctime", "levelname"):
        with pytest.raises(KeyError, match="Attempt to overwrite"):
            logger.makeRecord(
                logger.name, logging.INFO, __file__, 1, "m", (), None, extra={key: "x"}
            )


def test_a_logger_subclass_with_its_own_make_record_keeps_extras_winning(
    manager: TelemetryManager,
) -> None:
    """Its makeRecord calls the factory and adds ``extra`` itself: the factory's
    record fills the fields later, where ``extra`` did not."""

    class OwnLogger(logging.Logger):
        def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
            return LOGGING_MAKE_RECORD(self, *args, **kwargs)  # type: ignore[no-any-return]

    correlate_logs()
    logger = OwnLogger("p.own")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    with manager.span("op", tenant_id="acme") as span:
        logger.info("own", extra={"tenant_id": "mine"})
    trace_id, span_id = _ids(span)
    assert stream.getvalue() == f"{trace_id}|{span_id}|mine|checkout|cogniverse-acme|own\n"


# ------------------------------------------------------------------ chained factories


def _tagging_factory(tag: str, seen: list[str]) -> Callable[..., logging.LogRecord]:
    """A factory over the one in force that adds ``tag`` to every record."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.__dict__[tag] = "yes"
        seen.append(tag)
        return record

    return factory


def test_a_factory_installed_before_correlation_keeps_working(
    path: str, manager: TelemetryManager
) -> None:
    uncorrelate_logs()
    seen: list[str] = []
    before = _tagging_factory("before", seen)
    logging.setLogRecordFactory(before)
    assert correlate_logs()
    logger, stream = _logger(f"p.before.{path}", "%(before)s|%(tenant_id)s|%(message)s")
    with manager.span("op", tenant_id="acme"):
        logger.info("in")
    logger.info("out")
    assert stream.getvalue().splitlines() == ["yes|acme|in", "yes||out"]
    assert seen == ["before", "before"]
    assert uncorrelate_logs()
    assert logging.getLogRecordFactory() is before
    assert logs_module._make_record_in_place() is None


def test_a_factory_installed_after_correlation_keeps_working(
    path: str, manager: TelemetryManager
) -> None:
    seen: list[str] = []
    after = _tagging_factory("after", seen)
    logging.setLogRecordFactory(after)
    logger, stream = _logger(f"p.after.{path}", "%(after)s|%(tenant_id)s|%(message)s")
    with manager.span("op", tenant_id="acme"):
        logger.info("in", extra={"order": 1})
        logger.info("mine", extra={"tenant_id": "x"})
    logger.info("out")
    assert stream.getvalue().splitlines() == ["yes|acme|in", "yes|x|mine", "yes||out"]
    assert seen == ["after", "after", "after"]
    assert not uncorrelate_logs()  # another factory is over ours: left in place
    assert logging.getLogRecordFactory() is after


def test_correlation_off_again_leaves_records_alone(path: str, manager: TelemetryManager) -> None:
    logger, stream = _logger(f"p.off.{path}", "%(message)s")
    assert uncorrelate_logs()
    with manager.span("op", tenant_id="acme"):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
        logger.info("plain")
    assert type(record) is logging.LogRecord
    assert not set(CORRELATION_FIELDS) & set(record.__dict__)
    assert stream.getvalue() == "plain\n"


def test_records_made_outside_a_logger_are_correlated(path: str, manager: TelemetryManager) -> None:
    formatter = logging.Formatter(FORMAT)
    with manager.span("op", tenant_id="acme") as span:
        made = logging.makeLogRecord({"msg": "made"})
        direct = logging.getLogRecordFactory()("n", logging.INFO, __file__, 1, "direct", (), None)
    assert formatter.format(made) == _line(span, "acme", "made")
    assert formatter.format(direct) == _line(span, "acme", "direct")
    received = logging.makeLogRecord({"msg": "received", "tenant_id": "sender"})
    assert formatter.format(received) == "||sender|||received"


def test_records_copy_and_pickle_with_their_fields(path: str, manager: TelemetryManager) -> None:
    logger = logging.getLogger(f"p.pickle.{path}")
    with manager.span("op", tenant_id="acme") as span:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m %s", (1,), None)
    trace_id = _ids(span)[0]
    for clone in (pickle.loads(pickle.dumps(record)), copy.copy(record)):
        assert isinstance(clone, CorrelatedLogRecord)
        assert (clone.tenant_id, clone.trace_id) == ("acme", trace_id)
        assert clone.getMessage() == "m 1"
        clone.correlate()  # nothing left to do, never fails
        assert clone.tenant_id == "acme"


# ------------------------------------------------------------------ concurrency


def test_each_thread_logs_its_own_tenant_and_trace(path: str, manager: TelemetryManager) -> None:
    logger, stream = _logger(f"p.threads.{path}", "%(tenant_id)s %(trace_id)s %(message)s")
    expected: dict[str, str] = {}
    barrier = threading.Barrier(6)

    def work(tenant: str) -> None:
        barrier.wait(5)
        for _ in range(30):
            logger.info("%s outside", tenant)
        with manager.span("job", tenant_id=tenant) as span:
            expected[tenant] = _ids(span)[0]
            for _ in range(30):
                logger.info("%s inside", tenant)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 360
    for line in lines:
        tenant, trace_id, message, where = line.split(" ")
        if where == "outside":
            assert (tenant, trace_id) == ("", "")
        else:
            assert (tenant, trace_id) == (message, expected[message])


def test_each_asyncio_task_logs_its_own_tenant_and_trace(
    path: str, manager: TelemetryManager
) -> None:
    logger, stream = _logger(f"p.tasks.{path}", "%(tenant_id)s %(trace_id)s %(message)s")
    expected: dict[str, str] = {}

    async def work(tenant: str) -> None:
        with manager.span("task", tenant_id=tenant) as span:
            expected[tenant] = _ids(span)[0]
            for index in range(20):
                logger.info("%s %d", tenant, index)
                await asyncio.sleep(0)  # the tasks interleave record by record

    async def main() -> None:
        await asyncio.gather(*(work(f"t{i}") for i in range(4)))
        logger.info("- done")

    asyncio.run(main())
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "  - done"
    assert len({line.split(" ")[0] for line in lines[:8]}) > 1  # interleaved
    for line in lines[:-1]:
        tenant, trace_id, message, _ = line.split(" ")
        assert (tenant, trace_id) == (message, expected[message])


# ------------------------------------------------------------------ structlog


def test_the_structlog_processor_in_and_outside_spans_and_scopes(
    manager: TelemetryManager,
) -> None:
    structlog = require_module("structlog")
    output = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[add_log_correlation, structlog.processors.JSONRenderer(sort_keys=True)],
    )
    logger.info("outside")
    with tenant_scope("globex"):
        logger.info("scope")
    with manager.span("op", tenant_id="acme") as span:
        logger.info("span")
        logger.info("bound", tenant_id="kept", span_id="kept")
    outside, scope, inside, bound = (json.loads(line) for line in output.getvalue().splitlines())
    trace_id, span_id = _ids(span)
    assert outside == {"event": "outside", **dict.fromkeys(CORRELATION_FIELDS, "")}
    assert scope == {
        "event": "scope",
        **dict.fromkeys(CORRELATION_FIELDS, ""),
        "tenant_id": "globex",
    }
    assert inside == {
        "event": "span",
        "trace_id": trace_id,
        "span_id": span_id,
        "tenant_id": "acme",
        "service_name": "checkout",
        "project_name": "cogniverse-acme",
    }
    assert (bound["tenant_id"], bound["span_id"], bound["trace_id"]) == ("kept", "kept", trace_id)
