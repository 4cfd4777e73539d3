"""Zero-code start: ``opentelemetry-instrument`` with tenant routing.

Registered as the ``opentelemetry_configurator`` entry point ``tenantrace``.
``OTEL_PYTHON_CONFIGURATOR=tenantrace opentelemetry-instrument python app.py``
builds the manager from the environment and installs the routing provider, so
every auto-instrumented library's spans go to the current tenant's project,
installs the tenant-aware global propagator, and flushes on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Final

from opentelemetry.sdk._configuration import _BaseConfigurator

from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.manager import TelemetryManager, init_telemetry

__all__ = ["TenantraceConfigurator"]


# A SIGTERM handler flushes for at most this long before the process goes on dying.
SIGTERM_FLUSH_MILLIS: Final = 5000


class TenantraceConfigurator(_BaseConfigurator):
    """Configures tracing from ``OTEL_*`` / ``TELEMETRY_*`` / ``TENANTRACE_*`` variables."""

    def _configure(self, **kwargs: Any) -> None:
        manager = init_telemetry(TelemetryConfig.from_env(), install_global=True)
        _flush_on_sigterm(manager)


def _flush_on_sigterm(manager: TelemetryManager) -> None:
    """Flush queued spans when the process is told to stop.

    Under SIGTERM's default action the process dies at once and the exit-time
    flush never runs; servers such as uvicorn re-raise the signal after their
    own shutdown. A zero-code service has no code of its own to flush, so the
    configurator installs a handler, only where SIGTERM still has its default
    action, that flushes (bounded), restores the default and re-raises.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def flush_then_die(signum: int, frame: object) -> None:
            manager.force_flush(timeout_millis=SIGTERM_FLUSH_MILLIS)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, flush_then_die)
    except (ValueError, OSError, AttributeError):  # no signals here (a thread, Windows)
        return
