"""The tenant-aware tracer registry: config, levels, providers, the shared pipeline."""

from tenantrace.instrumentation.config import BatchExportConfig, TelemetryConfig, TelemetryLevel
from tenantrace.instrumentation.manager import (
    TelemetryManager,
    get_telemetry_manager,
    init_telemetry,
)
from tenantrace.instrumentation.routing import (
    TenantRoutingTracerProvider,
    install_routing_provider,
)
from tenantrace.instrumentation.sessions import current_session, using_session
from tenantrace.instrumentation.tenants import (
    InvalidTenantError,
    current_tenant,
    is_valid_tenant_id,
    tenant_scope,
    validate_tenant_id,
)

__all__ = [
    "BatchExportConfig",
    "InvalidTenantError",
    "TelemetryConfig",
    "TelemetryLevel",
    "TelemetryManager",
    "TenantRoutingTracerProvider",
    "current_session",
    "current_tenant",
    "get_telemetry_manager",
    "init_telemetry",
    "install_routing_provider",
    "is_valid_tenant_id",
    "tenant_scope",
    "using_session",
    "validate_tenant_id",
]
