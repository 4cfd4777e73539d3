"""Fork after initialisation (the gunicorn / uvicorn ``--workers`` model).

The forked child exports its own spans over real OTLP to a collector on
loopback, under its own ``service.instance.id``; nothing deadlocks even when the
fork happens while tenantrace's locks are held or an export is in flight; spans
queued in the parent at fork time are exported once, by the parent only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack

import pytest
from reliability_fakes import ManagerFactory, OtlpGrpcCollector, OtlpHttpCollector

from tenantrace import TelemetryConfig, TelemetryManager

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PROTOCOLS = ["http/protobuf", "grpc"]
CHILD_TIMEOUT_S = 30.0


def _collector(protocol: str) -> OtlpHttpCollector | OtlpGrpcCollector:
    return (OtlpHttpCollector() if protocol == "http/protobuf" else OtlpGrpcCollector()).start()


def _fork(child: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Run ``child`` in a forked process; return what it reported (fails if it hangs)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_fd)
            report = child()
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        except BaseException as exc:
            os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
        finally:
            os.close(write_fd)
            sys.stdout.flush()
            os._exit(code)
    os.close(write_fd)
    status: list[int] = []
    waiter = threading.Thread(target=lambda: status.append(os.waitpid(pid, 0)[1]), daemon=True)
    waiter.start()
    waiter.join(CHILD_TIMEOUT_S)
    if waiter.is_alive():
        os.kill(pid, signal.SIGKILL)
        waiter.join(5)
        os.close(read_fd)
        pytest.fail(f"the forked child hung for {CHILD_TIMEOUT_S}s (deadlock)")
    with os.fdopen(read_fd, "rb") as pipe:
        report: dict[str, object] = json.loads(pipe.read() or b"{}")
    assert status == [0], report
    return report


def _child_work(manager: TelemetryManager) -> dict[str, object]:
    for i in range(20):
        with manager.span(
            "child-work", tenant_id=f"tenant-{i % 2}", attributes={"pid": os.getpid()}
        ):
            pass
    flushed = manager.force_flush(10_000)
    stats = manager.get_stats()
    manager.shutdown(2000)
    return {"flushed": flushed, "exported": stats["exported_spans"], "pid": os.getpid()}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forked_worker_exports_its_own_spans_under_its_own_instance_id(
    protocol: str, otlp_manager: ManagerFactory
) -> None:
    collector = _collector(protocol)
    try:
        # A long schedule delay keeps "queued-at-fork" in the parent's queue at fork time.
        manager = otlp_manager(collector.endpoint, protocol, timeout_ms=5000, delay_ms=60_000)
        for i in range(10):
            with manager.span("parent-before", tenant_id="tenant-0", attributes={"i": i}):
                pass
        assert manager.force_flush(5000)
        assert len(collector.wait_for(10)) == 10
        for _ in range(5):
            with manager.span("queued-at-fork", tenant_id="tenant-1"):
                pass

        report = _fork(lambda: _child_work(manager))

        assert report["flushed"] is True
        assert report["exported"] == 20
        with manager.span("parent-after", tenant_id="tenant-0"):
            pass
        assert manager.force_flush(5000)
        received = collector.wait_for(10 + 5 + 20 + 1)
    finally:
        collector.stop()

    by_name: dict[str, list[str | None]] = {}
    for span in received:
        by_name.setdefault(span.name, []).append(span.instance_id)
    assert {name: len(ids) for name, ids in by_name.items()} == {
        "parent-before": 10,
        "queued-at-fork": 5,  # exported once, by the parent, not again by the child
        "child-work": 20,
        "parent-after": 1,
    }
    parent_ids = set(by_name["parent-before"] + by_name["queued-at-fork"] + by_name["parent-after"])
    child_ids = set(by_name["child-work"])
    assert len(parent_ids) == 1 and len(child_ids) == 1
    assert parent_ids.isdisjoint(child_ids)
    child_spans = [s for s in received if s.name == "child-work"]
    assert {s.attributes["pid"] for s in child_spans} == {report["pid"]}
    assert all(s.project == TelemetryConfig().get_project_name(s.tenant) for s in received)


def test_fork_while_every_tenantrace_lock_is_held_does_not_deadlock(
    otlp_manager: ManagerFactory, http_collector: OtlpHttpCollector
) -> None:
    """Another thread holds the pipeline, registry and stats locks at the moment of fork."""
    manager = otlp_manager(http_collector.endpoint, timeout_ms=5000, delay_ms=10)
    with manager.span("warm", tenant_id="tenant-0"):
        pass
    assert manager.force_flush(5000)
    pipeline = manager._pipeline
    registry = manager._registry
    assert pipeline is not None and registry is not None
    holding, release = threading.Event(), threading.Event()

    def hold_locks() -> None:
        with ExitStack() as stack:
            for lock in (pipeline._lock, registry._lock, manager._stats_lock):
                stack.enter_context(lock)
            holding.set()
            release.wait(CHILD_TIMEOUT_S)

    holder = threading.Thread(target=hold_locks)
    holder.start()
    assert holding.wait(5)
    try:
        report = _fork(lambda: _child_work(manager))
    finally:
        release.set()
        holder.join(5)
    assert report["flushed"] is True
    assert report["exported"] == 20
    assert len([s for s in http_collector.wait_for(21) if s.name == "child-work"]) == 20


def test_fork_while_an_export_is_in_flight(
    otlp_manager: ManagerFactory, http_collector: OtlpHttpCollector
) -> None:
    """The parent's export thread is blocked inside a slow export when the worker forks."""
    http_collector.mode = "slow"
    manager = otlp_manager(http_collector.endpoint, timeout_ms=10_000, delay_ms=10)
    with manager.span("in-flight", tenant_id="tenant-0"):
        pass
    manager.force_flush(0)  # wake the export thread; it now waits on the collector
    for _ in range(200):
        if http_collector.attempts:
            break
        manager.force_flush(50)
    assert http_collector.attempts == 1
    http_collector.mode = "ok"  # the child's requests are answered; the parent's stays held
    try:
        report = _fork(lambda: _child_work(manager))
    finally:
        http_collector.release.set()
    assert report["flushed"] is True
    assert manager.force_flush(5000)
    names = sorted(s.name for s in http_collector.wait_for(21))
    assert names == ["child-work"] * 20 + ["in-flight"]
