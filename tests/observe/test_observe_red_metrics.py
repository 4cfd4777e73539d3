"""RED metrics per tenant: a real Prometheus scrapes the endpoint and answers PromQL, the
OTLP path reaches a real OTLP/gRPC MetricsService receiver, 10,000 tenants stay bounded.

The Prometheus server is Debian's ``prometheus`` package, started by the test on
free loopback ports with a 1 s scrape interval. With CI=true a missing
``prometheus`` binary or Python package fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from observe_helpers import IN_CI, require_module
from observe_receivers import MetricsReceiver, attributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.observe import RedMetrics


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.threads: set[int] = set()

    def export(self, spans: Any) -> SpanExportResult:
        self.threads.add(threading.get_ident())
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _manager(red: RedMetrics, *, sync: bool = False) -> tuple[TelemetryManager, _Keep]:
    keep = _Keep()
    config = TelemetryConfig(
        exporter_type="none",
        batch_config=BatchExportConfig(
            use_sync_export=sync, schedule_delay_millis=50, max_queue_size=20_000
        ),
    )
    return TelemetryManager(config, exporter=keep, metrics=red), keep


def _workload(manager: TelemetryManager) -> None:
    """acme: 10 checkouts (2 fail) + 5 lookups; globex: 4 checkouts (1 fails)."""
    for tenant, count, failing in (("acme", 10, 2), ("globex", 4, 1)):
        for index in range(count):
            try:
                with manager.span("checkout", tenant_id=tenant, kind=SpanKind.SERVER):
                    if index < failing:
                        raise ValueError("declined")
            except ValueError:
                pass
    for _ in range(5):
        with manager.span("lookup", tenant_id="acme", kind=SpanKind.CLIENT):
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


class Prometheus:
    """A real Prometheus server on loopback scraping ``target`` every second."""

    def __init__(self, binary: str, target: str, directory: Path) -> None:
        self.port = _free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: tenantrace\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log = (directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"prometheus did not start: {(directory / 'prometheus.log').read_text()}"
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def query(self, promql: str) -> dict[str, float]:
        """An instant query: {tenant_id (or the first label): value}."""
        address = self.url("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(address, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        found: dict[str, float] = {}
        for sample in answer["data"]["result"]:
            labels = sample["metric"]
            found[labels.get("tenant_id", json.dumps(labels))] = float(sample["value"][1])
        return found

    def wait_for(self, promql: str, expected: dict[str, float], timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = self.query(promql)
            if seen == pytest.approx(expected):
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql}: expected {expected}, Prometheus answered {seen}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if binary is None:
        message = "the prometheus server is not installed (Debian package 'prometheus')"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture
def red() -> Iterator[RedMetrics]:
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus")
    made = RedMetrics(prometheus_port=0, max_tenants=10, max_operations=10)
    yield made
    made.shutdown()


def test_prometheus_scrapes_per_tenant_counts_and_error_rates(
    red: RedMetrics, prometheus_binary: str, tmp_path: Path
) -> None:
    manager, keep = _manager(red)
    server = Prometheus(prometheus_binary, f"127.0.0.1:{red.prometheus_port}", tmp_path)
    try:
        _workload(manager)
        assert manager.force_flush(5000)
        server.wait_for("sum by (tenant_id) (tenantrace_requests_total)", {"acme": 15, "globex": 4})
        server.wait_for(
            'sum by (tenant_id) (tenantrace_requests_total{span_kind="server"})',
            {"acme": 10, "globex": 4},
        )
        server.wait_for("sum by (tenant_id) (tenantrace_errors_total)", {"acme": 2, "globex": 1})
        server.wait_for(
            'sum by (tenant_id) (tenantrace_errors_total{operation="checkout"})'
            ' / sum by (tenant_id) (tenantrace_requests_total{operation="checkout"})',
            {"acme": 0.2, "globex": 0.25},
        )
        server.wait_for(
            "sum by (tenant_id) (tenantrace_request_duration_seconds_count)",
            {"acme": 15, "globex": 4},
        )
        server.wait_for(
            'sum by (tenant_id) (tenantrace_request_duration_seconds_bucket{le="+Inf"})',
            {"acme": 15, "globex": 4},
        )
    finally:
        server.stop()
        manager.shutdown(timeout_millis=2000)
    assert len(keep.spans) == 19  # every span still exported
    assert threading.get_ident() not in keep.threads  # counted on the export thread


def test_otlp_metrics_reach_a_real_receiver() -> None:
    receiver = MetricsReceiver()
    red = RedMetrics(otlp_endpoint=receiver.endpoint, export_interval_millis=200)
    manager, _ = _manager(red)
    try:
        _workload(manager)
        assert manager.force_flush(5000)
        red.force_flush(5000)
        totals: dict[tuple[str, str, str], float] = {}

        def arrived() -> bool:
            totals.clear()
            request = receiver.requests[-1] if receiver.requests else None
            if request is None:
                return False
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        if not metric.HasField("sum"):
                            continue
                        for point in metric.sum.data_points:
                            labels = attributes(point.attributes)
                            key = (metric.name, labels["tenant_id"], labels["span_kind"])
                            totals[key] = totals.get(key, 0) + point.as_int
            return totals.get(("tenantrace.requests", "acme", "server")) == 10

        assert receiver.wait_for(arrived)
        assert totals[("tenantrace.requests", "globex", "server")] == 4
        assert totals[("tenantrace.requests", "acme", "client")] == 5
        assert totals[("tenantrace.errors", "acme", "server")] == 2
        assert totals[("tenantrace.errors", "globex", "server")] == 1
    finally:
        manager.shutdown(timeout_millis=2000)
        red.shutdown()
        receiver.stop()


def test_ten_thousand_tenants_keep_the_series_bounded() -> None:
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus")
    red = RedMetrics(prometheus_port=0, max_tenants=50, max_operations=5)
    manager, _ = _manager(red)
    try:
        for index in range(10_000):
            with manager.span(f"op-{index % 8}", tenant_id=f"tenant-{index}"):
                pass
        assert manager.force_flush(30_000)
        text = _scrape(red.prometheus_port or 0)
    finally:
        manager.shutdown(timeout_millis=2000)
        red.shutdown()
    series = [line for line in text.splitlines() if line.startswith("tenantrace_requests_total{")]
    tenants = {line.split('tenant_id="')[1].split('"')[0] for line in series}
    operations = {line.split('operation="')[1].split('"')[0] for line in series}
    total = sum(float(line.rsplit(" ", 1)[1]) for line in series)
    assert total == 10_000  # nothing lost to folding
    assert len(tenants) == 51  # 50 tenants and "other"
    assert "other" in tenants
    assert len(operations) <= 6  # 5 operations and "other"
    assert len(series) <= 51 * 6  # measured: the series of one instrument
    assert red.tenants.folded == 10_000 - 50
    print(f"10,000 tenants: {len(series)} request series ({len(tenants)} tenant values)")


class _RaisesOn(_Keep):
    """Raises on any request holding the span named ``bad``: the pipeline halves the
    request and sends the halves again (export/_delivery.py's isolation)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.calls += 1
        if any(span.name == "bad" for span in spans):
            raise RuntimeError("not this one")
        return super().export(spans)


def test_a_request_sent_again_after_a_failure_is_counted_once() -> None:
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus")
    red = RedMetrics(prometheus_port=0)
    exporter = _RaisesOn()
    config = TelemetryConfig(
        exporter_type="none",
        batch_config=BatchExportConfig(max_export_batch_size=16),
    )
    manager = TelemetryManager(config, exporter=exporter, metrics=red)
    try:
        for name in ["ok"] * 7 + ["bad"] + ["ok"] * 8:
            with manager.span(name, tenant_id="acme"):
                pass
        manager.force_flush(5000)
        text = _scrape(red.prometheus_port or 0)
    finally:
        manager.shutdown(timeout_millis=2000)
        red.shutdown()
    assert len(exporter.spans) == 15  # the bad span alone was dropped
    assert exporter.calls > 2  # the request was halved and sent again
    counts = {
        line.split('operation="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tenantrace_requests_total{")
    }
    assert counts == {"ok": 15.0, "bad": 1.0}  # every request once, the bad one too


def test_force_flush_before_a_scrape_does_not_repeat_series() -> None:
    """The SDK's Prometheus reader queues a collection per flush, served at the next
    scrape: flushing it would repeat every series in the exposition."""
    require_module("opentelemetry.exporter.prometheus", "opentelemetry-exporter-prometheus")
    red = RedMetrics(prometheus_port=0)
    manager, _ = _manager(red, sync=True)
    try:
        with manager.span("once", tenant_id="acme"):
            pass
        assert manager.force_flush(5000)
        assert red.force_flush()
        text = _scrape(red.prometheus_port or 0)
    finally:
        manager.shutdown(timeout_millis=2000)
        red.shutdown()
    lines = [line for line in text.splitlines() if line.startswith("tenantrace_requests_total{")]
    assert len(lines) == 1
    assert lines[0].endswith(" 1.0")


class _Recorder:
    """A ``metrics=`` object: what it observed, and when it was flushed."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.timeouts: list[int] = []

    def observe_batch(self, spans: Any) -> None:
        self.events += [span.name for span in spans]

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        self.events.append("flush")
        self.timeouts.append(timeout_millis)
        return True


def test_shutdown_pushes_the_metrics_of_the_spans_it_drained() -> None:
    recorder = _Recorder()
    config = TelemetryConfig(
        exporter_type="none", batch_config=BatchExportConfig(schedule_delay_millis=60_000)
    )
    manager = TelemetryManager(config, exporter=_Keep(), metrics=recorder)
    for name in ("a", "b"):
        with manager.span(name, tenant_id="acme"):
            pass
    assert manager.force_flush(timeout_millis=4000)
    assert recorder.events == ["a", "b", "flush"]
    assert 0 < recorder.timeouts[0] <= 4000  # what was left of the caller's timeout
    with manager.span("c", tenant_id="acme"):
        pass
    assert manager.shutdown(timeout_millis=5000)  # drains "c", then pushes its points
    assert recorder.events == ["a", "b", "flush", "c", "flush"]


def test_metrics_without_observe_batch_are_refused_at_once() -> None:
    with pytest.raises(TypeError, match="observe_batch"):
        TelemetryManager(TelemetryConfig(exporter_type="none"), metrics=object())  # type: ignore[arg-type]
