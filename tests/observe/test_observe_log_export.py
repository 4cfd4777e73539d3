"""Logs to the tenant's project: OTLP/gRPC logs to a real in-process LogsService receiver.

Each tenant's records arrive under its own Resource (tenant.id, project) with
the trace and span ids of the span that was current; a corpus of secrets logged
in messages, arguments, extras and exceptions never arrives (searched in the
request BYTES as received); the queue is bounded, fair and counted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from observe_receivers import LogsReceiver, attributes
from opentelemetry.sdk.resources import Resource

from tenantrace import TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.observe import (
    GrpcLogExporter,
    LogEntry,
    LogPipeline,
    TenantLogHandler,
    disable_log_export,
    enable_log_export,
)

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJsb2ctY29ycHVzIiwidGVuYW50IjoiYWNtZSJ9"
    ".TG9nQ29ycHVzU2lnbmF0dXJlVmFsdWUwMQ"
)
AWS_KEY = "AKIALOGCORPUS7X2Q9ZZ"
GITHUB = "ghp_LogCorpusGithubToken0123456789abcdef"
STRIPE = "sk_live_LogCorpusStripeKey01"
DSN_PASSWORD = "LogDsnSecret9"
PASSWORD = "LogPlainPassword7"
API_KEY = "LogApiKeyValue42"
SESSION = "LogCookieSession99"
PEM_BODY = "MIIEowIBAAKCAQEAlogcorpusPemBody"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
SECRETS = [*JWT.split("."), AWS_KEY, GITHUB, STRIPE, DSN_PASSWORD, PASSWORD, API_KEY, SESSION]
SECRETS.append(PEM_BODY)


@pytest.fixture
def receiver() -> Iterator[LogsReceiver]:
    made = LogsReceiver()
    yield made
    made.stop()


@pytest.fixture
def manager() -> Iterator[TelemetryManager]:
    made = TelemetryManager(TelemetryConfig(exporter_type="none", service_name="shop"))
    yield made
    made.shutdown(timeout_millis=1000)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    made = logging.getLogger("observe.export")
    made.setLevel(logging.INFO)
    made.propagate = False
    yield made
    made.handlers.clear()


def _records(receiver: LogsReceiver) -> list[tuple[dict[str, Any], Any]]:
    """Every received record with its Resource's attributes."""
    found = []
    for request in receiver.requests:
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            for scope in resource_logs.scope_logs:
                found.extend((resource, record) for record in scope.log_records)
    return found


def test_each_tenants_records_arrive_under_its_own_resource_with_the_spans_ids(
    receiver: LogsReceiver, manager: TelemetryManager, logger: logging.Logger
) -> None:
    handler = enable_log_export(manager, endpoint=receiver.endpoint, logger=logger)
    expected: dict[str, tuple[bytes, bytes]] = {}
    for tenant in ("acme", "globex", "initech"):
        with manager.span("checkout", tenant_id=tenant) as span:
            logger.info("order placed by %s", tenant, extra={"order.id": 7})
            context = span.get_span_context()
            expected[tenant] = (context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8))
    with tenant_scope("globex"):
        logger.warning("no span, still globex")
    logger.error("no tenant at all")
    assert handler.pipeline.force_flush(5000)
    assert disable_log_export(handler, logger)
    records = _records(receiver)
    assert len(records) == 5
    by_body = {record.body.string_value: (resource, record) for resource, record in records}
    for tenant, (trace_id, span_id) in expected.items():
        resource, record = by_body[f"order placed by {tenant}"]
        assert resource["tenant.id"] == tenant
        assert resource["openinference.project.name"] == f"cogniverse-{tenant}"
        assert resource["service.name"] == "shop"
        assert record.trace_id == trace_id
        assert record.span_id == span_id
        assert record.severity_text == "INFO"
        assert record.severity_number == 9
        assert attributes(record.attributes)["order.id"] == 7
    resource, record = by_body["no span, still globex"]
    assert resource["tenant.id"] == "globex"
    assert record.trace_id == b""
    assert record.severity_number == 13
    resource, record = by_body["no tenant at all"]
    assert resource["tenant.id"] == "default"  # the default tenant, as spans
    stats = handler.pipeline.stats
    assert stats.exported_records == 5
    assert stats.dropped_records == 0


