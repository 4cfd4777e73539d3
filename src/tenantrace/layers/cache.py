"""Cache spans and hit/miss counts per tenant; a cache key is never recorded as it is.

::

    with trace_cache_operation("GET", cache_key, tenant_id):
        cached = redis.get(cache_key)
        if cached:
            record_cache_hit(cache_key, tenant_id)

A key is reduced to its namespace (``search:*`` for ``search:8c1f...``; ``*``
when it has none) and a keyed hash (``cache.key_hash``: equal keys give equal
hashes within one process, and nobody can test a guessed key against it,
because the hash key is random per process). Hits and misses are counted per
tenant in ``get_stats()`` under ``cache.hits.<tenant>`` / ``cache.misses.<tenant>``
(at most ``MAX_TENANTS`` tenants, the rest under ``(other)``); ``cache_stats()``
gives them as a table with hit rates.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import weakref
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import TelemetryManager, get_telemetry_manager
from tenantrace.instrumentation.spans import NoOpScope, SpanScope
from tenantrace.instrumentation.tenants import is_valid_tenant_id
from tenantrace.layers._spans import layer_span

__all__ = [
    "MAX_TENANTS",
    "cache_key_hash",
    "cache_key_pattern",
    "cache_stats",
    "record_cache_hit",
    "record_cache_miss",
    "trace_cache_operation",
]

CACHE_OPERATION: Final = "cache.operation"
CACHE_KEY_PATTERN: Final = "cache.key_pattern"
CACHE_KEY_HASH: Final = "cache.key_hash"
CACHE_HIT: Final = "cache.hit"
DB_SYSTEM_NAME: Final = "db.system.name"
DB_OPERATION_NAME: Final = "db.operation.name"

MAX_TENANTS: Final = 1000
OTHER_TENANTS: Final = "(other)"
INVALID_TENANT: Final = "(invalid)"

# A namespace is a short word before the first separator: "search:", "user/".
_NAMESPACE: Final = re.compile(r"([A-Za-z_][A-Za-z_\-]{0,31})([:/|#])")
_OPERATION: Final = re.compile(r"[A-Za-z][A-Za-z_]{0,31}")
# Random per process: the hash correlates equal keys but cannot be brute-forced
# offline from a guess (an e-mail, a user id) the way a plain digest could.
_HASH_KEY: Final = os.urandom(16)


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key).decode("latin-1")
    return repr(key)


def cache_key_pattern(key: object) -> str:
    """The namespace of ``key`` with the rest replaced: ``search:*``, or ``*``."""
    match = _NAMESPACE.match(_key_text(key))
    return f"{match.group(1)}{match.group(2)}*" if match else "*"


def cache_key_hash(key: object) -> str:
    """A 16-hex-digit keyed hash of ``key``, stable within this process only."""
    data = _key_text(key).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8, key=_HASH_KEY).hexdigest()


def _operation(operation: object) -> str | None:
    if isinstance(operation, str) and _OPERATION.fullmatch(operation.strip()):
        return operation.strip().upper()
    return None


def trace_cache_operation(
    operation: str,
    key: object,
    tenant_id: str | None = None,
    *,
    cache_system: str = "redis",
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope around one cache call, yielding its CLIENT span.

    The span is named ``cache.<operation>`` (``cache.get``) and carries
    ``db.system.name`` (``cache_system``), ``db.operation.name``,
    ``cache.operation``, ``cache.key_pattern`` and ``cache.key_hash``; never the key.
    """

    def describe() -> tuple[str, dict[str, AttributeValue]]:
        op = _operation(operation)
        attributes: dict[str, AttributeValue] = {
            DB_SYSTEM_NAME: cache_system if isinstance(cache_system, str) else "other",
            CACHE_KEY_PATTERN: cache_key_pattern(key),
            CACHE_KEY_HASH: cache_key_hash(key),
        }
        if op is None:
            return "cache.operation", attributes
        attributes[DB_OPERATION_NAME] = op
        attributes[CACHE_OPERATION] = op
        return f"cache.{op.lower()}", attributes

    return layer_span(
        "cache.operation", tenant_id, describe, level=level, kind=SpanKind.CLIENT, context=context
    )


class _TenantCounters:
    """The tenants a manager has cache counters for: at most ``MAX_TENANTS``."""

    def __init__(self) -> None:
        self.tenants: set[str] = set()
        self.lock = threading.Lock()

    def key_for(self, tenant: str) -> str:
        if tenant in self.tenants:
            return tenant
        with self.lock:
            if len(self.tenants) < MAX_TENANTS:
                self.tenants.add(tenant)
                return tenant
        return OTHER_TENANTS


_counters: weakref.WeakKeyDictionary[TelemetryManager, _TenantCounters] = (
    weakref.WeakKeyDictionary()
)
_counters_lock = threading.Lock()


def _counters_of(manager: TelemetryManager) -> _TenantCounters:
    found = _counters.get(manager)
    if found is None:
        with _counters_lock:
            found = _counters.setdefault(manager, _TenantCounters())
    return found


def _record(hit: bool, key: object, tenant_id: str | None) -> None:
    manager = get_telemetry_manager()
    if not manager.enabled:
        return
    try:
        span = trace_api.get_current_span()
        if span.is_recording():
            span.set_attribute(CACHE_HIT, hit)
            event: dict[str, AttributeValue] = {CACHE_HIT: hit}
            if key is not None:
                event[CACHE_KEY_PATTERN] = cache_key_pattern(key)
            span.add_event("cache.hit" if hit else "cache.miss", event)
        tenant = manager.resolve_tenant(tenant_id)
        label = tenant if is_valid_tenant_id(tenant) else INVALID_TENANT
        label = _counters_of(manager).key_for(label)
        counter = "cache.hits" if hit else "cache.misses"
        manager.count(counter)
        manager.count(f"{counter}.{label}")
    except Exception as exc:  # a counter must never fail the cache lookup it describes
        manager.warn_once("cache.record", "tenantrace: cache hit/miss not recorded (%r)", exc)


def record_cache_hit(key: object = None, tenant_id: str | None = None) -> None:
    """Count a hit for the tenant and mark the current span (``cache.hit=true`` and an event)."""
    _record(True, key, tenant_id)


def record_cache_miss(key: object = None, tenant_id: str | None = None) -> None:
    """Count a miss for the tenant and mark the current span (``cache.hit=false`` and an event)."""
    _record(False, key, tenant_id)


def _rate(hits: int, misses: int) -> float | None:
    total = hits + misses
    return hits / total if total else None


def cache_stats(manager: TelemetryManager | None = None) -> dict[str, Any]:
    """Hits, misses and hit rate, overall and per tenant, from ``get_stats()``."""
    stats = (manager or get_telemetry_manager()).get_stats()
    by_tenant: dict[str, dict[str, Any]] = {}
    for name, value in stats.items():
        for prefix, field in (("cache.hits.", "hits"), ("cache.misses.", "misses")):
            if name.startswith(prefix):
                row = by_tenant.setdefault(name[len(prefix) :], {"hits": 0, "misses": 0})
                row[field] = value
    for row in by_tenant.values():
        row["hit_rate"] = _rate(row["hits"], row["misses"])
    hits, misses = int(stats.get("cache.hits", 0)), int(stats.get("cache.misses", 0))
    return {
        "hits": hits,
        "misses": misses,
        "hit_rate": _rate(hits, misses),
        "by_tenant": by_tenant,
    }
