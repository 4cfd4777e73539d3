"""OTLP encoding alone, per span: tenantrace.export.encode_spans against the SDK's encoder.

Run: ``python benchmarks/bench_encoder.py`` (``--quick`` for a short run).

The SDK side is what the OTLP exporters run on the export thread:
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(spans)
.SerializeToString()``; ours returns the same bytes (checked before timing).
The spans are real SDK spans, ended, from one TracerProvider per tenant (a
Resource each), with distinct ids, times and attribute values.

Cases: an empty span, a span with 10 string attributes and a span with one
event (each alone in a request, as a lightly loaded BatchSpanProcessor sends
them, and the first two also as 512-span requests), and a 512-span request
across 100 tenants' Resources. Blocks of every (case, encoder) pair run in a
fresh random order each round, with the cyclic GC off; a case's ratio is the
median over rounds of ours / SDK within the round, which cancels the drift of
a shared machine. Goal: encoding <= 0.25x the SDK's, for an empty span and for
a span with 10 attributes.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tenantrace.export import encode_spans

GOAL = 0.25
Encode = Callable[[Sequence[ReadableSpan]], bytes]


def sdk_encode(spans: Sequence[ReadableSpan]) -> bytes:
    return sdk_encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def tenant_providers(count: int) -> list[tuple[TracerProvider, InMemorySpanExporter]]:
    providers = []
    for i in range(count):
        resource = Resource(
            {
                "service.name": "checkout",
                "service.version": "1.4.2",
                "deployment.environment": "prod",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.45.0",
                "tenant.id": f"tenant-{i:03d}",
            }
        )
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append((provider, exporter))
    return providers


def make_spans(
    providers: list[tuple[TracerProvider, InMemorySpanExporter]],
    count: int,
    shape: str,
) -> list[ReadableSpan]:
    tracers = [provider.get_tracer("tenantrace", "0.1.0") for provider, _ in providers]
    for i in range(count):
        tracer = tracers[i % len(tracers)]
        with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as span:
            if shape == "10 attrs":
                for j in range(10):
                    span.set_attribute(f"app.attribute.{j}", f"value-{i}-{j}")
            elif shape == "1 event":
                span.add_event("cache.miss", {"cache.key": f"order:{i}", "cache.ttl": 30})
            elif shape == "mixed":
                span.set_attribute("http.method", "GET")
                span.set_attribute("http.route", "/orders/{id}")
                span.set_attribute("http.status_code", 200)
                span.set_attribute("order.id", f"order-{i}")
                span.set_attribute("tenant.id", f"tenant-{i % len(tracers):03d}")
    spans: list[ReadableSpan] = []
    for _, exporter in providers:
        spans += exporter.get_finished_spans()
        exporter.clear()
    # the export order of a shared pipeline: tenants interleaved as their spans ended
    spans.sort(key=lambda span: span.end_time or 0)
    return spans


def block(encode: Encode, requests: list[list[ReadableSpan]]) -> float:
    """Seconds per span to encode every request once."""
    spans = sum(map(len, requests))
    start = time.perf_counter()
    for request in requests:
        encode(request)
    return (time.perf_counter() - start) / spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rounds = 7 if args.quick else 25
    singles = 100 if args.quick else 400

    one_tenant = tenant_providers(1)
    hundred = tenant_providers(100)
    cases: dict[str, list[list[ReadableSpan]]] = {
        "empty span": [[s] for s in make_spans(one_tenant, singles, "empty")],
        "10 string attributes": [[s] for s in make_spans(one_tenant, singles, "10 attrs")],
        "1 event": [[s] for s in make_spans(one_tenant, singles, "1 event")],
        "empty span, in 512-span requests": [make_spans(one_tenant, 512, "empty")],
        "10 string attributes, in 512-span requests": [make_spans(one_tenant, 512, "10 attrs")],
        "512 spans across 100 tenants' Resources": [make_spans(hundred, 512, "mixed")],
    }
    encoders: dict[str, Encode] = {"ours": encode_spans, "sdk": sdk_encode}
    for name, requests in cases.items():
        for request in requests:
            if encode_spans(request) != sdk_encode(request):
                raise SystemExit(f"{name}: the encoders disagree")

    results: dict[tuple[str, str], list[float]] = {
        (case, enc): [] for case in cases for enc in encoders
    }
    pairs = list(results)
    gc.collect()
    for _ in range(rounds):
        random.shuffle(pairs)
        for case, enc in pairs:
            repeat = max(1, 2000 // sum(map(len, cases[case])))
            gc.disable()
            try:
                best = min(block(encoders[enc], cases[case]) for _ in range(repeat))
            finally:
                gc.enable()
            results[case, enc].append(best)

    print(f"OTLP encoding per span, {rounds} interleaved rounds (median; best of each block)")
    print(f"{'case':<44} {'sdk us':>8} {'ours us':>8} {'ratio':>7}")
    ratios: dict[str, float] = {}
    for case in cases:
        ours, sdk = results[case, "ours"], results[case, "sdk"]
        ratios[case] = statistics.median(a / b for a, b in zip(ours, sdk, strict=True))
        print(
            f"{case:<44} {statistics.median(sdk) * 1e6:8.2f} "
            f"{statistics.median(ours) * 1e6:8.2f} {ratios[case]:6.3f}x"
        )
    goal_cases = ("empty span", "10 string attributes")
    met = all(ratios[case] <= GOAL for case in goal_cases)
    worst = max(ratios[case] for case in goal_cases)
    print(
        f"goal: encoding <= {GOAL:.2f}x the SDK's for an empty span and for 10 attributes: "
        f"{'met' if met else 'NOT met'} (worst {worst:.3f}x)"
    )


if __name__ == "__main__":
    main()
