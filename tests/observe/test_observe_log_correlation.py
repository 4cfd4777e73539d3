"""Log correlation: stdlib logging (formats, dictConfig, JSON), structlog, the environment."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import logging.handlers
import pickle
import queue
import threading
from collections.abc import Iterator

import pytest
from observe_helpers import SmallJsonFormatter, require_module
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from tenantrace import TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.observe import (
    CORRELATION_FIELDS,
    CorrelatedLogRecord,
    CorrelationFilter,
    add_log_correlation,
    correlate_logs,
    correlate_logs_from_env,
    correlation_fields,
    log_correlation_enabled,
    uncorrelate_logs,
)

FORMAT = "%(trace_id)s|%(span_id)s|%(tenant_id)s|%(service_name)s|%(project_name)s|%(message)s"


@pytest.fixture(autouse=True)
def correlation_off_after() -> Iterator[None]:
    """Each test starts and ends with logging's own record factory."""
    previous = logging.getLogRecordFactory()
    uncorrelate_logs()
    yield
    uncorrelate_logs()
    logging.setLogRecordFactory(previous)


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
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_a_record_in_a_span_names_its_trace_span_tenant_service_and_project(
    manager: TelemetryManager,
) -> None:
    assert correlate_logs()
    logger, stream = _logger("t.percent")
    with manager.span("checkout", tenant_id="acme") as span:
        logger.info("paid %s", 42)
        trace_id, span_id = _ids(span)
    assert stream.getvalue().splitlines() == [
        f"{trace_id}|{span_id}|acme|checkout|cogniverse-acme|paid 42"
    ]


def test_a_record_outside_any_span_has_empty_fields_and_no_error() -> None:
    correlate_logs()
    logger, stream = _logger("t.outside")
    logger.warning("no span here")
    assert stream.getvalue() == "|||||no span here\n"
    assert correlation_fields() == dict.fromkeys(CORRELATION_FIELDS, "")


def test_a_tenant_scope_without_a_span_gives_the_tenant_only() -> None:
    correlate_logs()
    logger, stream = _logger("t.scope")
    with tenant_scope("globex"):
        logger.info("queued")
    assert stream.getvalue() == "||globex|||queued\n"


def test_each_thread_logs_its_own_tenant_and_trace(manager: TelemetryManager) -> None:
    correlate_logs()
    logger, stream = _logger("t.threads", "%(tenant_id)s %(trace_id)s %(message)s")
    expected: dict[str, str] = {}
    barrier = threading.Barrier(8)

    def work(tenant: str) -> None:
        with manager.span("job", tenant_id=tenant) as span:
            expected[tenant] = _ids(span)[0]
            barrier.wait(5)
            for _ in range(50):
                logger.info(tenant)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 400
    for line in lines:
        tenant, trace_id, message = line.split(" ")
        assert tenant == message
        assert trace_id == expected[tenant]


def test_an_extra_of_the_same_name_wins_and_never_raises(manager: TelemetryManager) -> None:
    correlate_logs()
    logger, stream = _logger("t.extra")
    with manager.span("checkout", tenant_id="acme") as span:
        logger.info("mine", extra={"tenant_id": "from-extra", "order": 7})
        trace_id, span_id = _ids(span)
    assert stream.getvalue() == f"{trace_id}|{span_id}|from-extra|checkout|cogniverse-acme|mine\n"


def test_dictconfig_and_handlers_added_later_see_the_fields(manager: TelemetryManager) -> None:
    correlate_logs()  # before logging is configured, as an application's start does
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"correlated": {"format": "%(tenant_id)s %(trace_id)s %(message)s"}},
            "handlers": {
                "out": {
                    "class": "logging.StreamHandler",
                    "formatter": "correlated",
                    "stream": stream,
                }
            },
            "loggers": {"t.dict": {"handlers": ["out"], "level": "INFO", "propagate": False}},
        }
    )
    logger = logging.getLogger("t.dict")
    child = logging.getLogger("t.dict.child")  # propagates to the configured handler
    later = io.StringIO()
    added = logging.StreamHandler(later)
    added.setFormatter(logging.Formatter("%(project_name)s %(message)s"))
    logger.addHandler(added)
    try:
        with manager.span("op", tenant_id="initech") as span:
            child.info("from a child")
            trace_id = _ids(span)[0]
    finally:
        logger.removeHandler(added)
    assert stream.getvalue() == f"initech {trace_id} from a child\n"
    assert later.getvalue() == "cogniverse-initech from a child\n"


