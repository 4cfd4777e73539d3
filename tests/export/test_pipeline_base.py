"""The queue and thread both export pipelines share (``FairQueue``, ``BatchWorker``), through
each of its two users: the span pipeline (``ExportPipeline``) and the log pipeline
(``LogPipeline``). Bounded, fair per tenant, drained round-robin, flushed, shut down,
quiet after shutdown, counted; a failing or raising exporter costs only its batch.

Each test runs once per pipeline, through a small ``Harness`` that builds it over a
gated in-memory exporter and reads its counters under their own names.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from tenantrace import TelemetryConfig, TelemetryManager
from tenantrace.export._fair_queue import FairQueue
from tenantrace.export._worker import BatchWorker
from tenantrace.export.config import BatchExportConfig
from tenantrace.export.pipeline import ExportPipeline
from tenantrace.observe import LogEntry, LogPipeline

RESOURCE = Resource.create({"service.name": "base-test"})
COUNTERS = {
    "spans": ("spans_ended", "exported_spans", "dropped_spans"),
    "logs": ("records_emitted", "exported_records", "dropped_records"),
}
WAIT_S = 10.0


class Gate:
    """What both exporters share: the batches received (as tenant lists), an optional
    hold on the first call, and the outcome (succeed, fail, raise) of each call."""

    def __init__(self, *, hold: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.batches: list[list[str]] = []
        self.outcomes: list[str] = []  # consumed one per call: "ok", "fail", "raise"
        self.shutdowns = 0

    def call(self, tenants: list[str]) -> bool:
        self.entered.set()
        self.release.wait(WAIT_S)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "raise":
            raise RuntimeError("exporter bug")
        if outcome == "ok":
            self.batches.append(tenants)
        return outcome == "ok"

    def received(self) -> Counter[str]:
        return Counter(tenant for batch in self.batches for tenant in batch)


class GatedSpanExporter(SpanExporter):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self.gate.call([span.name for span in spans])  # the test names spans by tenant
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.gate.shutdowns += 1


class GatedLogExporter:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def export(self, batch: Sequence[tuple[Resource, LogEntry]]) -> bool:
        return self.gate.call([entry.tenant_id or "" for _, entry in batch])

    def shutdown(self) -> None:
        self.gate.shutdowns += 1


class Harness:
    """One pipeline under test, spoken to in the same words whatever it carries."""

    def __init__(self, kind: str, manager: TelemetryManager) -> None:
        self.kind = kind
        self.manager = manager
        self.pipeline: ExportPipeline | LogPipeline | None = None

    def build(self, gate: Gate, *, queue: int = 20, batch: int = 20, delay_ms: int = 10) -> Any:
        if self.kind == "spans":
            self.pipeline = ExportPipeline(
                GatedSpanExporter(gate),
                BatchExportConfig(
                    max_queue_size=queue,
                    max_export_batch_size=batch,
                    schedule_delay_millis=delay_ms,
                    log_dropped_spans=False,
                ),
            )
        else:
            self.pipeline = LogPipeline(
                GatedLogExporter(gate),
                manager=self.manager,
                max_queue_size=queue,
                max_export_batch_size=batch,
                schedule_delay_millis=delay_ms,
            )
        return self.pipeline

    def submit(self, tenant: str, count: int = 1) -> None:
        pipeline = self.pipeline
        for _ in range(count):
            if isinstance(pipeline, ExportPipeline):
                pipeline.submit(_span(tenant), tenant)
            else:
                assert pipeline is not None
                pipeline.submit(_entry(tenant))

    def counts(self) -> dict[str, Any]:
        """offered, exported, dropped, failures, dropped per tenant: the pipeline's own
        counters, under their own names."""
        assert self.pipeline is not None
        stats = self.pipeline.stats
        offered, exported, dropped = (getattr(stats, name) for name in COUNTERS[self.kind])
        return {
            "offered": offered,
            "exported": exported,
            "dropped": dropped,
            "failures": stats.export_failures,
            "by_tenant": dict(stats.dropped_by_tenant),
        }


def _span(tenant: str) -> ReadableSpan:
    now = time.time_ns()
    ids = random.getrandbits(64) | 1
    context = SpanContext(ids << 64 | ids, ids, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name=tenant, context=context, resource=RESOURCE, start_time=now, end_time=now + 1000
    )


def _entry(tenant: str) -> LogEntry:
    now = time.time_ns()
    return LogEntry(
        time_ns=now,
        observed_ns=now,
        levelno=20,
        level="INFO",
        body=f"a record of {tenant}",
        logger="base-test",
        attributes={},
        tenant_id=tenant,
        resource=RESOURCE,
    )


@pytest.fixture(scope="module")
def manager() -> Iterator[TelemetryManager]:
    made = TelemetryManager(TelemetryConfig(exporter_type="none", service_name="base-test"))
    yield made
    made.shutdown(timeout_millis=1000)


@pytest.fixture(params=["spans", "logs"])
def harness(request: pytest.FixtureRequest, manager: TelemetryManager) -> Iterator[Harness]:
    made = Harness(request.param, manager)
    yield made
    if made.pipeline is not None:
        made.pipeline.shutdown(timeout_millis=2000)


def _stall(harness: Harness, gate: Gate) -> None:
    """Make the export thread take one item and wait in the exporter: the queue is then
    the test's alone."""
    harness.submit("warm-up")
    assert gate.entered.wait(WAIT_S)
    assert harness.pipeline is not None and harness.pipeline.queued == 0


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# ----------------------------------------------------------------- the shared base


