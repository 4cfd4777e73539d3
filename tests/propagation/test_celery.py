"""Celery, through real brokers (RabbitMQ and Redis) and real workers: the tenant and the trace
go from the producer to the task.

Mode (a), tenantrace's own signal hooks (``instrument_celery``): an in-process
worker (threads pool, 4 threads) per broker, and a separate prefork worker
process (2 children) that writes its spans to files. Mode (b),
opentelemetry-instrumentation-celery's ``CeleryInstrumentor`` with the global
``TenantPropagator``: our hooks stand aside, the tenant travels as baggage.

Every test also checks that no trace id is exported under two tenants.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chord, group
from celery import signals as celery_signals
from celery.contrib.testing.worker import start_worker
from celery_worker_app import BROKERS, delete_queue, make_app
from opentelemetry import propagate
from span_links import linked_ids

from tenantrace import TelemetryConfig, TenantRoutingTracerProvider, current_tenant, tenant_scope
from tenantrace.propagation import (
    EgressPolicy,
    TenantTrustPolicy,
    baggage_scope,
    get_trace_id,
    set_default_trust_policy,
    set_egress_policy,
)
from tenantrace.propagation.celery import (
    CELERY_HEADER,
    celery_instrumentor_active,
    instrument_celery,
    is_celery_instrumented,
    uninstrument_celery,
)
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

HERE = Path(__file__).parent
TIMEOUT = 15  # seconds for one result; a healthy broker answers in milliseconds
# What a task without a tenant sees: None, or the default tenant of the span it runs in.
NO_TENANT = (None, "default")

pytestmark = pytest.mark.filterwarnings(
    # Celery's Redis result backend calls a redis-py method deprecated since 2.6.12.
    "ignore:Call to deprecated setex:DeprecationWarning"
)

BROKER_PARAMS = [
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.redis], id="rabbitmq"),
]


def _require_brokers(request: pytest.FixtureRequest, broker: str) -> None:
    """tests/conftest.py's ``require_service``: skip locally, fail in CI (results are in Redis)."""
    root = HERE.parent / "conftest.py"
    require: Callable[[str, str, int], None] = request.config.pluginmanager.get_plugin(
        str(root)
    ).require_service
    require("Redis", "127.0.0.1", 6379)
    if broker == "rabbitmq":
        require("RabbitMQ", "127.0.0.1", 5672)


@pytest.fixture(scope="module", params=BROKER_PARAMS)
def app(request: pytest.FixtureRequest) -> Iterator[Celery]:
    """A real worker in this process (threads pool, 4 threads) on a private queue."""
    _require_brokers(request, request.param)
    queue = f"tenantrace-test-{uuid.uuid4().hex[:10]}"
    celery_app = make_app(BROKERS[request.param], queue)
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
    ):
        yield celery_app
    delete_queue(celery_app, queue)


@pytest.fixture
def hooks() -> Iterator[None]:
    """Mode (a): tenantrace's hooks, removed after the test."""
    instrument_celery()
    yield
    uninstrument_celery()
    assert not is_celery_instrumented()


@pytest.fixture
def headers_sent() -> Iterator[list[dict[str, Any]]]:
    """The headers of every task message published during the test (after our hook wrote them)."""
    seen: list[dict[str, Any]] = []

    def spy(headers: dict[str, Any] | None = None, **_: object) -> None:
        seen.append(dict(headers or {}))

    celery_signals.before_task_publish.connect(spy, weak=False, dispatch_uid="test.spy")
    yield seen
    celery_signals.before_task_publish.disconnect(spy, dispatch_uid="test.spy")


