"""One trace, one tenant, checked where it matters: in a real Phoenix, read back over REST.

Phoenix files a whole trace in the project of the first span it receives for
that trace id, so a trace holding two tenants' spans shows one tenant's spans
in the other's project. One test per way work crosses a tenant boundary:

1. a same-tenant hop between two processes (one trace, the callee in the caller's project);
2. a default-tenant root with acme and globex work below it (three traces, linked);
3. acme calling a service that puts the request in globex (B's spans in a linked trace of
   their own), the tenant named by the application's resolver or by a trusted gateway header;
4. a batch consumer over messages of three tenants (each message's spans in its tenant);
5. a ``@trace_function`` generator whose body enters another tenant while consumed.

Every test reads Phoenix back and asserts that each span is in its tenant's
project and nowhere else, and that none of its trace ids is in two projects.
Phoenix keeps no span links, so links are checked on the spans as exported
(process A keeps a copy of what it sends; process B answers with its spans).
Each test has tenants of its own (a unique suffix), so all share one Phoenix.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from phoenix_server import PhoenixServer, phoenix_project_spans, phoenix_projects, wait_for_spans
from tenantrace import (
    BatchExportConfig,
    EgressPolicy,
    TelemetryConfig,
    TelemetryManager,
    batch_span,
    inject_trace_context,
    message_span,
    propagate_context_to_dict,
    set_egress_policy,
    tenant_scope,
    trace_function,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.instrumentation.routing import install_routing_provider

pytestmark = pytest.mark.phoenix

SERVICE = Path(__file__).with_name("phoenix_isolation_service.py")
PARENT_LINK = {"tenantrace.link": "parent"}
TIMEOUT_S = 30


# ---------------------------------------------------------------- spans as seen


@dataclass(frozen=True)
class Seen:
    """A span as its own process exported it (Phoenix is then asked where it is)."""

    name: str
    tenant: str
    trace_id: str
    span_id: str
    parent_id: str | None
    project: str  # the project its provider's Resource names
    links: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...] = ()

    def linked_to(self, other: Seen) -> dict[str, Any] | None:
        """The attributes of this span's link to ``other``, None if there is none."""
        for trace_id, span_id, attributes in self.links:
            if (trace_id, span_id) == (other.trace_id, other.span_id):
                return dict(attributes)
        return None

    @classmethod
    def of(cls, span: ReadableSpan) -> Seen:
        context = span.get_span_context()
        assert context is not None
        return cls(
            name=span.name,
            tenant=str(span.resource.attributes["tenant.id"]),
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_id=format(span.parent.span_id, "016x") if span.parent else None,
            project=str(span.resource.attributes["openinference.project.name"]),
            links=tuple(
                (
                    format(link.context.trace_id, "032x"),
                    format(link.context.span_id, "016x"),
                    tuple(sorted((link.attributes or {}).items())),
                )
                for link in span.links
            ),
        )

    @classmethod
    def from_service(cls, answer: dict[str, Any]) -> Seen:
        """A span process B described in its answer (``phoenix_isolation_service.describe``)."""
        return cls(
            name=answer["name"],
            tenant=answer["tenant"],
            trace_id=answer["trace_id"],
            span_id=answer["span_id"],
            parent_id=answer["parent_id"],
            project=answer["project"],
            links=tuple(
                (link["trace_id"], link["span_id"], tuple(sorted(link["attributes"].items())))
                for link in answer["links"]
            ),
        )


class TeeExporter(SpanExporter):
    """Export to Phoenix over OTLP/HTTP and keep a copy, for the links Phoenix does not keep."""

    def __init__(self, endpoint: str) -> None:
        self.otlp = OTLPSpanExporter(endpoint=endpoint, timeout=10)
        self.memory = InMemorySpanExporter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.memory.export(spans)
        return self.otlp.export(spans)

    def shutdown(self) -> None:
        self.otlp.shutdown()  # the copy stays readable after the manager shut down

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@dataclass
class ProcessA:
    """This test process: a process-wide manager exporting to Phoenix, and its own tenants."""

    manager: TelemetryManager
    exporter: TeeExporter
    suffix: str
    answers: list[dict[str, Any]] = field(default_factory=list)

    def tenant(self, name: str) -> str:
        return f"{name}.{self.suffix}"

    @property
    def default_tenant(self) -> str:
        return self.manager.config.default_tenant_id

    def seen(self) -> list[Seen]:
        assert self.manager.force_flush(timeout_millis=10_000)
        return [Seen.of(span) for span in self.exporter.memory.get_finished_spans()]