def test_both_pipelines_are_the_one_shared_model() -> None:
    assert issubclass(ExportPipeline, BatchWorker) and issubclass(LogPipeline, BatchWorker)
    assert issubclass(BatchWorker, FairQueue)
    for name in ("_take_batch", "_make_room", "_run", "drain", "shutdown", "_at_exit"):
        assert name not in vars(ExportPipeline) and name not in vars(LogPipeline), name
    # The hot path of a span is the queue's own submit: no extra call in between.
    assert ExportPipeline.submit is FairQueue.submit


def test_the_queue_is_bounded_and_a_noisy_tenant_loses_only_its_own(harness: Harness) -> None:
    gate = Gate(hold=True)
    pipeline = harness.build(gate)
    _stall(harness, gate)
    harness.submit("noisy", 100)
    harness.submit("quiet", 5)
    assert pipeline.queued == 20
    counts = harness.counts()
    assert counts["offered"] == 106
    # The quiet tenant's records displaced the noisy tenant's newest.
    assert counts["by_tenant"] == {"noisy": 85}
    gate.release.set()
    assert pipeline.force_flush(5000)
    assert gate.received() == {"warm-up": 1, "noisy": 15, "quiet": 5}
    counts = harness.counts()
    assert counts["offered"] == counts["exported"] + counts["dropped"] + pipeline.queued


def test_tenants_that_all_want_more_end_with_equal_shares(harness: Harness) -> None:
    gate = Gate(hold=True)
    pipeline = harness.build(gate)
    _stall(harness, gate)
    for _ in range(30):
        for tenant in ("a", "b", "c", "d"):
            harness.submit(tenant)
    assert pipeline.queued == 20
    assert harness.counts()["by_tenant"] == {"a": 25, "b": 25, "c": 25, "d": 25}
    gate.release.set()
    assert pipeline.force_flush(5000)
    assert gate.received() == {"warm-up": 1, "a": 5, "b": 5, "c": 5, "d": 5}


def test_a_batch_is_taken_round_robin_across_tenants(harness: Harness) -> None:
    gate = Gate(hold=True)
    pipeline = harness.build(gate, queue=40, batch=10, delay_ms=10_000)
    harness.submit("warm-up", 10)  # a full batch wakes the thread at once
    assert gate.entered.wait(WAIT_S)
    harness.submit("big", 30)
    harness.submit("small", 3)
    assert pipeline.queued == 33
    gate.release.set()
    assert pipeline.force_flush(5000)
    first_after = Counter(gate.batches[1])
    assert first_after == {"big": 7, "small": 3}  # not the 10 oldest, all "big"
    assert gate.received() == {"warm-up": 10, "big": 30, "small": 3}


def test_force_flush_waits_for_what_is_queued_and_honours_its_timeout(
    harness: Harness,
) -> None:
    gate = Gate(hold=True)
    pipeline = harness.build(gate, delay_ms=60_000)  # only a flush makes it export
    harness.submit("acme", 3)
    started = time.monotonic()
    assert pipeline.force_flush(200) is False  # the exporter holds: not done in time
    assert 0.15 <= time.monotonic() - started < 5
    gate.release.set()
    assert pipeline.force_flush(5000)
    assert gate.received() == {"acme": 3}
    assert pipeline.queued == 0


