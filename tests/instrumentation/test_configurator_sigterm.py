"""The zero-code configurator flushes queued spans when the process gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import os, signal, time
    from tenantrace.instrumentation.configurator import TenantraceConfigurator
    from opentelemetry import trace

    TenantraceConfigurator().configure()
    with trace.get_tracer("app").start_as_current_span("queued before SIGTERM"):
        pass
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM on this platform")
def test_sigterm_flushes_what_is_queued_then_dies_of_it() -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing would be exported before the signal
    }
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "ready" in result.stdout
    assert "queued before SIGTERM" in result.stdout, (result.stdout, result.stderr)
