"""Cost of a decorated call while the collector is healthy, dead, black-holed, failing or slow.

Run: ``python benchmarks/bench_faults.py`` (``--quick`` for a short run,
``--protocol grpc|http/protobuf|both``).

Each collector runs in its own process (so its work does not share our GIL):
the OTLP receivers of ``tests/reliability/reliability_fakes.py`` answering
``ok``, ``503`` / ``UNAVAILABLE``, or slowly (0.5 s per request); a socket that
accepts and never answers (black-holed); a closed port (refused). For each, the
per-call cost of ``@trace_function`` on the caller's thread is measured with
the default batch settings (queue 2048, batch 512, schedule 500 ms, export
timeout 2 s), then how long ``force_flush(500)`` and ``shutdown(1000)`` take.
For reference, raw OpenTelemetry (``BatchSpanProcessor`` and the same OTLP
exporter) feeds the healthy collector in the same way; its "dropped" column is
what never arrived (the SDK does not count it).
The goal (issue 6): a dead collector costs the caller a small factor of the
healthy case, and flush/shutdown honour their timeouts.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
import timeit
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from reliability_fakes import (
    BlackHole,
    OtlpGrpcCollector,
    OtlpHttpCollector,
    closed_port,
)

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import trace_function

EXPORT_TIMEOUT_MS = 2000


def _serve(kind: str, protocol: str, conn: Connection) -> None:
    """Child process: run one collector until the parent says stop."""
    if kind == "black-holed":
        hole = BlackHole()
        conn.send(hole.port)
        conn.recv()
        hole.stop()
        return
    collector = (
        OtlpHttpCollector() if protocol == "http/protobuf" else OtlpGrpcCollector()
    ).start()
    collector.mode = {"healthy": "ok", "unavailable": "unavailable", "slow": "slow"}[kind]
    collector.hold_s = 0.5
    conn.send(collector.port)
    while conn.recv() == "count":  # how many spans arrived so far; anything else stops
        conn.send(len(collector.spans()))
    collector.stop()


@dataclass
class Result:
    scenario: str
    per_call_us: float
    exported: int
    dropped: int
    flush_s: float
    shutdown_s: float


def _endpoint(protocol: str, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return base + "/v1/traces" if protocol == "http/protobuf" else base


def _measure(
    scenario: str, exporter: str, endpoint: str, *, protocol: str, number: int, repeat: int
) -> Result:
    manager = TelemetryManager(
        TelemetryConfig(
            exporter_type=exporter,  # type: ignore[arg-type]
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,  # type: ignore[arg-type]
            batch_config=BatchExportConfig(export_timeout_millis=EXPORT_TIMEOUT_MS),
        )
    )
    previous = install_manager(manager)

    @trace_function
    def handle(order: int) -> int:
        return order + 1

    def calls() -> None:
        for i in range(number):
            handle(i)

    try:
        with tenant_scope("acme"):
            calls()  # warm-up: providers cached; a dead collector's queue already full
            runs = timeit.repeat(calls, number=1, repeat=repeat)
        per_call = statistics.median(runs) / number * 1e6
        started = time.monotonic()
        manager.force_flush(timeout_millis=500)
        flush_s = time.monotonic() - started
        stats = manager.get_stats()
        started = time.monotonic()
        manager.shutdown(timeout_millis=1000)
        shutdown_s = time.monotonic() - started
    finally:
        install_manager(previous)
    return Result(
        scenario, per_call, stats["exported_spans"], stats["dropped_spans"], flush_s, shutdown_s
    )


def _measure_raw_otel(endpoint: str, protocol: str, number: int, repeat: int) -> float:
    """Raw OpenTelemetry: one TracerProvider, BatchSpanProcessor, the same OTLP exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tenantrace.instrumentation.exporters import build_exporter

    config = TelemetryConfig(
        otlp_endpoint=endpoint,
        otlp_protocol=protocol,  # type: ignore[arg-type]
        batch_config=BatchExportConfig(export_timeout_millis=EXPORT_TIMEOUT_MS),
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(build_exporter(config)))
    tracer = provider.get_tracer("bench")

    def calls() -> None:
        for i in range(number):
            with tracer.start_as_current_span("handle", attributes={"tenant.id": "acme"}):
                i + 1

    calls()
    runs = timeit.repeat(calls, number=1, repeat=repeat)
    provider.force_flush(10_000)
    provider.shutdown()
    return statistics.median(runs) / number * 1e6


def _run_protocol(protocol: str, number: int, repeat: int) -> list[Result]:
    measure = partial(_measure, protocol=protocol, number=number, repeat=repeat)
    results = [measure("no exporter (none)", "none", "")]
    context = multiprocessing.get_context("spawn")
    for kind in ("healthy", "refused", "black-holed", "unavailable", "slow"):
        if kind == "refused":
            results.append(measure(kind, "otlp", _endpoint(protocol, closed_port())))
            continue
        parent, child = context.Pipe()
        server = context.Process(target=_serve, args=(kind, protocol, child), daemon=True)
        server.start()
        port = parent.recv()
        try:
            label = {"unavailable": "503" if protocol == "http/protobuf" else "UNAVAILABLE"}.get(
                kind, kind
            )
            results.append(measure(label, "otlp", _endpoint(protocol, port)))
            if kind == "healthy":  # the same collector, fed by raw OpenTelemetry
                parent.send("count")
                before = parent.recv()
                raw_us = _measure_raw_otel(_endpoint(protocol, port), protocol, number, repeat)
                parent.send("count")
                delivered = parent.recv() - before
                sent = number * (repeat + 1)
                results.append(
                    Result("raw OTel (healthy)", raw_us, delivered, sent - delivered, 0.0, 0.0)
                )
        finally:
            parent.send("stop")
            server.join(10)
            if server.is_alive():
                server.kill()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--protocol", choices=["grpc", "http/protobuf", "both"], default="both")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (10_000, 5)
    protocols = ["http/protobuf", "grpc"] if args.protocol == "both" else [args.protocol]
    for protocol in protocols:
        results = _run_protocol(protocol, number, repeat)
        healthy = next(r.per_call_us for r in results if r.scenario == "healthy")
        print(f"\nOTLP {protocol}: {number} decorated calls x {repeat} runs, median per call")
        print(
            f"{'collector':<20}{'us/call':>9}{'x healthy':>11}{'exported':>10}{'dropped':>9}"
            f"{'flush(500ms)':>14}{'shutdown(1s)':>14}"
        )
        for r in results:
            print(
                f"{r.scenario:<20}{r.per_call_us:>9.2f}{r.per_call_us / healthy:>10.2f}x"
                f"{r.exported:>10}{r.dropped:>9}{r.flush_s:>13.2f}s{r.shutdown_s:>13.2f}s"
            )


if __name__ == "__main__":
    main()
