"""Inject the current trace (and tenant) into headers; extract them from inbound headers.

``extract_trace_context(headers)`` returns a ``Context`` to start spans under
(``tracer.start_as_current_span(name, context=ctx)``); ``attach_trace_context``
makes it current for a block, for middleware. Extraction never raises: a
malformed or oversized carrier yields a context without a remote parent (the
span starts a new trace) and is counted in ``get_stats()``.

The tenant travels as baggage ``tenant.id``. Outbound it is added from the
current tenant when the egress policy lets baggage go to the destination.
Inbound it becomes the tenant of the returned context only if the trust policy
accepts it; otherwise it is removed from the extracted baggage and counted as a
rejected tenant. A tenant already set locally (``tenant_scope``) is kept: the
caller's own scope outranks anything a carrier says.
"""

from tenantrace.propagation._extract import (
    attach_trace_context,
    extract_carried,
    extract_fields,
    extract_span_context,
    extract_trace_context,
)
from tenantrace.propagation._inject import (
    _LastDerived,  # noqa: F401 - benchmarks/bench_propagation.py resets its cache through here
    inject_context,
    inject_trace_context,
)

__all__ = [
    "attach_trace_context",
    "extract_carried",
    "extract_fields",
    "extract_span_context",
    "extract_trace_context",
    "inject_context",
    "inject_trace_context",
]
