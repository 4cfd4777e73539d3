"""Zero-code start: ``opentelemetry-instrument`` with tenant routing.

Registered as the ``opentelemetry_configurator`` entry point ``tenantrace``.
``OTEL_PYTHON_CONFIGURATOR=tenantrace opentelemetry-instrument python app.py``
builds the manager from the environment and installs the routing provider, so
every auto-instrumented library's spans go to the current tenant's project.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._configuration import _BaseConfigurator

from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.manager import init_telemetry

__all__ = ["TenantraceConfigurator"]


class TenantraceConfigurator(_BaseConfigurator):
    """Configures tracing from ``OTEL_*`` / ``TELEMETRY_*`` variables with tenant routing."""

    def _configure(self, **kwargs: Any) -> None:
        init_telemetry(TelemetryConfig.from_env(), install_global=True)