def test_shutdown_flushes_stops_the_thread_and_closes_the_exporter_once(
    harness: Harness,
) -> None:
    gate = Gate()
    pipeline = harness.build(gate, delay_ms=60_000)
    harness.submit("acme", 4)
    worker = pipeline._worker
    assert worker is not None and worker.is_alive()
    assert pipeline.shutdown(5000)
    assert gate.received() == {"acme": 4}
    assert not worker.is_alive()
    assert gate.shutdowns == 1
    assert pipeline.shutdown(5000)  # a second shutdown is a no-op
    assert gate.shutdowns == 1


def test_after_shutdown_submit_is_ignored_and_flush_returns_at_once(harness: Harness) -> None:
    gate = Gate()
    pipeline = harness.build(gate)
    assert pipeline.shutdown(5000)
    before = harness.counts()
    harness.submit("late", 5)
    assert pipeline.queued == 0
    assert harness.counts() == before  # not counted either: nothing was taken
    started = time.monotonic()
    assert pipeline.force_flush(5000)
    assert pipeline.drain(5000)
    assert time.monotonic() - started < 1
    assert gate.received() == {}


def test_a_failed_export_is_counted_per_tenant(harness: Harness) -> None:
    gate = Gate()
    gate.outcomes = ["fail"]
    pipeline = harness.build(gate, delay_ms=60_000)
    harness.submit("acme", 2)
    harness.submit("globex")
    flushed = pipeline.force_flush(5000)
    # The span pipeline's force_flush reports a lost request; the log pipeline's says
    # only that the queue was drained (its losses are in the counters).
    assert flushed is (harness.kind == "logs")
    counts = harness.counts()
    assert counts["failures"] == 1
    assert counts["by_tenant"] == {"acme": 2, "globex": 1}
    harness.submit("acme")
    assert pipeline.force_flush(5000)  # the next request went through
    assert gate.received() == {"acme": 1}


def test_an_exporter_that_raises_never_kills_the_thread(harness: Harness) -> None:
    gate = Gate()
    gate.outcomes = ["raise"]
    pipeline = harness.build(gate, delay_ms=60_000)
    harness.submit("acme")
    pipeline.force_flush(5000)
    assert pipeline.worker_alive
    harness.submit("globex")
    assert pipeline.force_flush(5000)
    assert gate.received() == {"globex": 1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_a_fresh_queue_with_its_own_thread(harness: Harness) -> None:
    gate = Gate()
    pipeline = harness.build(gate, delay_ms=60_000)
    harness.submit("parent", 2)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's teardown
        code = 1
        try:
            fresh = pipeline.queued == 0 and harness.counts()["offered"] == 0
            harness.submit("child", 3)
            flushed = pipeline.force_flush(5000)
            received = gate.received()
            ok = fresh and flushed and received["child"] == 3 and "parent" not in received
            os.write(write_end, b"ok" if ok else repr((fresh, flushed, received)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        said = report.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said == b"ok"
    assert pipeline.force_flush(5000)  # the parent's queue and thread are as they were
    assert gate.received() == {"parent": 2}


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from tenantrace import TelemetryConfig, TelemetryManager
    from tenantrace.export.config import BatchExportConfig
    from tenantrace.export.pipeline import ExportPipeline
    from tenantrace.observe import LogEntry, LogPipeline

    class Printed(SpanExporter):
        def export(self, batch):
            print("exported", len(batch), flush=True)
            return SpanExportResult.SUCCESS if sys.argv[1] == "spans" else True

        def shutdown(self):
            print("closed", flush=True)

    resource = Resource.create({})
    if sys.argv[1] == "spans":
        config = BatchExportConfig(schedule_delay_millis=60_000)
        pipeline = ExportPipeline(Printed(), config)
        for _ in range(3):
            pipeline.submit(ReadableSpan(name="s", resource=resource), "acme")
    else:
        manager = TelemetryManager(TelemetryConfig(exporter_type="none"))
        pipeline = LogPipeline(Printed(), manager=manager, schedule_delay_millis=60_000)
        for _ in range(3):
            now = time.time_ns()
            pipeline.submit(LogEntry(now, now, 20, "INFO", "r", "l", {}, "acme", resource=resource))
    print("queued", pipeline.queued, flush=True)
    """
)


def test_what_is_queued_at_interpreter_exit_is_flushed(harness: Harness) -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, harness.kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["queued 3", "exported 3", "closed"]
