"""What users put on their code: ``trace_function`` and one wrapper module per layer.

- functions: ``trace_function``, ``get_tracer``, ``get_current_span``
- memory: ``trace_recall``, ``trace_learn``
- database: ``trace_query``, ``record_rows``, ``sanitize_sql``
- cache: ``trace_cache_operation``, ``record_cache_hit``, ``record_cache_miss``, ``cache_stats``
- API: ``ASGITracingMiddleware``, ``WSGITracingMiddleware``
- federation: ``trace_federation_sync`` (``_push`` / ``_pull``)

Every wrapper is a sync and async context manager yielding its span.
"""

from tenantrace.layers.api import ASGITracingMiddleware, WSGITracingMiddleware
from tenantrace.layers.cache import (
    cache_key_hash,
    cache_key_pattern,
    cache_stats,
    record_cache_hit,
    record_cache_miss,
    trace_cache_operation,
)
from tenantrace.layers.database import record_rows, sanitize_sql, trace_query
from tenantrace.layers.decorators import get_current_span, get_tracer, trace_function
from tenantrace.layers.federation import (
    FederationSync,
    trace_federation_pull,
    trace_federation_push,
    trace_federation_sync,
)
from tenantrace.layers.memory import trace_learn, trace_recall

__all__ = [
    "ASGITracingMiddleware",
    "FederationSync",
    "WSGITracingMiddleware",
    "cache_key_hash",
    "cache_key_pattern",
    "cache_stats",
    "get_current_span",
    "get_tracer",
    "record_cache_hit",
    "record_cache_miss",
    "record_rows",
    "sanitize_sql",
    "trace_cache_operation",
    "trace_federation_pull",
    "trace_federation_push",
    "trace_federation_sync",
    "trace_function",
    "trace_learn",
    "trace_query",
    "trace_recall",
]
