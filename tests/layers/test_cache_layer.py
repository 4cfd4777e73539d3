"""``trace_cache_operation`` on the real Redis: cache-aside, key patterns, per-tenant counts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tenantrace import TelemetryConfig, tenant_scope
from tenantrace.layers import cache as cache_layer
from tenantrace.layers import (
    cache_key_hash,
    cache_key_pattern,
    cache_stats,
    get_tracer,
    record_cache_hit,
    record_cache_miss,
    trace_cache_operation,
)
from tenantrace.testing import SpanCapture, capture_spans

tracer = get_tracer(__name__)


@pytest.fixture
def redis_client(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    prefix = f"tenantrace-test-{uuid.uuid4().hex[:8]}"
    yield client, prefix
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)
    client.close()


def expensive_search(query: str) -> list[str]:
    return [f"{query}-1", f"{query}-2"]


@pytest.mark.redis
def test_cache_aside_flow_against_real_redis(spans: SpanCapture, redis_client: Any) -> None:
    redis, prefix = redis_client

    def get_search_results(query: str, tenant_id: str) -> list[str]:
        cache_key = f"search:{prefix}:{query}"
        with trace_cache_operation("GET", cache_key, tenant_id):
            cached = redis.get(cache_key)
            if cached:
                record_cache_hit(cache_key, tenant_id)
                return list(json.loads(cached))
            record_cache_miss(cache_key, tenant_id)
        with tracer.start_as_current_span("compute_search"):
            results = expensive_search(query)
        with trace_cache_operation("SET", cache_key, tenant_id):
            redis.set(cache_key, json.dumps(results), ex=300)
        return results

    with tenant_scope("acme"):  # what the request middleware does at the entry point
        first = get_search_results("alice@example.com", "acme")
        second = get_search_results("alice@example.com", "acme")
    assert first == second == ["alice@example.com-1", "alice@example.com-2"]
    miss_get, _, cache_set, hit_get = spans.spans()
    assert [s.name for s in spans.spans()] == [
        "cache.get",
        "compute_search",
        "cache.set",
        "cache.get",
    ]
    key = f"search:{prefix}:alice@example.com"
    assert miss_get.attributes == {
        "tenant.id": "acme",
        "db.system.name": "redis",
        "db.operation.name": "GET",
        "cache.operation": "GET",
        "cache.key_pattern": "search:*",
        "cache.key_hash": cache_key_hash(key),
        "cache.hit": False,
    }
    assert miss_get.events == ["cache.miss"] and hit_get.events == ["cache.hit"]
    assert hit_get.attributes["cache.hit"] is True
    assert (
        cache_set.attributes["cache.operation"] == "SET" and "cache.hit" not in cache_set.attributes
    )
    assert {s.kind for s in (miss_get, cache_set, hit_get)} == {"CLIENT"}
    assert {s.tenant for s in spans.spans()} == {"acme"}
    for span in spans.spans():  # the raw key, and the e-mail in it, never leave
        assert span.raw is not None
        text = repr(span.attributes) + repr([e.attributes for e in span.raw.events])
        assert "alice" not in text and prefix not in text
    stats = cache_stats(spans.manager)
    assert stats == {
        "hits": 1,
        "misses": 1,
        "hit_rate": 0.5,
        "by_tenant": {"acme": {"hits": 1, "misses": 1, "hit_rate": 0.5}},
    }
    raw = spans.manager.get_stats()
    assert raw["cache.hits.acme"] == 1 and raw["cache.misses.acme"] == 1


@pytest.mark.redis
async def test_async_redis_with_async_with(spans: SpanCapture, redis_client: Any) -> None:
    _, prefix = redis_client
    import redis.asyncio as aredis

    client = aredis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        async with trace_cache_operation("SET", f"user:{prefix}", "globex"):
            await client.set(f"user:{prefix}", "v", ex=60)
        async with trace_cache_operation("GET", f"user:{prefix}", "globex") as span:
            assert await client.get(f"user:{prefix}") == b"v"
            record_cache_hit(f"user:{prefix}", "globex")
            assert span.is_recording()
    finally:
        await client.delete(f"user:{prefix}")
        await client.aclose()
    assert spans.names() == ["cache.set", "cache.get"]
    assert {s.tenant for s in spans.spans()} == {"globex"}
    assert cache_stats(spans.manager)["by_tenant"]["globex"]["hits"] == 1


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("search:8c1f", "search:*"),
        ("session:abc:profile", "session:*"),
        ("user/alice@example.com", "user/*"),
        (b"bytes:key", "bytes:*"),
        ("noseparator", "*"),
        ("123:digits-first", "*"),
        ("", "*"),
        (42, "*"),
    ],
)
def test_key_patterns(key: object, pattern: str) -> None:
    assert cache_key_pattern(key) == pattern


def test_key_hash_is_stable_in_process_and_not_the_plain_digest() -> None:
    import hashlib

    assert cache_key_hash("k") == cache_key_hash("k") != cache_key_hash("k2")
    assert len(cache_key_hash("k")) == 16
    assert cache_key_hash("k") != hashlib.blake2b(b"k", digest_size=8).hexdigest()


def test_hit_and_miss_use_the_current_tenant_and_outside_a_span(spans: SpanCapture) -> None:
    with tenant_scope("initech"):
        record_cache_miss("k:1")
        record_cache_hit("k:1")
        record_cache_hit("k:1")
    record_cache_hit()  # no key, no tenant: the default tenant
    record_cache_miss("k", tenant_id="bad tenant id!")
    stats = cache_stats(spans.manager)
    assert stats["by_tenant"] == {
        "initech": {"hits": 2, "misses": 1, "hit_rate": 2 / 3},
        "default": {"hits": 1, "misses": 0, "hit_rate": 1.0},
        "(invalid)": {"hits": 0, "misses": 1, "hit_rate": 0.0},
    }
    assert spans.spans() == []  # nothing to mark: no current span


def test_per_tenant_counters_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_layer, "MAX_TENANTS", 5)
    with capture_spans(TelemetryConfig(exporter_type="memory")) as cap:
        for i in range(50):
            record_cache_hit("k:1", f"tenant-{i}")
        by_tenant = cache_stats(cap.manager)["by_tenant"]
    assert len(by_tenant) == 6
    assert by_tenant["(other)"]["hits"] == 45
    assert cache_stats(cap.manager)["hits"] == 50


def test_disabled_telemetry_counts_nothing_and_never_raises() -> None:
    with capture_spans(TelemetryConfig(enabled=False, exporter_type="memory")) as cap:
        with trace_cache_operation("GET", "k:1", "acme") as span:
            record_cache_hit("k:1", "acme")
        assert not span.is_recording()
        assert cache_stats(cap.manager)["hits"] == 0