def test_the_filter_serves_dictconfig_users_without_the_factory(
    manager: TelemetryManager,
) -> None:
    assert not log_correlation_enabled()
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"tenantrace": {"()": "tenantrace.observe.CorrelationFilter"}},
            "formatters": {"f": {"format": "%(tenant_id)s %(span_id)s %(message)s"}},
            "handlers": {
                "out": {
                    "class": "logging.StreamHandler",
                    "formatter": "f",
                    "filters": ["tenantrace"],
                    "stream": stream,
                }
            },
            "loggers": {"t.filter": {"handlers": ["out"], "level": "INFO", "propagate": False}},
        }
    )
    with manager.span("op", tenant_id="acme") as span:
        logging.getLogger("t.filter").info("filtered")
        span_id = _ids(span)[1]
    assert stream.getvalue() == f"acme {span_id} filtered\n"


def test_a_json_formatter_sees_the_fields_and_not_the_captured_context(
    manager: TelemetryManager,
) -> None:
    correlate_logs()
    logger, stream = _logger("t.json")
    logger.handlers[0].setFormatter(SmallJsonFormatter(CORRELATION_FIELDS))
    with manager.span("op", tenant_id="acme") as span:
        logger.info("json")
        trace_id, span_id = _ids(span)
    logger.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside == {
        "message": "json",
        "trace_id": trace_id,
        "span_id": span_id,
        "tenant_id": "acme",
        "service_name": "checkout",
        "project_name": "cogniverse-acme",
    }
    assert outside == {"message": "outside", **dict.fromkeys(CORRELATION_FIELDS, "")}


def test_python_json_logger_gets_the_fields(manager: TelemetryManager) -> None:
    require_module("pythonjsonlogger", "python-json-logger")
    from pythonjsonlogger.json import JsonFormatter

    correlate_logs()
    logger, stream = _logger("t.pjl")
    logger.handlers[0].setFormatter(JsonFormatter("%(message)s %(tenant_id)s %(trace_id)s"))
    with manager.span("op", tenant_id="acme") as span:
        logger.info("structured", extra={"order": 7})
        trace_id = _ids(span)[0]
    document = json.loads(stream.getvalue())
    assert document["tenant_id"] == "acme"
    assert document["trace_id"] == trace_id
    assert document["order"] == 7
    assert not any(key.startswith("_tenantrace") for key in document)


def test_a_record_formatted_on_another_thread_keeps_the_logging_threads_span(
    manager: TelemetryManager,
) -> None:
    correlate_logs()
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(tenant_id)s %(trace_id)s %(message)s"))
    logger = logging.getLogger("t.queue")
    logger.handlers[:] = [logging.handlers.QueueHandler(records)]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    class RawQueue(logging.Handler):  # hands the record over unformatted
        def emit(self, record: logging.LogRecord) -> None:
            records.put(record)

    raw = logging.getLogger("t.queue.raw")
    raw.handlers[:] = [RawQueue()]
    raw.propagate = False
    raw.setLevel(logging.INFO)
    listener = logging.handlers.QueueListener(records, target)
    listener.start()
    try:
        with manager.span("op", tenant_id="acme") as span:
            logger.info("prepared")
            raw.info("raw")
            trace_id = _ids(span)[0]
    finally:
        listener.stop()
    assert stream.getvalue().splitlines() == [
        f"acme {trace_id} prepared",
        f"acme {trace_id} raw",
    ]


def test_records_copy_and_pickle_with_their_fields(manager: TelemetryManager) -> None:
    correlate_logs()
    with manager.span("op", tenant_id="acme") as span:
        record = logging.getLogger("t.pickle").makeRecord(
            "t.pickle", logging.INFO, __file__, 1, "m", (), None
        )
        trace_id = _ids(span)[0]
    assert isinstance(record, CorrelatedLogRecord)
    for clone in (pickle.loads(pickle.dumps(record)), copy.copy(record)):
        assert clone.tenant_id == "acme"
        assert clone.trace_id == trace_id
        assert clone.getMessage() == "m"


def test_a_sampled_out_span_still_gives_ids_and_tenant() -> None:
    correlate_logs()
    manager = TelemetryManager(TelemetryConfig(exporter_type="none"), sampler=ALWAYS_OFF)
    try:
        logger, stream = _logger("t.sampled", "%(tenant_id)s %(trace_id)s")
        with manager.span("op", tenant_id="acme") as span:
            logger.info("x")
            trace_id = _ids(span)[0]
    finally:
        manager.shutdown(timeout_millis=1000)
    assert stream.getvalue() == f"acme {trace_id}\n"


