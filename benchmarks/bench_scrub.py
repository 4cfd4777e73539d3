"""Export-thread cost per span of scrubbing, sizing and checking (no encoding, no network).

Run: ``python benchmarks/bench_scrub.py`` (``--quick`` for a short run).

What is timed is the pipeline's own step on the export thread, ``_prepare``:
every ended span is checked, scrubbed (whoever made it: auto-instrumented
spans too) and sized for the 4 MiB request budget. Three span shapes, made by
the real SDK: an empty span, a span with 10 string attributes, and the span an
HTTP client instrumentation makes (``url.full`` with a query, ``server.address``
and the other ``http.*`` attributes of the semantic conventions). Each is timed
with the default scrubber and with scrubbing off (``redact_secrets=False``),
interleaved, median of rounds; the ratio is the cost scrubbing adds. The goal
(issue 11): at most 1.10x for plain spans.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from tenantrace import TelemetryConfig
from tenantrace.export.pipeline import ExportPipeline
from tenantrace.export.scrubbing import Scrubber
from tenantrace.instrumentation.config import BatchExportConfig

GOAL = 1.10
BATCH = 512


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _spans(shape: str) -> list[ReadableSpan]:
    keep = _Keep()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("opentelemetry.instrumentation.httpx")
    for i in range(BATCH):
        if shape == "empty span":
            with tracer.start_as_current_span("work"):
                pass
        elif shape == "10 attributes":
            attributes = {f"app.field_{k}": f"value-{k}-{i}" for k in range(10)}
            with tracer.start_as_current_span("work", attributes=attributes):
                pass
        else:
            with tracer.start_as_current_span(
                "GET",
                kind=SpanKind.CLIENT,
                attributes={
                    "http.request.method": "GET",
                    "url.full": f"https://api.example.com/v1/orders/{i}?page=2&sort=desc",
                    "server.address": "api.example.com",
                    "server.port": 443,
                    "network.protocol.version": "1.1",
                    "http.response.status_code": 200,
                    "user_agent.original": "python-httpx/0.28.1",
                },
            ):
                pass
    return keep.spans


def _step(scrub: bool) -> Callable[[list[ReadableSpan]], object]:
    config = TelemetryConfig(redact_secrets=scrub)
    transform = Scrubber.from_config(config)
    pipeline = ExportPipeline(_Keep(), BatchExportConfig(use_sync_export=True), transform=transform)
    owners = ["acme"] * BATCH

    def prepare(spans: list[ReadableSpan]) -> object:
        return pipeline._prepare(spans, owners)

    return prepare


def per_span_us(step: Callable[[list[ReadableSpan]], object], spans: list[ReadableSpan]) -> float:
    step(spans)  # warm the caches (scopes, key verdicts)
    started = time.process_time()
    for _ in range(20):
        step(spans)
    return (time.process_time() - started) / (20 * len(spans)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    print(f"{'span':28} {'no scrubbing':>13} {'scrubbing':>10} {'ratio':>7}")
    for shape in ("empty span", "10 attributes", "HTTP client span"):
        spans = _spans(shape)
        off, on = _step(False), _step(True)
        offs, ons, ratios = [], [], []
        for _ in range(rounds):
            off_us, on_us = per_span_us(off, spans), per_span_us(on, spans)
            offs.append(off_us)
            ons.append(on_us)
            ratios.append(on_us / off_us)
        ratio = statistics.median(ratios)
        print(
            f"{shape:28} {statistics.median(offs):10.2f} us {statistics.median(ons):7.2f} us "
            f"{ratio:6.2f}x"
        )
    print(f"goal for plain spans: <= {GOAL:.2f}x")


if __name__ == "__main__":
    main()
