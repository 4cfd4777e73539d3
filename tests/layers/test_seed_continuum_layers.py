"""The CONTINUUM seed's Methods 1-3 and Patterns 1, 2 and 4, run as written.

Only the imports changed (``continuum.observability[...]`` -> ``tenantrace.layers[...]``),
plus what each sample leaves to the reader: a ``model``, a ``memory``, a
``cursor`` (real sqlite3), a ``redis`` (the real Redis on this machine) and
the functions the samples call.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any, List  # noqa: UP035 - the seed's own annotation

import pytest

# The seed's imports, from the top-level package as a migrating user writes them.
from tenantrace import (
    get_current_span,
    get_tracer,
    record_cache_hit,
    record_cache_miss,
    tenant_scope,
    trace_cache_operation,
    trace_function,
    trace_learn,
    trace_query,
    trace_recall,
)
from tenantrace.testing import SpanCapture

tracer = get_tracer(__name__)


# ----------------------------------------------------------- Method 1, as written


class _Model:
    def encode(self, text: str) -> List[float]:  # noqa: UP006
        return [float(len(text))] * 4


model = _Model()


@trace_function(
    name="calculate_embedding",
    attributes={"component": "memory", "model": "text-embedding-ada-002"},
)
def calculate_embedding(text: str) -> List[float]:  # noqa: UP006
    # Function automatically traced
    embedding = model.encode(text)
    return embedding


def test_method_1_decorator(spans: SpanCapture) -> None:
    with tenant_scope("acme"):
        assert calculate_embedding("hello") == [5.0] * 4
    [span] = spans.spans()
    assert (span.name, span.tenant, span.status) == ("calculate_embedding", "acme", "UNSET")
    assert span.attributes == {"component": "memory", "model": "text-embedding-ada-002"}


# ----------------------------------------------------------- Method 2, as written


def complex_operation(data: dict[str, Any]) -> list[str]:
    return list(data)


def process_memory(data):  # type: ignore[no-untyped-def]
    with tracer.start_as_current_span("process_memory") as span:
        # Add attributes
        span.set_attribute("data_size", len(data))
        span.set_attribute("tenant_id", data.get("tenant_id"))

        # Your code
        result = complex_operation(data)

        # Add result attributes
        span.set_attribute("result_count", len(result))

        return result


def test_method_2_context_manager(spans: SpanCapture) -> None:
    with tenant_scope("acme"):
        assert process_memory({"tenant_id": "acme", "text": "x"}) == ["tenant_id", "text"]
    [span] = spans.spans()
    assert span.name == "process_memory" and span.tenant == "acme"
    assert span.attributes == {"data_size": 2, "tenant_id": "acme", "result_count": 2}


# ----------------------------------------------------------- Method 3, as written


class _Recall:
    concepts_found = 3


class _Memory:
    def recall(self, query: str) -> _Recall:
        return _Recall()


@pytest.fixture
def cursor() -> Iterator[sqlite3.Cursor]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE entities (tenant_id TEXT, name TEXT)")
    db.executemany(
        "INSERT INTO entities VALUES (?, ?)", [("user_123", "a"), ("user_123", "b"), ("x", "c")]
    )
    yield db.cursor()
    db.close()


@pytest.fixture
def redis(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("Redis", "127.0.0.1", 6379)
    import redis as redis_module

    client = redis_module.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    written: list[str] = []
    original_setex = client.setex

    def setex(name: str, time: int, value: str) -> Any:
        written.append(name)
        return original_setex(name, time, value)

    client.setex = setex  # type: ignore[method-assign]
    client.delete("entities:user_123")
    yield client
    for key in written:
        client.delete(key)
    client.close()


@pytest.mark.redis
def test_method_3_layer_context_managers(
    spans: SpanCapture, cursor: sqlite3.Cursor, redis: Any
) -> None:
    memory = _Memory()
    query = "SELECT * FROM entities"
    key, tenant_id = "entities:user_123", "user_123"

    # Memory layer
    with trace_recall(query, max_concepts=10, tenant_id="user_123") as span:
        context = memory.recall(query)
        span.set_attribute("concepts_found", context.concepts_found)

    # Database layer
    with trace_query("SELECT * FROM entities", "SELECT", "entities"):
        results = cursor.execute(query).fetchall()

    # Cache layer
    with trace_cache_operation("GET", key, tenant_id):
        value = redis.get(key)

    assert len(results) == 3 and value is None
    recall, db, cache = spans.spans()
    assert recall.attributes["openinference.span.kind"] == "RETRIEVER"
    assert recall.attributes["concepts_found"] == 3 and recall.tenant == "user_123"
    assert db.name == "SELECT entities" and db.tenant == "default"  # no tenant given
    assert db.attributes["db.query.text"] == "SELECT * FROM entities"
    assert cache.name == "cache.get" and cache.tenant == "user_123"
    assert cache.attributes["cache.key_pattern"] == "entities:*"


def test_method_3_learn(spans: SpanCapture) -> None:
    with trace_learn("the user prefers dark mode", concepts=1, tenant_id="user_123"):
        pass
    assert spans.one("memory.learn").tenant == "user_123"


# ---------------------------------------------------------- Pattern 1, as written
# The samples use module-level ``cursor`` / ``redis``: here they are the fixtures,
# and each sample function is defined, unchanged, where those names are bound.


def test_pattern_1_database_query(spans: SpanCapture, cursor: sqlite3.Cursor) -> None:
    def get_entities(tenant_id: str, limit: int = 100):  # type: ignore[no-untyped-def]
        query = "SELECT * FROM entities WHERE tenant_id = ? LIMIT ?"

        with trace_query(query, "SELECT", "entities", tenant_id) as span:
            cursor.execute(query, (tenant_id, limit))
            results = cursor.fetchall()

            # Enrich span with results
            span.set_attribute("row_count", len(results))

            return results

    assert get_entities("user_123") == [("user_123", "a"), ("user_123", "b")]
    [span] = spans.spans()
    assert span.name == "SELECT entities" and span.kind == "CLIENT"
    assert span.tenant == "user_123"
    assert span.attributes == {
        "tenant.id": "user_123",  # no db.system.name: nothing names the database
        "db.query.text": "SELECT * FROM entities WHERE tenant_id = ? LIMIT ?",
        "db.operation.name": "SELECT",
        "db.collection.name": "entities",
        "row_count": 2,
    }


# ---------------------------------------------------------- Pattern 2, as written


def expensive_search(query: str) -> list[str]:
    return [f"{query}:result"]


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_pattern_2_cache_check_with_fallback(spans: SpanCapture, redis: Any) -> None:
    def get_search_results(query: str, tenant_id: str):  # type: ignore[no-untyped-def]
        cache_key = f"search:{hash(query)}"

        # Try cache first
        with trace_cache_operation("GET", cache_key, tenant_id):
            cached = redis.get(cache_key)
            if cached:
                record_cache_hit(cache_key, tenant_id)
                return json.loads(cached)
            record_cache_miss(cache_key, tenant_id)

        # Cache miss - compute and cache
        with tracer.start_as_current_span("compute_search"):
            results = expensive_search(query)

        with trace_cache_operation("SET", cache_key, tenant_id):
            redis.setex(cache_key, 300, json.dumps(results))

        return results

    query = f"basketball {random.random()}"
    with tenant_scope("acme"):
        assert get_search_results(query, "acme") == [f"{query}:result"]
        assert get_search_results(query, "acme") == [f"{query}:result"]
    names = [(s.name, s.attributes.get("cache.hit")) for s in spans.spans()]
    assert names == [
        ("cache.get", False),
        ("compute_search", None),
        ("cache.set", None),
        ("cache.get", True),
    ]
    assert {s.attributes.get("cache.key_pattern") for s in spans.spans()} == {"search:*", None}
    assert str(hash(query)) not in repr([s.attributes for s in spans.spans()])
    stats = spans.manager.get_stats()
    assert (stats["cache.hits.acme"], stats["cache.misses.acme"]) == (1, 1)


# ---------------------------------------------------------- Pattern 4, as written


def retry_with_tracing(func, max_attempts=3):  # type: ignore[no-untyped-def]
    span = get_current_span()

    for attempt in range(1, max_attempts + 1):
        try:
            span.add_event(f"attempt_{attempt}", {"attempt": attempt})
            result = func()
            span.set_attribute("attempts_used", attempt)
            return result
        except Exception as e:
            if attempt == max_attempts:
                span.record_exception(e)
                raise
            span.add_event(
                f"attempt_{attempt}_failed", {"error": str(e), "retry_after": 2**attempt}
            )
            time.sleep(2**attempt)


def test_pattern_4_retry_with_tracing(spans: SpanCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the backoff, without waiting it out
    calls = iter([ConnectionError("down"), ConnectionError("still down"), "ok"])

    def flaky() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @trace_function(name="sync_with_retry")
    def sync() -> str:
        return retry_with_tracing(flaky)  # type: ignore[no-any-return]

    @trace_function(name="always_failing")
    def always_failing() -> None:
        retry_with_tracing(lambda: 1 / 0, max_attempts=2)

    assert sync() == "ok"
    with pytest.raises(ZeroDivisionError):
        always_failing()
    assert slept == [2, 4, 2]
    ok, failed = spans.spans()
    assert ok.events == [
        "attempt_1",
        "attempt_1_failed",
        "attempt_2",
        "attempt_2_failed",
        "attempt_3",
    ]
    assert ok.attributes["attempts_used"] == 3 and ok.status == "UNSET"
    assert failed.events[:3] == ["attempt_1", "attempt_1_failed", "attempt_2"]
    assert failed.status == "ERROR" and failed.attributes["error.type"] == "ZeroDivisionError"


def test_pattern_4_exception_recorded_by_user_code_is_not_recorded_again(
    spans: SpanCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)

    @trace_function(name="always_failing")
    def always_failing() -> None:
        retry_with_tracing(lambda: 1 / 0, max_attempts=2)

    with pytest.raises(ZeroDivisionError):
        always_failing()
    assert spans.one("always_failing").events.count("exception") == 1


# ----------------------------- Error Handling / Async / Sampling samples, as written


@trace_function(record_exception=True)  # Default
def might_fail():  # type: ignore[no-untyped-def]
    if random.random() < 0.1:
        raise ValueError("Random failure!")
    return "success"


def test_automatic_exception_recording(spans: SpanCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.5)
    assert might_fail() == "success"
    monkeypatch.setattr(random, "random", lambda: 0.05)
    with pytest.raises(ValueError, match="Random failure!"):
        might_fail()
    failed = spans.spans()[-1]
    assert failed.status == "ERROR" and failed.events == ["exception"]
    assert failed.attributes["error.type"] == "ValueError"


async def async_call() -> int:
    await asyncio.sleep(0)
    return 42


# Works automatically with async/await
@trace_function()
async def async_operation():  # type: ignore[no-untyped-def]
    result = await async_call()
    return result


# Or with context manager
async def process():  # type: ignore[no-untyped-def]
    with tracer.start_as_current_span("async_process"):
        result = await async_operation()
    return result


async def test_async_code(spans: SpanCapture) -> None:
    assert await process() == 42
    inner, outer = spans.spans()
    assert outer.name == "async_process" and inner.name == "async_operation"
    assert inner.parent_id == outer.span_id


def compute_expensive_metric() -> int:
    return 7


def expensive_to_compute():  # type: ignore[no-untyped-def]
    span = get_current_span()

    # Only compute expensive attributes if span is being sampled
    if span.is_recording():
        span.set_attribute("expensive_metric", compute_expensive_metric())


def test_sampling_awareness(spans: SpanCapture) -> None:
    expensive_to_compute()  # no span: nothing computed, nothing raised
    with tracer.start_as_current_span("sampled"):
        expensive_to_compute()
    assert spans.one("sampled").attributes == {"expensive_metric": 7}