def test_correlation_chains_the_factory_in_place_and_undoes_cleanly() -> None:
    seen: list[str] = []
    original = logging.getLogRecordFactory()

    def custom(*args: object, **kwargs: object) -> logging.LogRecord:
        record = original(*args, **kwargs)
        record.custom = "yes"
        seen.append("custom")
        return record

    logging.setLogRecordFactory(custom)
    assert correlate_logs()
    assert not correlate_logs()  # idempotent
    with tenant_scope("acme"):
        record = logging.getLogger("t.chain").makeRecord(
            "t.chain", logging.INFO, __file__, 1, "m", (), None, extra={"tenant_id": "x"}
        )
    assert seen == ["custom"]
    assert record.custom == "yes"  # type: ignore[attr-defined]
    record.getMessage()
    assert record.tenant_id == "x"  # type: ignore[attr-defined]
    assert uncorrelate_logs()
    assert logging.getLogRecordFactory() is custom
    assert not uncorrelate_logs()


def test_a_field_read_before_formatting_is_filled_by_correlate(
    manager: TelemetryManager,
) -> None:
    correlate_logs()
    seen: list[str] = []

    class ByTenant(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record.tenant_id)  # type: ignore[attr-defined]
            return True

    logger, _ = _logger("t.before")
    logger.handlers[0].addFilter(CorrelationFilter())
    logger.handlers[0].addFilter(ByTenant())
    with manager.span("op", tenant_id="acme"):
        logger.info("routed")
    assert seen == ["acme"]


def test_structlog_processor_adds_the_fields(manager: TelemetryManager) -> None:
    structlog = require_module("structlog")
    output = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[add_log_correlation, structlog.processors.JSONRenderer(sort_keys=True)],
    )
    with manager.span("op", tenant_id="acme") as span:
        logger.info("charged", amount=3)
        logger.info("bound", tenant_id="kept")
        trace_id, span_id = _ids(span)
    logger.info("outside")
    first, bound, outside = (json.loads(line) for line in output.getvalue().splitlines())
    assert first == {
        "event": "charged",
        "amount": 3,
        "trace_id": trace_id,
        "span_id": span_id,
        "tenant_id": "acme",
        "service_name": "checkout",
        "project_name": "cogniverse-acme",
    }
    assert bound["tenant_id"] == "kept"
    assert outside == {"event": "outside", **dict.fromkeys(CORRELATION_FIELDS, "")}


def test_structlog_through_stdlib_gets_the_fields_of_foreign_records(
    manager: TelemetryManager,
) -> None:
    structlog = require_module("structlog")
    correlate_logs()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(CORRELATION_FIELDS)],
        )
    )
    logger = logging.getLogger("t.structlog.stdlib")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with manager.span("op", tenant_id="acme") as span:
        logger.info("foreign")
        trace_id = _ids(span)[0]
    document = json.loads(stream.getvalue())
    assert document["event"] == "foreign"
    assert document["tenant_id"] == "acme"
    assert document["trace_id"] == trace_id


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("true", True), ("1", True), ("on", True), ("false", False), ("", False), ("maybe", False)],
)
def test_the_environment_variable_turns_it_on(value: str, enabled: bool) -> None:
    assert correlate_logs_from_env({"TENANTRACE_LOG_CORRELATION": value}) is enabled
    assert log_correlation_enabled() is enabled
    assert correlate_logs_from_env({}) is enabled  # unset: leaves it as it is


def test_opentelemetry_logging_instrumentation_gets_its_service_name(
    manager: TelemetryManager,
) -> None:
    """Under the routing provider the instrumentation's otelServiceName is empty
    (it reads the global provider's Resource, which has none); with correlation on,
    the current span's service fills it."""
    require_module("opentelemetry.instrumentation.logging", "opentelemetry-instrumentation-logging")
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    from tenantrace import TenantRoutingTracerProvider

    instrumentor = LoggingInstrumentor()
    fmt = "%(otelServiceName)s|%(otelTraceID)s|%(message)s"
    instrumentor.instrument(
        tracer_provider=TenantRoutingTracerProvider(manager),
        enable_log_auto_instrumentation=False,
        inject_trace_context=True,
    )
    try:
        logger, stream = _logger("t.otel", fmt)
        with manager.span("op", tenant_id="acme") as span:
            logger.info("before")
            correlate_logs()
            logger.info("after")
            trace_id = _ids(span)[0]
    finally:
        uncorrelate_logs()
        instrumentor.uninstrument()
    assert stream.getvalue().splitlines() == [
        f"|{trace_id}|before",  # the finding: no service name
        f"checkout|{trace_id}|after",
    ]
