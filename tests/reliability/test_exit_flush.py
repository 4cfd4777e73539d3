"""Spans still queued when the process exits are flushed, within a bound.

The export thread is a daemon; like the SDK's ``TracerProvider``, the pipeline
flushes at interpreter exit, waiting at most ``min(export_timeout_millis, 5 s)``
so a dead collector cannot hold the exit hostage.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from reliability_fakes import BlackHole, OtlpHttpCollector

from tenantrace.export.pipeline import EXIT_FLUSH_MILLIS

# A service that ends spans and exits without calling shutdown() or force_flush().
_SCRIPT = textwrap.dedent(
    """
    import sys
    from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager

    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=sys.argv[1],
            otlp_protocol="http/protobuf",
            batch_config=BatchExportConfig(
                schedule_delay_millis=60_000, export_timeout_millis=int(sys.argv[2])
            ),
        )
    )
    for i in range(25):
        with manager.span("last-words", tenant_id=f"tenant-{i % 5}"):
            pass
    print("queued", manager.get_stats()["queued_spans"], flush=True)
    """
)


def _run(endpoint: str, timeout_ms: int) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, endpoint, str(timeout_ms)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


def test_spans_queued_at_exit_are_delivered(http_collector: OtlpHttpCollector) -> None:
    result, _ = _run(http_collector.endpoint, 5000)
    assert result.returncode == 0, result.stderr
    assert "queued 25" in result.stdout  # nothing had been exported before exit
    received = http_collector.wait_for(25, timeout=5)
    assert len(received) == 25
    assert {s.project for s in received} == {f"cogniverse-tenant~{i}" for i in range(5)}


def test_exit_with_a_black_holed_collector_waits_a_bounded_time(black_hole: BlackHole) -> None:
    # The exporter would wait 60 s; the exit flush gives up after EXIT_FLUSH_MILLIS.
    result, elapsed = _run(f"http://127.0.0.1:{black_hole.port}/v1/traces", 60_000)
    assert result.returncode == 0, result.stderr
    assert elapsed < EXIT_FLUSH_MILLIS / 1000 + 10  # + interpreter start-up on a busy machine