def test_no_secret_of_the_corpus_arrives(
    receiver: LogsReceiver, manager: TelemetryManager, logger: logging.Logger
) -> None:
    handler = enable_log_export(manager, endpoint=receiver.endpoint, logger=logger)
    with manager.span("login", tenant_id="acme"):
        logger.info("Authorization: Bearer %s", JWT)
        logger.info("access key %s denied; github said %s", AWS_KEY, GITHUB)
        logger.info("stripe %s", STRIPE)
        logger.info("cannot reach postgresql://app:%s@127.0.0.1/db", DSN_PASSWORD)
        logger.info("login with password=%s", PASSWORD)
        logger.info("key file %s", PEM)
        logger.info(
            "user logged in",
            extra={
                "password": PASSWORD,
                "api_key": API_KEY,
                "http.request.header.cookie": f"session={SESSION}",
                "headers": {"Authorization": f"Bearer {JWT}", "X-Api-Key": API_KEY},
                "url.full": f"https://example.test/cb?api_key={API_KEY}&page=2",
                "note": f"token {GITHUB} rotated",
                "params": [f"Bearer {JWT}", 3],
                "user": "alice",
            },
        )
        try:
            raise RuntimeError(f"auth failed for password={PASSWORD} with {STRIPE}")
        except RuntimeError:
            logger.exception("login failed")
    assert handler.pipeline.force_flush(5000)
    disable_log_export(handler, logger)
    wire = b"".join(receiver.raw)
    leaked = [secret for secret in SECRETS if secret.encode() in wire]
    assert leaked == []
    # Positive controls: the records arrived, redacted, with what is not secret.
    records = {record.body.string_value: record for _, record in _records(receiver)}
    assert len(records) == 8
    extras = attributes(records["user logged in"].attributes)
    assert extras["password"] == "[REDACTED]"
    assert extras["api_key"] == "[REDACTED]"
    assert extras["user"] == "alice"
    assert "page=2" in extras["url.full"]
    assert "Authorization: [REDACTED] [REDACTED]" in records
    failed = attributes(records["login failed"].attributes)
    assert failed["exception.type"] == "RuntimeError"
    assert "[REDACTED]" in failed["exception.message"]


class _Hold:
    """An exporter that takes batches only when told to."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.batches: list[list[tuple[Resource, LogEntry]]] = []

    def export(self, batch: Sequence[tuple[Resource, LogEntry]]) -> bool:
        self.release.wait(10)
        self.batches.append(list(batch))
        return True

    def shutdown(self) -> None:
        self.release.set()


def test_the_queue_is_bounded_fair_and_counted(
    manager: TelemetryManager, logger: logging.Logger
) -> None:
    hold = _Hold()
    pipeline = LogPipeline(
        hold,
        manager=manager,
        max_queue_size=20,
        max_export_batch_size=20,
        schedule_delay_millis=10_000,
    )
    logger.addHandler(TenantLogHandler(pipeline))
    # The queue reaching a batch (20) wakes the export thread, which would take those
    # 20 into the held exporter if it ran before the 105 records are logged: keep the
    # GIL on this thread meanwhile (nothing here blocks), so the queue is the test's.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(60)
    try:
        with tenant_scope("noisy"):
            for index in range(100):
                logger.info("noisy %d", index)
        with tenant_scope("quiet"):
            for index in range(5):
                logger.info("quiet %d", index)
    finally:
        sys.setswitchinterval(switch)
    assert pipeline.queued == 20
    stats = pipeline.stats
    assert stats.records_emitted == 105
    assert stats.dropped_by_tenant == {"noisy": 85}
    hold.release.set()
    assert pipeline.force_flush(5000)
    tenants = [entry.tenant_id for batch in hold.batches for _, entry in batch]
    assert tenants.count("quiet") == 5  # the quiet tenant lost nothing
    assert tenants.count("noisy") == 15
    assert pipeline.shutdown(1000)


def test_a_dead_receiver_is_counted_not_raised(
    manager: TelemetryManager, logger: logging.Logger
) -> None:
    exporter = GrpcLogExporter("127.0.0.1:1", insecure=True, timeout=0.5)
    pipeline = LogPipeline(exporter, manager=manager, schedule_delay_millis=10)
    logger.addHandler(TenantLogHandler(pipeline))
    with tenant_scope("acme"):
        logger.info("lost")
    assert pipeline.force_flush(5000)
    assert pipeline.stats.export_failures == 1
    assert pipeline.stats.dropped_by_tenant == {"acme": 1}
    assert pipeline.shutdown(1000)
