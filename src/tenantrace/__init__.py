"""tenantrace: tenant-aware OpenTelemetry instrumentation.

Every span of tenant A lands in tenant A's project, through one shared export
pipeline; decorators and layer wrappers for your code; context and tenant
propagation across HTTP, queues, threads and tasks.
"""

from tenantrace.instrumentation import (
    BatchExportConfig,
    InvalidTenantError,
    TelemetryConfig,
    TelemetryLevel,
    TelemetryManager,
    TenantRoutingTracerProvider,
    current_session,
    current_tenant,
    get_telemetry_manager,
    init_telemetry,
    install_routing_provider,
    tenant_scope,
    using_session,
)

__version__ = "0.1.0"

__all__ = [
    "BatchExportConfig",
    "InvalidTenantError",
    "TelemetryConfig",
    "TelemetryLevel",
    "TelemetryManager",
    "TenantRoutingTracerProvider",
    "__version__",
    "current_session",
    "current_tenant",
    "get_telemetry_manager",
    "init_telemetry",
    "install_routing_provider",
    "tenant_scope",
    "using_session",
]
