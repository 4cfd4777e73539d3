"""Context propagation: the trace, and the tenant, across HTTP, queues, threads and tasks.

- HTTP: ``inject_trace_context`` / ``extract_trace_context`` / ``attach_trace_context``
- Queues: ``propagate_context_to_dict`` / ``extract_context_from_dict``
- Baggage: ``set_baggage`` / ``get_baggage`` / ``baggage_scope``
- Trust and egress: ``TenantTrustPolicy``, ``EgressPolicy`` and their process defaults
- Batches: ``link_spans``, ``batch_span``, ``message_span``
- Background work: ``create_carrier_from_span``, ``submit_in_context``,
  ``create_task_in_context``, ``bind_context``, ``get_trace_id``
- Formats: ``configure_propagators`` (W3C Trace Context, W3C Baggage, B3; ``OTEL_PROPAGATORS``)
- Auto-instrumentation: ``TenantPropagator``, the tenant-aware global propagator
"""

from tenantrace.instrumentation.tenants import current_tenant, tenant_scope
from tenantrace.propagation.background import (
    BackgroundMode,
    bind_context,
    create_carrier_from_span,
    create_task_in_context,
    get_span_id,
    get_trace_id,
    submit_in_context,
)
from tenantrace.propagation.baggage import (
    TENANT_BAGGAGE_KEY,
    baggage_scope,
    get_all_baggage,
    get_baggage,
    remove_baggage,
    set_baggage,
)
from tenantrace.propagation.carriers import SpanCarrier
from tenantrace.propagation.http import (
    attach_trace_context,
    extract_trace_context,
    inject_trace_context,
)
from tenantrace.propagation.links import batch_span, link_spans, message_span
from tenantrace.propagation.messages import (
    DEFAULT_CARRIER_KEY,
    extract_context_from_dict,
    propagate_context_to_dict,
)
from tenantrace.propagation.propagator import TenantPropagator, install_tenant_propagator
from tenantrace.propagation.propagators import configure_propagators
from tenantrace.propagation.trust import (
    REJECT_ALL,
    TRUST_ALL,
    EgressPolicy,
    TenantTrustPolicy,
    get_default_trust_policy,
    get_egress_policy,
    set_default_trust_policy,
    set_egress_policy,
)

__all__ = [
    "DEFAULT_CARRIER_KEY",
    "REJECT_ALL",
    "TENANT_BAGGAGE_KEY",
    "TRUST_ALL",
    "BackgroundMode",
    "EgressPolicy",
    "SpanCarrier",
    "TenantPropagator",
    "TenantTrustPolicy",
    "attach_trace_context",
    "baggage_scope",
    "batch_span",
    "bind_context",
    "configure_propagators",
    "create_carrier_from_span",
    "create_task_in_context",
    "current_tenant",
    "extract_context_from_dict",
    "extract_trace_context",
    "get_all_baggage",
    "get_baggage",
    "get_default_trust_policy",
    "get_egress_policy",
    "get_span_id",
    "get_trace_id",
    "inject_trace_context",
    "install_tenant_propagator",
    "link_spans",
    "message_span",
    "propagate_context_to_dict",
    "remove_baggage",
    "set_baggage",
    "set_default_trust_policy",
    "set_egress_policy",
    "submit_in_context",
    "tenant_scope",
]
