"""The HTML report of 10,000 spans: how long ``write_report`` takes, and Chromium to draw it.

Run: ``python benchmarks/bench_report.py`` (``--quick`` for one round of 10,000 spans).

The spans are what ``PhoenixAnalytics.get_spans`` returns for a busy hour:
traces of one ``agent.turn`` root with a ``rerank`` child (failing in one
trace of seven) and three more children among 34 tool operations, across 8
tenants, each span with a few attributes. Timed per size, over rounds with the
cyclic GC off: the figures alone (overview, per-operation and per-tenant
tables, top errors, slowest traces, time series), then the whole
``write_report`` (the figures, plotly's figures and HTML with plotly.js
inlined, the file written). Then, once per size, the wall time of headless
Chromium opening the file and taking a full-page screenshot (its start-up
included), when Chromium is installed. Goal: ``write_report`` of 10,000 spans
in under 5 s.
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tenantrace.analytics.insights import (
    overview,
    root_summary,
    slowest_traces,
    tenant_comparison,
    top_errors,
)
from tenantrace.analytics.records import TraceMetrics
from tenantrace.analytics.report import write_report
from tenantrace.analytics.summary import choose_bucket, summarize, time_series_by

GOAL_S = 5.0
TENANTS = tuple(f"tenant{i}" for i in range(8))
TOOLS = tuple(f"tool.step_{i:02d}" for i in range(34))
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def make_spans(count: int, seed: int = 1) -> list[TraceMetrics]:
    """About ``count`` spans, five per trace, over one hour."""
    rng = random.Random(seed)
    spans: list[TraceMetrics] = []
    traces = max(count // 5, 1)
    for n in range(traces):
        tenant = TENANTS[n % len(TENANTS)]
        began = START + timedelta(seconds=3600 * n / traces)
        trace_id = f"{rng.getrandbits(128):032x}"
        root_ms = rng.lognormvariate(5.5, 0.6)
        base = {
            "trace_id": trace_id,
            "profile": None,
            "strategy": None,
            "tenant_id": tenant,
            "project": f"cogniverse-{tenant}",
            "project_id": f"UHJvamVjdDo{TENANTS.index(tenant) + 1}",
            "session_id": f"{tenant}:session-{n % 40}",
        }
        attributes = {"tenant.id": tenant, "input.value": f"question {n}", "llm.model": "m"}
        failed = n % 7 == 0
        rows = [
            ("agent.turn", root_ms, None, None, True),
            ("rerank", root_ms / 3, "ConnectionError" if failed else None,
             f"reranker refused request {n % 5}: token=abc{n}" if failed else None, False),
        ] + [(TOOLS[(3 * n + c) % len(TOOLS)], rng.random() * 40, None, None, False)
             for c in range(3)]  # fmt: skip
        for index, (operation, duration, kind, error, root) in enumerate(rows):
            spans.append(
                TraceMetrics(
                    timestamp=began + timedelta(milliseconds=index),
                    duration_ms=duration,
                    operation=operation,
                    status="error" if error else "success",
                    error=error,
                    metadata=dict(attributes),
                    span_id=f"{n:08x}{index:08x}",
                    parent_id=None if root else f"{n:08x}{0:08x}",
                    is_root=root,
                    error_type=kind,
                    phoenix_id=f"U3Bhbjo{n * 5 + index}",
                    **base,
                )
            )
    return spans[:count]


def figures_only(spans: list[TraceMetrics]) -> None:
    overview(spans)
    summarize(spans, by="operation")
    root_summary(spans)
    tenant_comparison(spans)
    top_errors(spans)
    slowest_traces(spans)
    bucket = choose_bucket(spans)
    time_series_by(spans, "tenant", bucket)
    time_series_by(spans, "operation", bucket)


def timed(run: Callable[[], object], rounds: int) -> list[float]:
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            began = time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
    finally:
        gc.enable()
    return times


def chromium_draw_s(report: Path, work: Path) -> float | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    began = time.perf_counter()
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={work / 'profile'}", "--window-size=1300,8000",
         f"--screenshot={work / 'report.png'}", report.as_uri()],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 10,000 spans")
    args = parser.parse_args()
    sizes = (10_000,) if args.quick else (10_000, 50_000)
    rounds = 1 if args.quick else 5
    print(f"{'spans':>7} {'figures s':>10} {'write_report s (median, min)':>30} "
          f"{'HTML MB':>8} {'chromium s':>11}")  # fmt: skip
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in sizes:
            spans = make_spans(size)
            out = work / f"report-{size}.html"
            figures = timed(lambda s=spans: figures_only(s), rounds)
            writes = timed(
                lambda s=spans, o=out: write_report(s, o, phoenix_url="http://p"), rounds
            )
            drawn = chromium_draw_s(out, work)
            median = statistics.median(writes)
            print(
                f"{size:>7,} {statistics.median(figures):>10.3f} "
                f"{median:>20.3f}, {min(writes):.3f} {out.stat().st_size / 1e6:>8.1f} "
                f"{'n/a' if drawn is None else f'{drawn:.2f}':>11}"
            )
            if size == 10_000 and median >= GOAL_S:
                failed = True
    print(f"goal: write_report of 10,000 spans < {GOAL_S:g} s: {'MISSED' if failed else 'met'}")


if __name__ == "__main__":
    main()
