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
    "current_tenant",
    "get_telemetry_manager",
    "init_telemetry",
    "install_routing_provider",
    "is_valid_tenant_id",
    "tenant_scope",
    "validate_tenant_id",
]
