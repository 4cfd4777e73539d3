"""Cost per span of tenantrace against raw OpenTelemetry, measured in the same run.

Run: ``python benchmarks/bench_spans.py`` (``--quick`` for a short run,
``--exporter otlp`` to encode every span to OTLP protobuf on both sides, as the
OTLP exporters do, instead of handing it to a null exporter).

What is timed: a block of calls, then a flush of both export pipelines, so a
block pays for its spans' export work too (the export thread holds the GIL
while it runs). Blocks of all cases are interleaved in a fresh random order
each round; each ratio is the median of the per-round ratios, which cancels the
drift of a shared machine (absolute figures move by +-30 % from one minute to
the next). As in ``timeit``, the cyclic garbage collector is off while a block
runs (a collection would land on whichever block happens to run): no case
leaves cyclic garbage, which the run checks and prints.

Raw OpenTelemetry runs twice: on the SDK's ``BatchSpanProcessor``, and as a
raw SDK tracer of the tenant's provider, i.e. on tenantrace's own span
processor and pipeline. Against the second, a ratio is the cost of tenantrace's
API (tenant resolution, routing, the span scope); against the first, of that
plus the pipeline's work per span (tenant-fair queue, secret scrubbing, request
sizing). Goals (issue 2, DESIGN.md): ``manager.span`` <= 1.10x raw on the same
processor; ``@trace_function`` <= 1.10x raw on a batch processor; a level-gated
or disabled ``@trace_function`` <= 0.3 us above a bare call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
import timeit
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AttributeValue

from tenantrace import (
    BatchExportConfig,
    TelemetryConfig,
    TelemetryLevel,
    TelemetryManager,
    init_telemetry,
    tenant_scope,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import trace_function


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class EncodingExporter(NullExporter):
    """What an OTLP exporter does before the network: encode and serialize the batch."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


QUEUE = 1 << 20  # large enough that neither side drops during a run

SyncCase = Callable[[], object]
AsyncCase = Callable[[], Coroutine[Any, Any, object]]


def interleaved(
    cases: dict[str, SyncCase], flush: Callable[[], object], number: int, rounds: int
) -> dict[str, list[float]]:
    """Per round and case: us per call of a block of ``number`` calls plus the flush."""
    results: dict[str, list[float]] = {label: [] for label in cases}
    order = list(cases)
    for label in order:  # warm up: providers, tracers, code paths
        for _ in range(100):
            cases[label]()
    flush()
    for _ in range(rounds):
        random.shuffle(order)
        for label in order:
            case = cases[label]
            with collector_paused(label):
                start = time.perf_counter()
                for _ in range(number):
                    case()
                flush()
                results[label].append((time.perf_counter() - start) / number * 1e6)
    return results


CYCLIC_GARBAGE: dict[str, int] = {}


