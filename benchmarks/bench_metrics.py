"""CPU per span of span-derived RED metrics (``tenantrace.observe.RedMetrics``) on the
export thread.

Run: ``python benchmarks/bench_metrics.py`` (``--rounds``; ``--compare FILE`` also
times ``RedMetrics`` loaded from another copy of ``tenantrace/observe/metrics.py``,
e.g. ``git show HEAD~1:src/tenantrace/observe/metrics.py > /tmp/before.py``, in the
same rounds: a before/after comparison in the same conditions).

What is measured: the thread's CPU time (``time.thread_time_ns``) of
``RedMetricsExporter.export(batch)`` minus that of the wrapped exporter's own
``export(batch)`` (a null exporter), per span, for a batch of ``--batch`` (512) ended
SDK spans made by a ``TelemetryManager``:

- ``1 tenant``: every span of tenant ``acme``, operation ``work``;
- ``100x5``: 100 tenants x 5 operations, spans spread evenly over the 500 series.

One span in 20 ends with status ERROR.

``RedMetrics`` counts a batch in two parts: on the export thread, C-level work per
span that appends each duration to its series' pending list (timed as above); at
the next collection (a Prometheus scrape, the OTLP reader's interval; on the export
thread only every 65,536 pending spans), a sort, a sum and a bisect per bucket bound
per series. That second part is timed too (``fold``), as if a collection ran after
every batch: the worst case, a real reader folds many batches at once.

The metrics have a Prometheus reader (an HTTP server on a free loopback port, never
scraped), as ``RedMetrics(prometheus_port=0)`` makes them; the series already exist (a
warm-up batch), and the marks of spans already counted are removed, untimed, before
every timed export so that every span is counted.

The floor of any implementation that keeps the SDK's histogram (its only API takes
one value per call) is timed too: ``histogram.record(seconds, attributes)`` for each
span of the batch, one series.

The whole export thread is timed too, as an application has it: two managers
exporting OTLP/gRPC to a receiver in another process, one with
``metrics=RedMetrics(prometheus_port=0)``, the other without, in interleaved rounds;
the CPU of each one's export thread per span (``pthread_getcpuclockid``), with a
Prometheus scrape of the metrics after every block (the per-series part runs then, on
the scraping thread; the whole-process figure includes it).

For comparison, the same batch through tenantrace's own export step
(``ExportPipeline._export_batch`` in sync mode, a null exporter: preparing the spans
and cutting them into requests, no encoding or network) is timed in the same rounds.

Every round times each case once, in a new random order, garbage collector paused;
the figure is the median over rounds, with the middle half (25th-75th percentile).
The goal (issue: logs and metrics): metrics add at most 10 % to the export thread's
CPU per span.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.pipeline import ExportPipeline


class _Null(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _spans(count: int, tenants: int, operations: int) -> list[ReadableSpan]:
    keep = _Keep()
    config = TelemetryConfig(
        exporter_type="none", batch_config=BatchExportConfig(use_sync_export=True)
    )
    manager = TelemetryManager(config, exporter=keep)
    try:
        for index in range(count):
            tenant = f"tenant-{index % tenants}"
            operation = f"op-{(index // tenants) % operations}"
            try:
                with manager.span(operation, tenant_id=tenant, kind=SpanKind.SERVER):
                    if index % 20 == 0:
                        raise ValueError("failed")
            except ValueError:
                pass
        assert manager.force_flush(10_000)
    finally:
        manager.shutdown(timeout_millis=2000)
    assert len(keep.spans) == count, len(keep.spans)
    return keep.spans


def _red_class(impl: str | None) -> Any:
    if impl is None:
        from tenantrace.observe import RedMetrics

        return RedMetrics
    spec = importlib.util.spec_from_file_location("_bench_red_metrics", Path(impl))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.RedMetrics


def _sdk_histogram(red: Any) -> Any:
    """An SDK histogram as the SDK-instrument path has it (its own provider)."""
    sdk = getattr(red, "_sdk", None)
    if sdk is not None:
        return sdk.duration
    if hasattr(red, "_duration"):
        return red._duration
    return red.meter_provider.get_meter("bench").create_histogram("bench.duration", unit="s")


def _cpu_ns(call: Callable[[], object], before: Callable[[], object] | None = None) -> int:
    if before is not None:
        before()
    start = time.thread_time_ns()
    call()
    return time.thread_time_ns() - start


def main(argv: list[str] | None = None) -> None:  # noqa: PLR0912, PLR0915 - one flat script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument(
        "--compare", help="also time RedMetrics loaded from this metrics.py, same rounds"
    )
    parser.add_argument(
        "--pipeline-rounds",
        type=int,
        default=9,
        help="rounds of the whole-export-thread comparison (0: skip it)",
    )
    parser.add_argument("--pipeline-block", type=int, default=10_000, help="spans per block")
    args = parser.parse_args(argv)

    implementations = {"metrics": _red_class(None)}
    if args.compare:
        implementations["compared"] = _red_class(args.compare)
    batches = {
        "1 tenant": _spans(args.batch, 1, 1),
        "100x5": _spans(args.batch, 100, 5),
    }
    null = _Null()
    reds = {
        (impl, name): red_class(prometheus_port=0)
        for impl, red_class in implementations.items()
        for name in batches
    }
    pipeline = ExportPipeline(
        _Null(), BatchExportConfig(use_sync_export=True, max_export_batch_size=args.batch)
    )

    def clear(red: Any, batch: list[ReadableSpan]) -> Callable[[], None]:
        """Untimed: forget that the batch was counted (the marks on the spans, or the
        remembered ids of an older implementation) so that every span counts again."""

        def forget() -> None:
            red._remembered.clear()
            mark = getattr(red, "_mark", None)
            if mark is not None:
                for span in batch:
                    span.__dict__.pop(mark, None)

        return forget

    cases: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {}
    for name, batch in batches.items():
        owners = [str(span.resource.attributes.get("tenant.id", "")) for span in batch]
        for impl in implementations:
            red = reds[impl, name]
            if hasattr(red, "observe_batch"):  # as a manager's metrics= hands it batches
                observe = red.observe_batch
                cases[f"{impl} {name}"] = (lambda o=observe, b=batch: o(b), None)
            else:  # an older implementation: the exporter wrapper, marks cleared untimed
                exporter = red.wrap(null)
                cases[f"{impl} {name}"] = (
                    lambda e=exporter, b=batch: e.export(b),
                    clear(red, batch),
                )
            aggregator = getattr(red, "_aggregator", None)
            if impl == "metrics" and aggregator is not None:
                # The per-series part, as a collection runs it: here after every batch
                # (the worst case; a reader every 10 s folds many batches at once).
                def pending(b: list[ReadableSpan] = batch, r: Any = red) -> None:
                    r.observe_batch(b)

                cases[f"fold {name}"] = (aggregator.flush, pending)
        cases[f"null {name}"] = (lambda b=batch: null.export(b), None)
        # The floor of any implementation keeping the SDK histogram: one record() per span.
        histogram = _sdk_histogram(reds["metrics", name])
        attributes = {"tenant_id": "tenant-0", "operation": "op-0", "span_kind": "server"}
        seconds = [(span.end_time - span.start_time) / 1e9 for span in batch]
        cases[f"record {name}"] = (
            lambda h=histogram, a=attributes, s=seconds: [h.record(v, a) for v in s],
            None,
        )
        cases[f"pipeline {name}"] = (
            lambda b=batch, o=owners: pipeline._export_batch(list(b), list(o)),
            None,
        )
    for call, before in cases.values():  # warm-up: series created, code specialised
        for _ in range(5):
            _cpu_ns(call, before)

    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    gc.disable()
    try:
        for _ in range(args.rounds):
            random.shuffle(order)
            for name in order:
                call, before = cases[name]
                times[name].append(_cpu_ns(call, before) / args.batch / 1000)
            gc.collect()
    finally:
        gc.enable()

    def quartiles(values: list[float]) -> tuple[float, float, float]:
        q = statistics.quantiles(values, n=4)
        return q[0], statistics.median(values), q[2]

    print(f"{args.rounds} rounds, batches of {args.batch} spans, us of thread CPU per span")
    for name in batches:
        plow, pmid, phigh = quartiles(times[f"pipeline {name}"])
        floor = statistics.median(times[f"record {name}"])
        print(
            f"{name:>9}: export step {pmid:6.2f} us/span ({plow:.2f}-{phigh:.2f}); "
            f"histogram record() alone {floor:5.2f} us/span"
        )
        for impl in implementations:
            nulls = times[f"null {name}"]
            added = times[f"{impl} {name}"]
            if not hasattr(reds[impl, name], "observe_batch"):  # timed with a null exporter
                added = [m - n for m, n in zip(added, nulls, strict=True)]
            low, mid, high = quartiles(added)
            source = "tenantrace.observe" if impl == "metrics" else args.compare
            print(
                f"{'':>11}RedMetrics ({source}): {mid:6.2f} us/span ({low:.2f}-{high:.2f}), "
                f"{mid / pmid:5.1%} of the export step"
            )
            if impl == "metrics" and f"fold {name}" in times:
                flow, fmid, fhigh = quartiles(times[f"fold {name}"])
                print(
                    f"{'':>11}+ per-series aggregation at collection, one per batch: "
                    f"{fmid:5.2f} us/span ({flow:.2f}-{fhigh:.2f}); both "
                    f"{(mid + fmid) / pmid:5.1%} of the export step"
                )
    for red in reds.values():
        red.shutdown()
    pipeline.shutdown()
    if args.pipeline_rounds:
        _whole_export_thread(args.pipeline_rounds, args.pipeline_block)


def _thread_cpu_ns(thread: threading.Thread | None) -> int:
    assert thread is not None and thread.ident is not None
    return time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))


def _whole_export_thread(rounds: int, block: int) -> None:
    """The export thread of a real pipeline (OTLP/gRPC to a receiver in another process),
    with and without ``metrics=RedMetrics(...)``: its CPU per span, same rounds."""
    from bench_export import _receiver

    from tenantrace.observe import RedMetrics

    receiver, endpoint = _receiver()
    red = RedMetrics(prometheus_port=0)
    config = TelemetryConfig(
        otlp_endpoint=endpoint, batch_config=BatchExportConfig(max_queue_size=2 * block)
    )
    managers = {
        "without metrics": TelemetryManager(config),
        "metrics=RedMetrics": TelemetryManager(config, metrics=red),
    }
    scrape = f"http://127.0.0.1:{red.prometheus_port}/metrics"

    def run(manager: TelemetryManager, count: int) -> None:
        for index in range(count):  # 100 tenants x 5 operations, one span in 20 fails
            try:
                with manager.span(
                    f"op-{index % 5}", tenant_id=f"tenant-{index % 100}", kind=SpanKind.SERVER
                ):
                    if index % 20 == 0:
                        raise ValueError("failed")
            except ValueError:
                pass
        manager.force_flush(30_000)

    try:
        for manager in managers.values():
            run(manager, block)  # warm: tenants, series, connections
        export: dict[str, list[float]] = {name: [] for name in managers}
        process: dict[str, list[float]] = {name: [] for name in managers}
        for _ in range(rounds):
            order = list(managers)
            random.shuffle(order)
            for name in order:
                manager = managers[name]
                worker = manager._pipeline._worker if manager._pipeline else None
                thread_start, process_start = _thread_cpu_ns(worker), time.process_time_ns()
                run(manager, block)
                if name != "without metrics":  # a scrape per block: the per-series part
                    urllib.request.urlopen(scrape, timeout=10).read()
                export[name].append((_thread_cpu_ns(worker) - thread_start) / block / 1000)
                process[name].append((time.process_time_ns() - process_start) / block / 1000)
    finally:
        for manager in managers.values():
            manager.shutdown(timeout_millis=5000)
        red.shutdown()
        assert receiver.stdin is not None
        receiver.stdin.close()
        receiver.wait(timeout=10)
    base = statistics.median(export["without metrics"])
    with_metrics = statistics.median(export["metrics=RedMetrics"])
    added = statistics.median(
        [
            m - b
            for m, b in zip(export["metrics=RedMetrics"], export["without metrics"], strict=True)
        ]
    )
    print(
        f"\nwhole export thread (OTLP/gRPC to a receiver process, 100 tenants x 5 operations, "
        f"{rounds} rounds of {block} spans, a Prometheus scrape per block):"
    )
    print(f"  without metrics   {base:6.2f} us/span of the export thread")
    print(f"  metrics=RedMetrics {with_metrics:5.2f} us/span: +{added:.2f} us, {added / base:5.1%}")
    base_p = statistics.median(process["without metrics"])
    added_p = statistics.median(
        [
            m - b
            for m, b in zip(process["metrics=RedMetrics"], process["without metrics"], strict=True)
        ]
    )
    print(
        f"  whole process: {base_p:.2f} us/span, metrics +{added_p:.2f} us ({added_p / base_p:.1%})"
    )
    print("goal: metrics add at most 10 % to the export thread's CPU per span")


if __name__ == "__main__":
    main()
