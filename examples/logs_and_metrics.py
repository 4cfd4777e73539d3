"""Logs and metrics per tenant: correlated log lines, logs to the tenant's project, RED metrics.

Runs by itself, in about a second, with nothing listening: the log records go
to an in-memory exporter (``enable_log_export(exporter=...)``; give it no
exporter to send OTLP/gRPC to the manager's endpoint) and the metrics to a
Prometheus endpoint on a free loopback port, scraped once here.

    python examples/logs_and_metrics.py
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tenantrace import (
    BatchExportConfig,
    LogEntry,
    TelemetryConfig,
    TelemetryManager,
    correlate_logs,
    disable_log_export,
    enable_log_export,
)


class PrintedLogs:
    """A log exporter that prints what would be sent, per tenant's project."""

    def export(self, batch: Sequence[tuple[Resource, LogEntry]]) -> bool:
        for resource, entry in batch:
            project = resource.attributes.get("openinference.project.name")
            print(f"  -> {project}: {entry.level} {entry.body!r} trace={entry.trace_id:032x}")
        return True

    def shutdown(self) -> None:
        return None


class NoSpans(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    # 1. Log correlation: every record knows its trace, span, tenant and project.
    correlate_logs()
    logging.basicConfig(
        level=logging.INFO,
        format="%(levelname)s [tenant=%(tenant_id)s trace=%(trace_id)s "
        "project=%(project_name)s] %(message)s",
    )
    log = logging.getLogger("shop")

    # 3. RED metrics, computed on the export thread from every exported span.
    red = None
    try:
        from tenantrace import RedMetrics

        red = RedMetrics(prometheus_port=0, max_tenants=100, max_operations=20)
    except ImportError as exc:  # opentelemetry-exporter-prometheus is optional
        print(f"(RED metrics skipped: {exc})")
    config = TelemetryConfig(
        service_name="shop",
        exporter_type="none",
        batch_config=BatchExportConfig(schedule_delay_millis=50),
    )
    manager = TelemetryManager(config, exporter=NoSpans(), metrics=red)

    # 2. Log records to the tenant's project (here printed instead of sent).
    handler = enable_log_export(manager, exporter=PrintedLogs(), logger=log)

    log.info("starting (no span: empty correlation fields)")
    for tenant in ("acme", "globex"):
        with manager.span("checkout", tenant_id=tenant):
            log.info("order placed password=%s", "hunter2")  # scrubbed before export
    try:
        with manager.span("checkout", tenant_id="acme"):
            raise ValueError("card declined")
    except ValueError:
        log.warning("a checkout failed")

    manager.force_flush(5000)
    disable_log_export(handler, log)
    if red is not None:
        with urllib.request.urlopen(f"http://127.0.0.1:{red.prometheus_port}/metrics") as page:
            text = page.read().decode()
        print("Prometheus endpoint:")
        for line in text.splitlines():
            if line.startswith(("tenantrace_requests_total{", "tenantrace_errors_total{")):
                print("  " + line.replace(',otel_scope_name="tenantrace.observe.metrics"', ""))
        red.shutdown()
    manager.shutdown(timeout_millis=2000)


if __name__ == "__main__":
    main()
