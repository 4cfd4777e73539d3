"""Quick start: three tenants, one process, each tenant's spans in its own project.

Run: python examples/quickstart.py  (no server: spans print to the console)
"""

from tenantrace import TelemetryConfig, init_telemetry, tenant_scope
from tenantrace.layers import trace_function

telemetry = init_telemetry(TelemetryConfig(exporter_type="console"))


@trace_function(name="video_agent.search")
def search(query: str) -> list[str]:
    return [f"{query}-result"]


for tenant in ("acme", "globex", "initech"):
    with tenant_scope(tenant):
        search("basketball")

with telemetry.span("cogniverse.routing", tenant_id="acme", project_name="orchestration") as span:
    span.set_attribute("routing.chosen_agent", "video_search")

telemetry.force_flush(timeout_millis=5000)
stats = telemetry.get_stats()
assert stats["cached_tenants"] == 4, stats
print(f"exported {stats['exported_spans']} spans for {stats['cached_tenants']} tenant projects")
telemetry.shutdown()