def settle(spans: SpanCapture, consumers: int, timeout: float = TIMEOUT) -> list[CapturedSpan]:
    """The exported spans once ``consumers`` task spans have ended and none is open.

    A task's span ends in ``task_postrun``, just after Celery stores the
    result: ``result.get()`` can return before it.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = spans.spans()
        done = sum(1 for s in found if s.kind == "CONSUMER")
        if done >= consumers and spans.unfinished() <= 0:
            return found
        if time.monotonic() > deadline:
            names = [s.name for s in found]
            raise AssertionError(f"{done} of {consumers} task spans ended: {names}")
        time.sleep(0.01)


def assert_one_tenant_per_trace(found: list[CapturedSpan] | list[dict[str, Any]]) -> None:
    """No trace id is exported under two tenants (Phoenix files a trace in one project)."""
    tenants: dict[str, set[str | None]] = defaultdict(set)
    for span in found:
        if isinstance(span, CapturedSpan):
            tenants[span.trace_id].add(span.tenant)
        else:
            tenants[span["trace_id"]].add(span["tenant"])
    mixed = {trace: sorted(map(str, t)) for trace, t in tenants.items() if len(t) > 1}
    assert not mixed, f"traces exported under several tenants: {mixed}"


def _ancestors(span: CapturedSpan, by_id: dict[str, CapturedSpan]) -> list[str]:
    found = []
    while span.parent_id in by_id:
        found.append(span.parent_id)
        span = by_id[span.parent_id]
    return found


def _task(celery_app: Celery, name: str) -> Any:
    return celery_app.tasks[name]


# ------------------------------------------------------------------ mode (a)


@pytest.mark.usefixtures("hooks")
def test_the_tenant_and_the_trace_reach_the_task(
    app: Celery, spans: SpanCapture, headers_sent: list[dict[str, Any]]
) -> None:
    with tenant_scope("acme"), spans.manager.span("checkout"):
        trace_id = get_trace_id()
        result = _task(app, "tt.whoami").delay("a")
    seen = result.get(timeout=TIMEOUT)
    assert seen["tenant"] == "acme"
    assert seen["trace_id"] == trace_id

    found = settle(spans, 1)
    checkout = spans.one("checkout")
    publish, process, work = (
        spans.one("tt.whoami publish"),
        spans.one("tt.whoami process"),
        spans.one("work a"),
    )
    assert (publish.kind, process.kind) == ("PRODUCER", "CONSUMER")
    assert publish.parent_id == checkout.span_id
    assert process.parent_id == publish.span_id
    assert work.parent_id == process.span_id
    for span in (publish, process, work):
        assert (span.trace_id, span.tenant, span.project) == (trace_id, "acme", "cogniverse-acme")
    assert process.attributes["messaging.message.id"] == result.id
    assert process.attributes["celery.task_name"] == "tt.whoami"
    assert process.attributes["celery.state"] == "SUCCESS"
    assert process.attributes["messaging.destination.name"] == app.conf.task_default_queue
    assert publish.attributes["messaging.operation.type"] == "send"
    # The carrier: one header, strings only, the tenant as baggage.
    [headers] = headers_sent
    carrier = headers[CELERY_HEADER]
    assert set(carrier) == {"traceparent", "baggage"}
    assert carrier["traceparent"].split("-")[2] == publish.span_id
    assert carrier["baggage"] == "tenant.id=acme"
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_without_the_publish_span_the_task_is_a_child_of_the_caller(
    app: Celery, spans: SpanCapture
) -> None:
    instrument_celery(publish_span=False)
    with tenant_scope("globex"), spans.manager.span("upload"):
        result = _task(app, "tt.whoami").delay("b")
    assert result.get(timeout=TIMEOUT)["tenant"] == "globex"
    found = settle(spans, 1)
    assert spans.by_name("tt.whoami publish") == []
    assert spans.one("tt.whoami process").parent_id == spans.one("upload").span_id
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_a_failing_task_records_the_error_once_and_leaks_nothing(
    app: Celery, spans: SpanCapture
) -> None:
    boom, whoami = _task(app, "tt.boom"), _task(app, "tt.whoami")
    with tenant_scope("initech"):
        failed = [boom.delay(f"f{i}") for i in range(8)]
    for result in failed:
        with pytest.raises(RuntimeError, match="boom"):
            result.get(timeout=TIMEOUT)
    # The same 4 worker threads run these next: nothing of the failed tasks may remain.
    after = [whoami.delay(f"n{i}") for i in range(8)]
    assert all(r.get(timeout=TIMEOUT)["tenant"] in NO_TENANT for r in after)

    found = settle(spans, 16)
    processes = spans.by_name("tt.boom process")
    assert len(processes) == 8
    for span in processes:
        assert (span.tenant, span.status, span.attributes["celery.state"]) == (
            "initech",
            "ERROR",
            "FAILURE",
        )
        assert span.events == ["exception"]
        assert span.attributes["error.type"] == "RuntimeError"
    for span in spans.by_name("tt.whoami process"):
        assert (span.tenant, span.status) == ("default", "UNSET")
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_every_retry_runs_in_the_same_tenant_and_trace(app: Celery, spans: SpanCapture) -> None:
    with tenant_scope("globex"), spans.manager.span("import"):
        trace_id = get_trace_id()
        result = _task(app, "tt.flaky").delay("r", 2)
    seen = result.get(timeout=TIMEOUT)
    assert (seen["tenant"], seen["trace_id"], seen["retries"]) == ("globex", trace_id, 2)

    found = settle(spans, 3)
    attempts = sorted(
        spans.by_name("tt.flaky process"), key=lambda s: s.attributes.get("celery.retries", 0)
    )
    assert [s.attributes.get("celery.retries", 0) for s in attempts] == [0, 1, 2]
    assert {(s.tenant, s.trace_id) for s in attempts} == {("globex", trace_id)}
    assert [s.attributes["celery.state"] for s in attempts] == ["RETRY", "RETRY", "SUCCESS"]
    assert [s.status for s in attempts] == ["ERROR", "ERROR", "UNSET"]
    assert [s.events for s in attempts] == [["exception"], ["exception"], []]
    assert attempts[0].attributes["celery.retry.reason"].startswith("Retry in")
    # Each retry is published from inside the failed attempt: attempt -> publish -> attempt.
    by_id = {s.span_id: s for s in found}
    assert len(spans.by_name("tt.flaky publish")) == 3
    for before, retry in itertools.pairwise(attempts):
        publish = by_id[str(retry.parent_id)]
        assert publish.name == "tt.flaky publish"
        assert before.span_id in _ancestors(publish, by_id)
    assert {s.tenant for s in spans.spans() if s.name.startswith("attempt r")} == {"globex"}
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_group_and_chord_keep_the_tenant(app: Celery, spans: SpanCapture) -> None:
    add, collect = _task(app, "tt.add"), _task(app, "tt.collect")
    with tenant_scope("initech"), spans.manager.span("batch"):
        trace_id = get_trace_id()
        grouped = group(add.s(i, i) for i in range(3)).apply_async()
        chorded = chord(add.s(i, 1) for i in range(3))(collect.s())
    parts = grouped.get(timeout=TIMEOUT)
    total = chorded.get(timeout=TIMEOUT)
    assert [p["sum"] for p in parts] == [0, 2, 4]
    assert {(p["tenant"], p["trace_id"]) for p in parts} == {("initech", trace_id)}
    assert (total["total"], total["tenant"], total["trace_id"]) == (6, "initech", trace_id)

    found = settle(spans, 7)
    consumers = [s for s in found if s.kind == "CONSUMER"]
    assert {(s.tenant, s.trace_id) for s in consumers} == {("initech", trace_id)}
    # The chord's body is published by the worker, inside the last header task.
    body = spans.one("tt.collect process")
    [body_publish] = [s for s in found if s.span_id == body.parent_id]
    header_ids = {s.span_id for s in spans.by_name("tt.add process")}
    assert body_publish.parent_id in header_ids
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_eta_and_countdown_tasks_keep_the_tenant(app: Celery, spans: SpanCapture) -> None:
    whoami = _task(app, "tt.whoami")
    with tenant_scope("acme"), spans.manager.span("schedule"):
        later = whoami.apply_async(("countdown",), countdown=0.4)
    with tenant_scope("globex"), spans.manager.span("schedule"):
        at = whoami.apply_async(("eta",), eta=datetime.now(UTC) + timedelta(seconds=0.4))
    assert later.get(timeout=TIMEOUT)["tenant"] == "acme"
    assert at.get(timeout=TIMEOUT)["tenant"] == "globex"

    found = settle(spans, 2)
    for span in spans.by_name("tt.whoami process"):
        [publish] = [s for s in found if s.span_id == span.parent_id]
        assert (publish.tenant, publish.trace_id) == (span.tenant, span.trace_id)
        assert span.attributes["celery.state"] == "SUCCESS"
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_a_worker_serving_many_tenants_at_once_never_mixes_them(
    app: Celery, spans: SpanCapture
) -> None:
    whoami = _task(app, "tt.whoami")
    tenants = ["acme", "globex", "initech", "umbrella", "hooli", None]
    sent = []
    for i in range(36):
        tenant = tenants[i % len(tenants)]
        label = f"c{i}"
        if tenant is None:
            sent.append((None, label, whoami.delay(label, 0.03)))
            continue
        with tenant_scope(tenant), spans.manager.span(f"send {label}"):
            sent.append((tenant, label, whoami.delay(label, 0.03)))
    results = [(tenant, label, result.get(timeout=TIMEOUT)) for tenant, label, result in sent]
    for tenant, label, seen in results:
        assert seen["label"] == label
        assert seen["tenant"] == tenant if tenant else seen["tenant"] in NO_TENANT
    assert len({seen["thread"] for _, _, seen in results}) > 1  # really concurrent

    found = settle(spans, 36)
    expected = {label: tenant or "default" for tenant, label, _ in sent}
    for span in found:
        if span.name.startswith("work "):
            assert span.tenant == expected[span.name.removeprefix("work ")]
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_baggage_alone_never_chooses_the_tenant(
    app: Celery, spans: SpanCapture, headers_sent: list[dict[str, Any]]
) -> None:
    whoami = _task(app, "tt.whoami")
    for policy in (True, False, None):
        instrument_celery(trust=policy)
        # No tenant_scope: only baggage says "acme".
        with baggage_scope({"tenant.id": "acme"}), spans.manager.span("claim"):
            assert current_tenant() in NO_TENANT  # baggage never sets the local tenant
            result = whoami.delay("claim")
        assert result.get(timeout=TIMEOUT)["tenant"] in NO_TENANT
        # The message names the tenant of the work, not the baggage member.
        assert headers_sent[-1][CELERY_HEADER]["baggage"].startswith("tenant.id=default")

    found = settle(spans, 3)
    assert {s.tenant for s in spans.by_name("work claim")} == {"default"}
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_a_claim_from_another_producer_is_honoured_only_where_trusted(
    app: Celery, spans: SpanCapture
) -> None:
    whoami = _task(app, "tt.whoami")

    def claim_acme(headers: dict[str, Any] | None = None, **_: object) -> None:
        # A producer that is not tenantrace (after our hook: replaces what it wrote).
        if headers is not None:
            headers[CELERY_HEADER] = {"baggage": "tenant.id=acme"}

    celery_signals.before_task_publish.connect(claim_acme, weak=False, dispatch_uid="test.c")
    try:
        rejected = spans.manager.get_stats()["rejected_tenants"]
        for policy in (False, TenantTrustPolicy(allowed_tenants=frozenset({"globex"}))):
            instrument_celery(trust=policy)
            assert whoami.delay("other").get(timeout=TIMEOUT)["tenant"] in NO_TENANT
        assert spans.manager.get_stats()["rejected_tenants"] == rejected + 2

        instrument_celery(trust=True)
        assert whoami.delay("other").get(timeout=TIMEOUT)["tenant"] == "acme"

        set_default_trust_policy(TenantTrustPolicy(allowed_tenants=frozenset({"acme"})))
        instrument_celery(trust=None)  # None: the process default decides
        assert whoami.delay("other").get(timeout=TIMEOUT)["tenant"] == "acme"
    finally:
        celery_signals.before_task_publish.disconnect(claim_acme, dispatch_uid="test.c")

    found = settle(spans, 4)
    work = sorted(spans.by_name("work other"), key=lambda s: s.raw.start_time if s.raw else 0)
    assert [s.tenant for s in work] == ["default", "default", "acme", "acme"]
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_an_untrusting_worker_keeps_the_trace_but_not_the_tenant(
    app: Celery, spans: SpanCapture
) -> None:
    instrument_celery(trust=False)
    with tenant_scope("acme"), spans.manager.span("checkout"):
        seen = _task(app, "tt.whoami").delay("u").get(timeout=TIMEOUT)
    assert seen["tenant"] in NO_TENANT
    found = settle(spans, 1)
    process = spans.one("tt.whoami process")
    publish = spans.one("tt.whoami publish")
    assert process.tenant == "default" and publish.tenant == "acme"
    # Either the same trace (the parent across the wire) or, once a span whose tenant
    # differs from its parent's starts a new trace, a link to the producer.
    assert process.parent_id == publish.span_id or (publish.trace_id, publish.span_id) in (
        linked_ids(process)
    )
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("hooks")
def test_forged_or_broken_carriers_never_break_a_task(app: Celery, spans: SpanCapture) -> None:
    forged = iter(
        [
            {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01", "baggage": "tenant.id=acme"},
            "not json {",
            "x" * 100_000,
            {"baggage": "tenant.id=../../etc"},
            ["traceparent", 7],
        ]
    )

    def forge(headers: dict[str, Any] | None = None, **_: object) -> None:
        if headers is not None:  # after our hook: replaces the carrier it wrote
            headers[CELERY_HEADER] = next(forged)

    instrument_celery(trust=TenantTrustPolicy(allowed_tenants=frozenset({"globex"})))
    celery_signals.before_task_publish.connect(forge, weak=False, dispatch_uid="test.forge")
    try:
        with tenant_scope("globex"):
            results = [_task(app, "tt.whoami").delay(f"x{i}") for i in range(5)]
    finally:
        celery_signals.before_task_publish.disconnect(forge, dispatch_uid="test.forge")
    assert all(r.get(timeout=TIMEOUT)["tenant"] in NO_TENANT for r in results)
    found = settle(spans, 5)
    processes = spans.by_name("tt.whoami process")
    assert {s.tenant for s in processes} == {"default"}
    # The forged parent's claim was refused: a new trace, linked to it.
    assert sum(("ab" * 16, "cd" * 8) in linked_ids(s) for s in processes) == 1
    assert_one_tenant_per_trace([s for s in found if s.kind == "CONSUMER"])


def test_install_is_idempotent_and_uninstall_stops_propagation(
    app: Celery, spans: SpanCapture, headers_sent: list[dict[str, Any]]
) -> None:
    whoami = _task(app, "tt.whoami")
    assert instrument_celery() is True
    try:
        assert instrument_celery() is False
        assert instrument_celery(app) is False  # settings replaced, receivers not doubled
        with tenant_scope("acme"):
            assert whoami.delay("i").get(timeout=TIMEOUT)["tenant"] == "acme"
        settle(spans, 1)
        assert len(spans.by_name("tt.whoami process")) == 1
        assert len(spans.by_name("tt.whoami publish")) == 1
    finally:
        assert uninstrument_celery() is True
    assert uninstrument_celery() is False
    spans.clear()
    with tenant_scope("acme"):
        assert whoami.delay("off").get(timeout=TIMEOUT)["tenant"] in NO_TENANT
    assert CELERY_HEADER not in headers_sent[-1]
    assert spans.names() == ["work off"]  # the task's own span only


def test_hooks_for_another_app_leave_this_apps_tasks_alone(app: Celery, spans: SpanCapture) -> None:
    other = Celery("another", set_as_current=False)
    instrument_celery(other)
    try:
        with tenant_scope("acme"):
            seen = _task(app, "tt.whoami").delay("other").get(timeout=TIMEOUT)
    finally:
        uninstrument_celery()
    assert seen["tenant"] in NO_TENANT  # published with a carrier; this app's tasks are not ours
    assert spans.by_name("tt.whoami process") == []


@pytest.mark.usefixtures("hooks")
def test_the_egress_policy_decides_whether_the_tenant_goes_into_the_message(
    app: Celery, spans: SpanCapture, headers_sent: list[dict[str, Any]]
) -> None:
    whoami = _task(app, "tt.whoami")
    set_egress_policy(EgressPolicy.allow(["127.0.0.1"], baggage_without_url=False))
    with tenant_scope("acme"):
        kept_out = whoami.delay("no-url")  # no destination named: no baggage
    assert "baggage" not in headers_sent[-1][CELERY_HEADER]
    assert kept_out.get(timeout=TIMEOUT)["tenant"] in NO_TENANT

    instrument_celery(url="amqp://127.0.0.1:5672/")  # the broker, on the allowlist
    with tenant_scope("acme"):
        sent = whoami.delay("allowed")
    assert headers_sent[-1][CELERY_HEADER]["baggage"] == "tenant.id=acme"
    assert sent.get(timeout=TIMEOUT)["tenant"] == "acme"
    assert_one_tenant_per_trace(settle(spans, 2))


@pytest.mark.usefixtures("hooks")
def test_with_spans_off_the_tenant_still_reaches_the_task(app: Celery) -> None:
    off = TelemetryConfig(exporter_type="memory", enabled=False)
    with capture_spans(off) as spans, tenant_scope("acme"):
        seen = _task(app, "tt.whoami").delay("quiet").get(timeout=TIMEOUT)
        assert spans.spans() == []
    assert seen["tenant"] == "acme"


# ------------------------------------------------------------------ eager


def test_an_eager_task_is_a_child_of_its_caller(spans: SpanCapture) -> None:
    eager = make_app("memory://", "eager")
    eager.conf.update(task_always_eager=True, task_store_eager_result=False)
    instrument_celery(eager)
    try:
        with tenant_scope("acme"), spans.manager.span("request"):
            seen = eager.tasks["tt.whoami"].delay("e").get()
    finally:
        uninstrument_celery()
    assert seen["tenant"] == "acme"
    process = spans.one("tt.whoami process")
    assert process.parent_id == spans.one("request").span_id
    assert process.tenant == "acme"
    assert current_tenant() is None


# ------------------------------------------------------- mode (b): the instrumentor


@pytest.fixture
def otel_celery() -> Iterator[None]:
    """opentelemetry-instrumentation-celery, its spans routed by tenant (the test's manager)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=TenantRoutingTracerProvider())
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def tenant_propagator() -> Iterator[None]:
    """The global propagator ``init_telemetry()`` installs: the tenant as baggage, trust applied."""
    try:
        from tenantrace.propagation.propagator import TenantPropagator
    except ImportError as exc:
        pytest.skip(
            "mode (b) needs tenantrace.propagation.propagator.TenantPropagator, "
            f"which is not in this checkout yet ({exc})"
        )
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(TenantPropagator())
    try:
        yield
    finally:
        propagate.set_global_textmap(previous)


@pytest.mark.usefixtures("hooks", "otel_celery")
def test_our_hooks_stand_aside_for_the_instrumentor(app: Celery, spans: SpanCapture) -> None:
    assert celery_instrumentor_active()
    with tenant_scope("acme"), spans.manager.span("checkout"):
        _task(app, "tt.whoami").delay("b1").get(timeout=TIMEOUT)
    found = settle(spans, 1)
    assert [s.name for s in found if s.kind in ("PRODUCER", "CONSUMER")].count("run/tt.whoami") == 1
    assert spans.by_name("tt.whoami process") == []
    assert spans.by_name("tt.whoami publish") == []
    run, publish = spans.one("run/tt.whoami"), spans.one("apply_async/tt.whoami")
    assert spans.one("work b1").parent_id == run.span_id
    # The default global propagator carries the trace but not the tenant: the run span
    # continues the trace or (an untrusted remote parent) starts one linked to it.
    assert run.parent_id == publish.span_id or (publish.trace_id, publish.span_id) in (
        linked_ids(run)
    )


@pytest.mark.usefixtures("hooks", "otel_celery", "tenant_propagator")
def test_with_the_instrumentor_the_tenant_travels_through_the_global_propagator(
    app: Celery,
) -> None:
    # As docs/celery.md sets it up: init_telemetry(TelemetryConfig(trust_tenant_claims=True)).
    set_default_trust_policy(None)  # the process policy is the config's
    trusting = TelemetryConfig(exporter_type="memory", trust_tenant_claims=True)
    whoami = _task(app, "tt.whoami")
    sent = []
    with capture_spans(trusting) as spans:
        for i, tenant in enumerate(["acme", "globex", "acme", "initech"]):
            with tenant_scope(tenant), spans.manager.span(f"send {i}"):
                sent.append((tenant, get_trace_id(), whoami.delay(f"m{i}", 0.02)))
        for tenant, trace_id, result in sent:
            seen = result.get(timeout=TIMEOUT)
            assert (seen["tenant"], seen["trace_id"]) == (tenant, trace_id)
        found = settle(spans, 4)
        runs = spans.by_name("run/tt.whoami")
        assert sorted(s.tenant or "" for s in runs) == ["acme", "acme", "globex", "initech"]
        assert spans.by_name("tt.whoami process") == []
    for span in found:
        if span.name.startswith("work m"):
            assert span.tenant == sent[int(span.name.removeprefix("work m"))][0]
    assert_one_tenant_per_trace(found)


@pytest.mark.usefixtures("otel_celery", "tenant_propagator")
def test_with_the_instrumentor_an_untrusted_claim_is_refused(
    app: Celery, spans: SpanCapture
) -> None:
    set_default_trust_policy(False)  # this worker trusts no claim
    with tenant_scope("acme"):
        seen = _task(app, "tt.whoami").delay("b3").get(timeout=TIMEOUT)
    assert seen["tenant"] in NO_TENANT
    found = settle(spans, 1)
    run, publish = spans.one("run/tt.whoami"), spans.one("apply_async/tt.whoami")
    assert (run.tenant, publish.tenant) == ("default", "acme")
    assert (publish.trace_id, publish.span_id) in linked_ids(run)  # a new trace, linked
    assert_one_tenant_per_trace(found)


# ------------------------------------------------------- a separate prefork worker


def _read_spans(directory: Path) -> list[dict[str, Any]]:
    import json

    return [
        json.loads(line)
        for path in sorted(directory.glob("spans-*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


@pytest.fixture(params=BROKER_PARAMS)
def prefork_worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Celery, Path]]:
    """``celery worker --pool=prefork --concurrency=2`` in its own process, spans to files."""
    _require_brokers(request, request.param)
    queue = f"tenantrace-prefork-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "TENANTRACE_CELERY_BROKER": BROKERS[request.param],
        "TENANTRACE_CELERY_QUEUE": queue,
        "TENANTRACE_CELERY_SPANS": str(tmp_path),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_worker_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    producer = make_app(BROKERS[request.param], queue)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"the worker did not start:\n{err[-3000:]}")
            time.sleep(0.05)
        yield producer, tmp_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)
        delete_queue(producer, queue)


