"""Whole-process CPU per exported span: tenantrace against raw OpenTelemetry, OTLP/gRPC.

Run: ``python benchmarks/bench_export.py`` (``--quick`` for a short run).

What is timed: ``time.process_time()`` of this process (every thread: the
caller's and the export thread, which holds the GIL while it encodes) over a
block of 20,000 spans created and flushed (every 4,000) to a real OTLP/gRPC receiver running in
ANOTHER process, whose CPU is not counted. Blocks of all cases are interleaved in
a fresh random order each round; each ratio is the median of per-round ratios
against raw OpenTelemetry in the same round (the SDK's ``BatchSpanProcessor`` and
``OTLPSpanExporter``, ``start_as_current_span``).

Cases: ``@trace_function`` and ``manager.span`` of one tenant; ``manager.span``
over 10,000 tenants round-robin through the default LRU of 100 providers; and
the same with ``tenant.id`` written on every span. Goals (issue 12): <= 0.5x raw
per span for the first two, 10,000 tenants <= 1.5x one tenant.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tenantrace import TelemetryConfig, TelemetryManager, trace_function
from tenantrace.instrumentation.config import BatchExportConfig
from tenantrace.instrumentation.manager import install_manager

QUEUE = 8192
RECEIVER = textwrap.dedent(
    """
    import sys
    from concurrent import futures
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(4), options=[
        ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    """
)


def _receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    return process, f"127.0.0.1:{port}"


def _manager(endpoint: str, **fields: Any) -> TelemetryManager:
    config = TelemetryConfig(
        otlp_endpoint=endpoint,
        batch_config=BatchExportConfig(max_queue_size=QUEUE),
        **fields,
    )
    return TelemetryManager(config)


def _cases(endpoint: str) -> dict[str, tuple[Callable[[int], None], Callable[[], object]]]:
    provider = TracerProvider(shutdown_on_exit=False)
    batch = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint, insecure=True), max_queue_size=QUEUE
    )
    provider.add_span_processor(batch)
    raw_tracer = provider.get_tracer("raw")

    def raw(n: int) -> None:
        for _ in range(n):
            with raw_tracer.start_as_current_span("work"):
                pass

    one = _manager(endpoint)
    install_manager(one)

    @trace_function(name="work")
    def decorated() -> None:
        return None

    def decorated_calls(n: int) -> None:
        for _ in range(n):
            decorated()

    def managed(n: int) -> None:
        for _ in range(n):
            with one.span("work", tenant_id="acme"):
                pass

    tenants = [f"t{i}" for i in range(10_000)]
    many = _manager(endpoint)
    named = (
        _manager(endpoint, tenant_id_on_every_span=True)
        if _has_field("tenant_id_on_every_span")
        else None
    )
    cursor = {"many": 0, "named": 0}

    def round_robin(manager: TelemetryManager, key: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            start = cursor[key]
            for i in range(start, start + n):
                with manager.span("work", tenant_id=tenants[i % len(tenants)]):
                    pass
            cursor[key] = start + n

        return run

    cases: dict[str, tuple[Callable[[int], None], Callable[[], object]]] = {
        "raw OpenTelemetry": (raw, batch.force_flush),
        "@trace_function": (decorated_calls, one.force_flush),
        "manager.span": (managed, one.force_flush),
        "manager.span, 10,000 tenants": (round_robin(many, "many"), many.force_flush),
    }
    if named is not None:
        cases["manager.span, 10,000 tenants, tenant.id"] = (
            round_robin(named, "named"),
            named.force_flush,
        )
    return cases


def _has_field(name: str) -> bool:
    return name in TelemetryConfig.__dataclass_fields__


CHUNK = 4000  # spans created before each flush: under QUEUE, so no case drops any


def _cpu_per_span_us(run: Callable[[int], None], flush: Callable[[], object], n: int) -> float:
    # A block is long enough to hold its case's share of the garbage collector's
    # full collections (about 0.15 s each in this process, with 20,000 tenants
    # cached): with short blocks, whichever case one lands in looks 2x slower.
    started = time.process_time()
    for _ in range(n // CHUNK):
        run(CHUNK)
        flush()
    return (time.process_time() - started) / (n // CHUNK * CHUNK) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rounds, block = (5, 8000) if args.quick else (15, 20_000)
    receiver, endpoint = _receiver()
    try:
        cases = _cases(endpoint)
        for run, flush in cases.values():  # warm: imports, caches, connections, 10k tenants
            run(10_000)
            flush()
        figures: dict[str, list[float]] = {name: [] for name in cases}
        ratios: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            order = list(cases)
            random.shuffle(order)
            this_round = {name: _cpu_per_span_us(*cases[name], block) for name in order}
            for name, value in this_round.items():
                figures[name].append(value)
                ratios[name].append(value / this_round["raw OpenTelemetry"])
        print(f"{'case':42} {'CPU per span':>13} {'vs raw':>8}")
        for name in cases:
            print(
                f"{name:42} {statistics.median(figures[name]):10.1f} us "
                f"{statistics.median(ratios[name]):7.2f}x"
            )
        # Paired, as the ratios to raw: the median of each round's ratio.
        many = statistics.median(
            m / o
            for m, o in zip(
                figures["manager.span, 10,000 tenants"], figures["manager.span"], strict=True
            )
        )
        print(f"10,000 tenants / one tenant: {many:.2f}x (goal <= 1.5x, median of rounds)")
        print("goal: @trace_function and manager.span <= 0.5x raw")
    finally:
        receiver.stdin.close()  # type: ignore[union-attr]
        receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