@pytest.fixture
def process_a(phoenix: PhoenixServer) -> Iterator[ProcessA]:
    suffix = uuid.uuid4().hex[:10]  # tenants "acme.<suffix>": project "cogniverse-acme.<suffix>"
    exporter = TeeExporter(phoenix.otlp_http_endpoint)
    manager = TelemetryManager(
        TelemetryConfig(
            service_name="isolation-process-a",
            default_tenant_id=f"default.{suffix}",
            batch_config=BatchExportConfig(use_sync_export=True, export_timeout_millis=10_000),
        ),
        exporter=exporter,
    )
    previous = install_manager(manager)
    install_routing_provider()  # third-party tracers follow the process-wide manager
    try:
        yield ProcessA(manager, exporter, suffix)
        stats = manager.get_stats()
        assert stats["spans_started"] == stats["spans_ended"], "a span was never ended"
        assert stats["export_failures"] == 0, stats
        assert stats["dropped_spans"] == 0, stats
    finally:
        install_manager(previous)
        manager.shutdown(timeout_millis=5000)


# ------------------------------------------------------------------ process B


@pytest.fixture(scope="module")
def service_b(phoenix: PhoenixServer) -> Iterator[str]:
    """Process B (``phoenix_isolation_service.py``) exporting to the same Phoenix; its URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "TENANTRACE_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [
            sys.executable,
            str(SERVICE),
            "--phoenix",
            phoenix.http_url,
            "--default-tenant",
            f"b-default.{uuid.uuid4().hex[:10]}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the port, once the socket listens
    if not line.strip().isdigit():
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"process B did not start: {line!r}\n{err}")
    try:
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
        assert "Traceback" not in err, err


def call_b(a: ProcessA, url: str, headers: dict[str, str] | None = None) -> list[Seen]:
    """From A's tenant: ``a.checkout`` > CLIENT ``a.call`` > POST ``url`` (baggage allowed).

    Returns B's spans (SERVER, b.work, b.thread, b.task) as B described them.
    """
    set_egress_policy(EgressPolicy.allow(["127.0.0.1"]))  # restored by the conftest
    with (
        a.manager.span("a.checkout"),
        a.manager.span("a.call", kind=SpanKind.CLIENT),
        httpx.Client(timeout=TIMEOUT_S, trust_env=False) as client,
    ):
        sent = inject_trace_context(headers or {}, url=url)
        response = client.post(url, headers=sent)
    assert response.status_code == 200, response.text
    answer = response.json()
    a.answers.append(answer)
    server, *work = (
        Seen.from_service(answer[part]) for part in ("server", "work", "thread", "task")
    )
    # Named when it started; the middleware adds the route when the request is done.
    return [replace(server, name=f"POST {urlsplit(url).path}"), *work]


# ------------------------------------------------------------ Phoenix read-back


def assert_isolated_in_phoenix(phoenix: PhoenixServer, seen: Sequence[Seen], suffix: str) -> None:
    """Every span of ``seen`` is in its tenant's project, and only there; no trace in two.

    Also: each trace holds one tenant, and no project holds a span of this
    test (its tenants end in ``suffix``) that is not in ``seen``.
    """
    tenants_of_trace: dict[str, set[str]] = {}
    config = TelemetryConfig()  # the default project template, as both processes use
    for span in seen:
        assert span.project == config.get_project_name(span.tenant), (span.name, span.project)
        tenants_of_trace.setdefault(span.trace_id, set()).add(span.tenant)
    mixed = {trace: tenants for trace, tenants in tenants_of_trace.items() if len(tenants) > 1}
    assert not mixed, f"traces holding several tenants: {mixed}"

    by_project: dict[str, dict[str, Seen]] = {}
    for span in seen:
        by_project.setdefault(span.project, {})[span.span_id] = span
    for project, expected in by_project.items():
        got = wait_for_spans(phoenix.http_url, project, len(expected), timeout_s=TIMEOUT_S)
        by_id = {span["context"]["span_id"]: span for span in got}
        names = sorted(span["name"] for span in got)
        assert set(by_id) == set(expected), f"{project} holds {names}"
        for span_id, want in expected.items():
            stored = by_id[span_id]
            assert stored["name"] == want.name
            assert stored["context"]["trace_id"] == want.trace_id, (project, want.name)
            assert stored["parent_id"] == want.parent_id, (project, want.name)
            # Set by span() and the middleware; decorated and third-party spans
            # have their tenant in the Resource only (Phoenix keeps no Resource).
            assert stored["attributes"].get("tenant.id", want.tenant) == want.tenant

    home = {span.span_id: span.project for span in seen}
    ours = set(tenants_of_trace)
    projects_of_trace: dict[str, set[str]] = {}
    for project in phoenix_projects(phoenix.http_url):
        for stored in phoenix_project_spans(phoenix.http_url, project, limit=100_000):
            span_id, trace_id = stored["context"]["span_id"], stored["context"]["trace_id"]
            tenant = str(stored["attributes"].get("tenant.id", ""))
            if span_id in home or trace_id in ours or tenant.endswith(suffix):
                where = (project, stored["name"], tenant)
                assert home.get(span_id) == project, f"span elsewhere than sent: {where}"
                projects_of_trace.setdefault(trace_id, set()).add(project)
    assert set(projects_of_trace) == ours
    split = {trace: p for trace, p in projects_of_trace.items() if len(p) > 1}
    assert not split, f"trace ids in several projects: {split}"


def one(seen: Sequence[Seen], name: str, tenant: str | None = None) -> Seen:
    found = [s for s in seen if s.name == name and (tenant is None or s.tenant == tenant)]
    assert len(found) == 1, (name, tenant, [(s.name, s.tenant) for s in seen])
    return found[0]


def assert_new_trace_linked(child: Seen, parent: Seen) -> None:
    """``child`` is the root of a trace of its own, linked to ``parent`` across the boundary."""
    assert child.parent_id is None, f"{child.name} has a parent ({child.parent_id})"
    assert child.trace_id != parent.trace_id, f"{child.name} is in {parent.name}'s trace"
    assert child.linked_to(parent) == PARENT_LINK, (child.name, child.links)


# ---------------------------------------------------------------------- tests


def test_same_tenant_hop_between_two_processes_is_one_trace(
    phoenix: PhoenixServer, process_a: ProcessA, service_b: str
) -> None:
    acme = process_a.tenant("acme")
    with tenant_scope(acme):
        b_spans = call_b(process_a, f"{service_b}/same")
    a_spans = process_a.seen()
    checkout, call = one(a_spans, "a.checkout"), one(a_spans, "a.call")
    server, work, thread, task = b_spans

    assert process_a.answers[0]["tenant"] == acme
    assert {s.tenant for s in [*a_spans, *b_spans]} == {acme}
    assert {s.trace_id for s in [*a_spans, *b_spans]} == {checkout.trace_id}
    assert server.parent_id == call.span_id  # a child across the wire, not a link
    assert not server.links
    assert work.parent_id == server.span_id
    assert thread.parent_id == task.parent_id == work.span_id  # across a thread and a task
    assert_isolated_in_phoenix(phoenix, [*a_spans, *b_spans], process_a.suffix)


def test_default_tenant_root_with_tenant_work_below_it(
    phoenix: PhoenixServer, process_a: ProcessA
) -> None:
    acme, globex = process_a.tenant("acme"), process_a.tenant("globex")
    telemetry = process_a.manager
    with telemetry.span("request"):  # the default tenant
        with tenant_scope(acme), telemetry.span("acme.work"), telemetry.span("acme.step"):
            pass
        with (
            tenant_scope(globex),
            telemetry.span("globex.work"),
            trace_api.get_tracer("third.party").start_as_current_span("globex.query"),
        ):
            pass
        with telemetry.span("request.finish"):  # back in the default tenant's trace
            pass
    seen = process_a.seen()
    root, finish = one(seen, "request"), one(seen, "request.finish")
    acme_work, acme_step = one(seen, "acme.work"), one(seen, "acme.step")
    globex_work, globex_query = one(seen, "globex.work"), one(seen, "globex.query")

    assert (root.tenant, finish.tenant) == (process_a.default_tenant,) * 2
    assert (finish.trace_id, finish.parent_id) == (root.trace_id, root.span_id)
    assert_new_trace_linked(acme_work, root)
    assert_new_trace_linked(globex_work, root)
    assert acme_work.trace_id != globex_work.trace_id
    assert (acme_step.tenant, acme_step.trace_id) == (acme, acme_work.trace_id)
    assert acme_step.parent_id == acme_work.span_id
    assert (globex_query.tenant, globex_query.trace_id) == (globex, globex_work.trace_id)
    assert globex_query.parent_id == globex_work.span_id
    assert_isolated_in_phoenix(phoenix, seen, process_a.suffix)


@pytest.mark.parametrize("door", ["resolved", "gateway"])
def test_acme_calling_a_globex_service_starts_a_linked_trace_there(
    phoenix: PhoenixServer, process_a: ProcessA, service_b: str, door: str
) -> None:
    acme, globex = process_a.tenant("acme"), process_a.tenant("globex")
    header = "x-authenticated-tenant" if door == "resolved" else "x-gateway-tenant"
    with tenant_scope(acme):
        b_spans = call_b(process_a, f"{service_b}/{door}", {header: globex})
    a_spans = process_a.seen()
    checkout, call = one(a_spans, "a.checkout"), one(a_spans, "a.call")
    server, work, thread, task = b_spans

    assert process_a.answers[0]["tenant"] == globex
    assert {s.tenant for s in a_spans} == {acme}
    assert {s.trace_id for s in a_spans} == {checkout.trace_id}
    assert {s.tenant for s in b_spans} == {globex}
    assert_new_trace_linked(server, call)  # linked to A's CLIENT span
    assert {s.trace_id for s in b_spans} == {server.trace_id}
    assert work.parent_id == server.span_id
    assert thread.parent_id == task.parent_id == work.span_id  # across a thread and a task
    assert_isolated_in_phoenix(phoenix, [*a_spans, *b_spans], process_a.suffix)


def test_batch_consumer_over_three_tenants(phoenix: PhoenixServer, process_a: ProcessA) -> None:
    tenants = [process_a.tenant(name) for name in ("acme", "globex", "initech")]
    worker = process_a.tenant("worker")
    telemetry = process_a.manager
    wire: list[str] = []  # a broker stand-in: JSON text, as a queue would carry it
    for number, tenant in enumerate(tenants):
        with tenant_scope(tenant), telemetry.span("order.produce"):
            wire.append(json.dumps(propagate_context_to_dict({"order": number})))
    batch = [json.loads(text) for text in wire]
    with (
        tenant_scope(worker),
        batch_span(batch, system="rabbitmq", destination="orders"),
    ):
        for message in batch:
            with message_span(message, "order.process", trust=True), telemetry.span("order.charge"):
                pass
    seen = process_a.seen()
    batch_process = one(seen, "process orders")
    assert batch_process.tenant == worker
    assert batch_process.parent_id is None
    for tenant in tenants:
        produce = one(seen, "order.produce", tenant)
        process = one(seen, "order.process", tenant)
        charge = one(seen, "order.charge", tenant)
        assert batch_process.linked_to(produce) == {}  # the batch links every producer
        # Another tenant's message: it continues its (trusted) producer's trace, in
        # its tenant, and links to the worker's batch span instead of being its child.
        assert (process.trace_id, process.parent_id) == (produce.trace_id, produce.span_id)
        assert process.linked_to(batch_process) == {}
        assert (charge.trace_id, charge.parent_id) == (process.trace_id, process.span_id)
    assert len({s.trace_id for s in seen}) == 1 + len(tenants)
    assert_isolated_in_phoenix(phoenix, seen, process_a.suffix)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_decorated_generator_switching_tenants(
    phoenix: PhoenixServer, process_a: ProcessA, flavour: str
) -> None:
    acme, globex = process_a.tenant("acme"), process_a.tenant("globex")
    telemetry = process_a.manager

    @trace_function(name="results")
    def results() -> Iterator[int]:
        with tenant_scope(globex):
            for number in range(3):
                with telemetry.span("globex.item"):
                    yield number

    @trace_function(name="results")
    async def async_results() -> AsyncIterator[int]:
        async with tenant_scope(globex):
            for number in range(3):
                async with telemetry.span("globex.item"):
                    yield number

    with tenant_scope(acme), telemetry.span("acme.consume"):
        if flavour == "sync":
            for _ in results():
                with telemetry.span("acme.handle"):
                    pass
        else:

            async def consume() -> None:
                async for _ in async_results():
                    async with telemetry.span("acme.handle"):
                        pass

            asyncio.run(consume())
    seen = process_a.seen()
    consume_span, generator = one(seen, "acme.consume"), one(seen, "results")
    assert (generator.tenant, generator.trace_id) == (acme, consume_span.trace_id)
    assert generator.parent_id == consume_span.span_id
    handles = [s for s in seen if s.name == "acme.handle"]
    items = [s for s in seen if s.name == "globex.item"]
    assert len(handles) == len(items) == 3
    for handle in handles:  # the consumer's own work, never under the generator's spans
        assert (handle.tenant, handle.trace_id) == (acme, consume_span.trace_id)
        assert handle.parent_id == consume_span.span_id
    for item in items:
        assert item.tenant == globex
        assert_new_trace_linked(item, generator)
    assert_isolated_in_phoenix(phoenix, seen, process_a.suffix)


@pytest.mark.rabbitmq
@pytest.mark.redis
# Celery's Redis result backend calls a redis-py method deprecated since 2.6.12.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_a_celery_worker_serving_two_tenants(
    phoenix: PhoenixServer, process_a: ProcessA, request: pytest.FixtureRequest
) -> None:
    """Producer spans and the worker's task spans (tenantrace's Celery hooks, RabbitMQ
    broker, a threads pool of 4) land in each producer's tenant's project, one trace each."""
    from celery.contrib.testing.worker import start_worker
    from celery_worker_app import BROKERS, delete_queue, make_app

    from tenantrace.propagation.celery import instrument_celery, uninstrument_celery

    root = Path(__file__).parent.parent / "conftest.py"
    require = request.config.pluginmanager.get_plugin(str(root)).require_service
    require("RabbitMQ", "127.0.0.1", 5672)
    require("Redis", "127.0.0.1", 6379)  # the result backend
    queue = f"tenantrace-phoenix-{process_a.suffix}"
    app = make_app(BROKERS["rabbitmq"], queue)
    instrument_celery()
    try:
        with start_worker(
            app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING"
        ):
            results = []
            for name in ("acme", "globex", "acme", "globex"):
                with tenant_scope(process_a.tenant(name)), process_a.manager.span("enqueue"):
                    results.append((name, app.tasks["tt.whoami"].delay(name)))
            for name, result in results:
                assert result.get(timeout=30)["tenant"] == process_a.tenant(name)
            # The task span ends just after the result is stored: wait for all four.
            deadline = time.monotonic() + 30
            while sum(s.name == "tt.whoami process" for s in process_a.seen()) < 4:
                assert time.monotonic() < deadline, [s.name for s in process_a.seen()]
                time.sleep(0.05)
    finally:
        uninstrument_celery()
        delete_queue(app, queue)
    seen = process_a.seen()
    by_trace: dict[str, set[str]] = {}
    for span in seen:
        by_trace.setdefault(span.trace_id, set()).add(span.name)
    # Each message: enqueue > publish > process > work, in one trace of its tenant.
    assert sorted(map(sorted, by_trace.values())) == [
        sorted(["enqueue", "tt.whoami publish", "tt.whoami process", f"work {name}"])
        for name in sorted(["acme", "acme", "globex", "globex"])
    ]
    assert_isolated_in_phoenix(phoenix, seen, process_a.suffix)
