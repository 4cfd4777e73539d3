"""Cost per log record of log correlation (``tenantrace.observe.correlate_logs``).

Run: ``python benchmarks/bench_logs.py`` (``--quick`` for a short run).

What is timed is a whole ``logger.info("... %s", arg)`` call: the record made
by the factory, handled by a ``StreamHandler`` writing to ``/dev/null`` with a
``%``-style format (so every record is formatted, which is when the fields are
filled). Three cases, interleaved round by round, median of rounds:

- ``plain``: logging's own ``LogRecord`` (correlation off);
- ``outside a span``: correlation on, no span and no tenant current;
- ``inside a span``: correlation on, inside a tenant's span.

The same format string is used in all three, without the correlation fields
(plain records have none), so the difference is what correlation adds. A
fourth line formats the five fields too (``%(trace_id)s`` ...) inside a span.
The goals (issue: logs and metrics): at most 1 us per record inside a span,
tens of nanoseconds outside one.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable

from tenantrace import TelemetryConfig, TelemetryManager
from tenantrace.observe import correlate_logs, uncorrelate_logs

GOAL_INSIDE_NS = 1000.0
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FIELDS_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s span=%(span_id)s "
    "tenant=%(tenant_id)s service=%(service_name)s project=%(project_name)s] %(message)s"
)


def _logger(name: str, fmt: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives for the run
    handler.setFormatter(logging.Formatter(fmt))
    logger.handlers[:] = [handler]
    return logger


def _per_call_ns(call: Callable[[], None], count: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(count):
        call()
    return (time.perf_counter_ns() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    options = parser.parse_args()
    rounds, count = (5, 2000) if options.quick else (25, 20_000)

    manager = TelemetryManager(TelemetryConfig(exporter_type="none"))
    plain_logger = _logger("bench.plain", PLAIN_FORMAT)
    fields_logger = _logger("bench.fields", FIELDS_FORMAT)

    def plain() -> None:
        plain_logger.info("request %s done", "42")

    def with_fields() -> None:
        fields_logger.info("request %s done", "42")

    samples: dict[str, list[float]] = {
        "plain": [],
        "outside a span": [],
        "inside a span": [],
        "inside a span, fields formatted": [],
    }
    for _ in range(rounds):
        uncorrelate_logs()
        samples["plain"].append(_per_call_ns(plain, count))
        correlate_logs()
        samples["outside a span"].append(_per_call_ns(plain, count))
        with manager.span("request", tenant_id="acme"):
            samples["inside a span"].append(_per_call_ns(plain, count))
            samples["inside a span, fields formatted"].append(_per_call_ns(with_fields, count))
    uncorrelate_logs()
    manager.shutdown()

    base = statistics.median(samples["plain"])
    print(f"{'case':<34} {'ns/record':>10} {'added ns':>9}")
    for name, values in samples.items():
        median = statistics.median(values)
        added = "" if name == "plain" else f"{median - base:9.0f}"
        print(f"{name:<34} {median:10.0f} {added:>9}")
    inside = statistics.median(samples["inside a span"]) - base
    verdict = "met" if inside <= GOAL_INSIDE_NS else "NOT met"
    print(f"goal inside a span (<= {GOAL_INSIDE_NS:.0f} ns added): {verdict}")


if __name__ == "__main__":
    main()
