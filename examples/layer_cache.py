"""Cache layer: the cache-aside pattern, key patterns instead of keys, hit rates per tenant.

Run: python examples/layer_cache.py  (no server: a dict stands in for Redis; with a real
Redis, ``cache.get(key)`` / ``cache.setex(key, 300, value)`` are the same calls)
"""

import json
import time

from tenantrace import tenant_scope
from tenantrace.layers import (
    cache_stats,
    get_tracer,
    record_cache_hit,
    record_cache_miss,
    trace_cache_operation,
)
from tenantrace.testing import capture_spans

tracer = get_tracer(__name__)


class DictCache:
    """``get`` / ``setex`` like redis-py, in a dict."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, str]] = {}

    def get(self, key: str) -> str | None:
        found = self._data.get(key)
        return found[1] if found and found[0] > time.monotonic() else None

    def setex(self, key: str, seconds: int, value: str) -> None:
        self._data[key] = (time.monotonic() + seconds, value)


cache = DictCache()


def search(query: str, tenant_id: str) -> list[str]:
    cache_key = f"search:{tenant_id}:{query}"  # never recorded: "search:*" and a keyed hash are
    with trace_cache_operation("GET", cache_key, tenant_id):
        cached = cache.get(cache_key)
        if cached:
            record_cache_hit(cache_key, tenant_id)
            return list(json.loads(cached))
        record_cache_miss(cache_key, tenant_id)
    with tracer.start_as_current_span("compute_search"):
        results = [f"{query}-{i}" for i in range(3)]
    with trace_cache_operation("SET", cache_key, tenant_id):
        cache.setex(cache_key, 300, json.dumps(results))
    return results


with capture_spans() as spans:
    for tenant, queries in (("acme", ["dunks", "dunks", "dunks"]), ("globex", ["golf", "tennis"])):
        with tenant_scope(tenant):
            for query in queries:
                search(query, tenant)

    first = spans.spans()[0]
    print("span attributes:", {k: v for k, v in first.attributes.items() if k.startswith("cache")})
    stats = cache_stats(spans.manager)
    for tenant, row in stats["by_tenant"].items():
        rate = row["hit_rate"]
        print(f"{tenant:7} hits={row['hits']} misses={row['misses']} hit_rate={rate:.0%}")
    assert stats["by_tenant"]["acme"] == {"hits": 2, "misses": 1, "hit_rate": 2 / 3}
    assert all("dunks" not in str(s.attributes) for s in spans.spans())