@contextmanager
def collector_paused(label: str) -> Iterator[None]:
    """Run a block with the cyclic GC off; count what it left for the collector."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        CYCLIC_GARBAGE[label] = CYCLIC_GARBAGE.get(label, 0) + gc.collect()
        gc.enable()


def interleaved_async(
    cases: dict[str, AsyncCase], flush: Callable[[], object], number: int, rounds: int
) -> dict[str, list[float]]:
    async def run() -> dict[str, list[float]]:
        results: dict[str, list[float]] = {label: [] for label in cases}
        order = list(cases)
        for label in order:  # warm up
            for _ in range(100):
                await cases[label]()
        flush()
        for _ in range(rounds):
            random.shuffle(order)
            for label in order:
                make = cases[label]
                with collector_paused(label):
                    start = time.perf_counter()
                    for _ in range(number):
                        await make()
                    flush()
                    results[label].append((time.perf_counter() - start) / number * 1e6)
        return results

    return asyncio.run(run())


def best_us(func: SyncCase, number: int, repeat: int) -> float:
    """For calls too cheap to export anything: the best of a few timeit runs."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def ratio(results: dict[str, list[float]], ours: str, theirs: str) -> float:
    return statistics.median(a / b for a, b in zip(results[ours], results[theirs], strict=True))


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--exporter", choices=("null", "otlp"), default="null")
    args = parser.parse_args()
    rounds = args.rounds or (6 if args.quick else 30)
    number = 5000

    def make_exporter() -> SpanExporter:
        return EncodingExporter() if args.exporter == "otlp" else NullExporter()

    provider = TracerProvider(shutdown_on_exit=False)
    batch = BatchSpanProcessor(make_exporter(), max_queue_size=QUEUE)
    provider.add_span_processor(batch)
    raw = provider.get_tracer("raw")

    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(max_queue_size=QUEUE)),
        exporter=make_exporter(),
    )
    install_manager(manager)  # what init_telemetry() does, with our exporter
    tenant_provider = manager.provider_for("acme")
    assert tenant_provider is not None
    ours = tenant_provider.get_tracer("raw")
    # A plain SDK tracer on our processor: the same sampler, Resource, processor
    # and limits, without TenantTracer's tenant boundary check.
    raw_same = SdkTracer(
        ours.sampler,
        ours.resource,
        ours.span_processor,
        ours.id_generator,
        ours.instrumentation_info,
        ours._span_limits,
        ours._instrumentation_scope,
    )

    def flush() -> None:
        batch.force_flush()
        manager.force_flush()

    def raw_span() -> None:
        with raw.start_as_current_span("work"):
            pass

    def raw_same_processor() -> None:
        with raw_same.start_as_current_span("work"):
            pass

    tenant_attribute = {"tenant.id": "acme"}
    # Span shapes beyond the empty span: the pipeline's work grows with them.
    ten_attributes: dict[str, AttributeValue] = {f"app.field_{i}": f"value-{i}" for i in range(8)}
    ten_attributes.update({"http.status_code": 200, "cache.hit": True})

    def shaped(
        tracer: Tracer, attributes: dict[str, AttributeValue] | None, event: bool
    ) -> SyncCase:
        def case() -> None:
            with tracer.start_as_current_span("work", attributes=attributes) as span:
                if event:
                    span.add_event("retry")

        return case

    def raw_same_with_attribute() -> None:
        with raw_same.start_as_current_span("work", attributes=tenant_attribute):
            pass

    def manager_span() -> None:
        with manager.span("work", tenant_id="acme"):
            pass

    @trace_function
    def traced() -> None:
        pass

    @trace_function(level=TelemetryLevel.VERBOSE)  # above the configured DETAILED
    def gated() -> None:
        pass

    def bare() -> None:
        pass

    async def raw_async() -> None:
        with raw.start_as_current_span("work"):
            pass

    async def raw_same_async() -> None:
        with raw_same.start_as_current_span("work"):
            pass

    @trace_function
    async def traced_async() -> None:
        pass

    @trace_function(level=TelemetryLevel.VERBOSE)
    async def gated_async() -> None:
        pass

    async def bare_async() -> None:
        pass

    async def best_async_us(make: AsyncCase, count: int, repeat: int) -> float:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(count):
                await make()
            best = min(best, time.perf_counter() - start)
        return best / count * 1e6

    scope = tenant_scope("acme")
    scope.__enter__()  # the common case: a request-scoped tenant, provider cached
    sync = interleaved(
        {
            "raw, SDK batch processor": raw_span,
            "raw, tenantrace processor": raw_same_processor,
            "raw + tenant.id, tenantrace processor": raw_same_with_attribute,
            "manager.span": manager_span,
            "@trace_function": traced,
            "raw 10 attributes, SDK batch processor": shaped(raw, ten_attributes, False),
            "raw 10 attributes, tenantrace processor": shaped(raw_same, ten_attributes, False),
            "raw 1 event, SDK batch processor": shaped(raw, None, True),
            "raw 1 event, tenantrace processor": shaped(raw_same, None, True),
        },
        flush,
        number,
        rounds,
    )
    asynchronous = interleaved_async(
        {
            "raw async, SDK batch processor": raw_async,
            "raw async, tenantrace processor": raw_same_async,
            "@trace_function async": traced_async,
        },
        flush,
        number,
        max(4, rounds // 2),
    )
    cheap = {
        "@trace_function gated (level)": best_us(gated, 200_000, 7),
        "bare call": best_us(bare, 200_000, 7),
        "@trace_function async gated": asyncio.run(best_async_us(gated_async, 100_000, 7)),
        "bare async call": asyncio.run(best_async_us(bare_async, 100_000, 7)),
    }
    scope.__exit__(None, None, None)
    stats = manager.get_stats()

    # Disabled telemetry: the same decorator, its gate closed by the disabled manager.
    init_telemetry(TelemetryConfig(enabled=False), install_global=False)
    cheap["@trace_function disabled"] = best_us(traced, 200_000, 7)
    cheap["bare call (disabled run)"] = best_us(bare, 200_000, 7)

    results = {**sync, **asynchronous}
    print(f"exporter: {args.exporter}; {rounds} rounds of {number} calls per case\n")
    print(f"{'case':<40}{'us/call (median)':>18}")
    for label, values in results.items():
        print(f"{label:<40}{statistics.median(values):>18.3f}")
    for label, value in cheap.items():
        print(f"{label:<40}{value:>18.3f}")
    print()
    rows = (
        ("manager.span", "raw, tenantrace processor", "goal <= 1.10x"),
        # manager.span sets the tenant.id attribute the seed asks for; exporting it
        # costs the export thread too (with OTLP, encoding it). Same data on both sides:
        ("manager.span", "raw + tenant.id, tenantrace processor", "same attributes"),
        ("@trace_function", "raw, tenantrace processor", ""),
        ("@trace_function async", "raw async, tenantrace processor", ""),
        ("@trace_function", "raw, SDK batch processor", "goal <= 1.10x"),
        ("@trace_function async", "raw async, SDK batch processor", "goal <= 1.10x"),
        ("manager.span", "raw, SDK batch processor", ""),
        ("raw, tenantrace processor", "raw, SDK batch processor", "the pipeline's own cost"),
        (
            "raw 10 attributes, tenantrace processor",
            "raw 10 attributes, SDK batch processor",
            "... 10 attributes",
        ),
        ("raw 1 event, tenantrace processor", "raw 1 event, SDK batch processor", "... 1 event"),
    )
    for ours, theirs, note in rows:
        print(f"{ours + ' / ' + theirs:<84}= {ratio(results, ours, theirs):.3f}x  {note}")
    added = (
        ("gated - bare", "@trace_function gated (level)", "bare call"),
        ("async gated - bare async", "@trace_function async gated", "bare async call"),
        ("disabled - bare", "@trace_function disabled", "bare call (disabled run)"),
    )
    for title, ours, theirs in added:
        print(f"{title:<84}= {(cheap[ours] - cheap[theirs]) * 1000:.0f} ns  (goal <= 300 ns)")
    print(f"\nspans dropped during the run: {stats['dropped_spans']}")
    garbage = {label: count for label, count in CYCLIC_GARBAGE.items() if count}
    print(f"cyclic garbage left by the timed blocks: {garbage or 'none'}")


if __name__ == "__main__":
    main()