@pytest.mark.usefixtures("hooks")
def test_a_prefork_worker_process_runs_each_tenants_tasks_in_that_tenant(
    prefork_worker: tuple[Celery, Path], spans: SpanCapture
) -> None:
    producer, directory = prefork_worker
    whoami, flaky = producer.signature("tt.whoami"), producer.signature("tt.flaky")
    sent = []
    for i, tenant in enumerate(["acme", "globex", "initech", "acme", "globex", "initech"]):
        with tenant_scope(tenant), spans.manager.span(f"send {i}"):
            trace_id = get_trace_id()
            sent.append((tenant, trace_id, whoami.clone((f"p{i}", 0.2)).apply_async()))
    with tenant_scope("hooli"), spans.manager.span("send retry"):
        retry_trace = get_trace_id()
        retried = flaky.clone(("pr", 1)).apply_async()

    for tenant, trace_id, result in sent:
        seen = result.get(timeout=TIMEOUT)
        assert (seen["tenant"], seen["trace_id"]) == (tenant, trace_id)
    assert len({seen["pid"] for seen in (r.get(timeout=TIMEOUT) for *_, r in sent)}) == 2
    seen = retried.get(timeout=TIMEOUT)
    assert (seen["tenant"], seen["trace_id"], seen["retries"]) == ("hooli", retry_trace, 1)

    deadline = time.monotonic() + TIMEOUT
    while True:  # the worker's spans end just after the results are stored
        worker_spans = _read_spans(directory)
        if sum(s["kind"] == "CONSUMER" for s in worker_spans) >= 8:
            break
        assert time.monotonic() < deadline, f"worker spans: {worker_spans}"
        time.sleep(0.05)

    publishes = {s.span_id: s for s in spans.by_name("tt.whoami publish")}
    processes = [s for s in worker_spans if s["name"] == "tt.whoami process"]
    assert len(processes) == 6
    for span in processes:
        producer_span = publishes[span["parent_id"]]
        assert (span["tenant"], span["trace_id"]) == (producer_span.tenant, producer_span.trace_id)
        assert span["project"] == f"cogniverse-{producer_span.tenant}"
    for span in worker_spans:
        if span["name"].startswith("work p"):
            assert span["tenant"] == sent[int(span["name"].removeprefix("work p"))][0]
    attempts = [s for s in worker_spans if s["name"] == "tt.flaky process"]
    assert {(s["tenant"], s["trace_id"]) for s in attempts} == {("hooli", retry_trace)}
    assert len(attempts) == 2
    assert_one_tenant_per_trace([*spans.spans(), *worker_spans])
