"""Secrets never leave the process: asserted on the bytes the collector received.

Every secret below is a unique marker string; the test fails if any marker
appears anywhere in any OTLP request that reached a real OTLP/HTTP receiver on
loopback: span attributes, event and link attributes, SQL literals, raw cache
keys, ``Authorization`` / cookie headers, captured function arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import Link, SpanContext, TraceFlags
from optional_api import require_api
from reliability_fakes import OtlpHttpCollector

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, tenant_scope
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import trace_function

# Secret values are LEAK markers; keys never contain the word, so a hit is a leak.
MARKER = re.compile(rb"LEAK[0-9a-z]+")

# Attribute keys that look like secrets, as instrumentations and users spell them.
SECRET_KEYS = [
    "password",
    "db.password",
    "user_password",
    "passwd",
    "PASSWORD",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "x-api-key",
    "API-KEY",
    "token",
    "access_token",
    "auth.token",
    "refresh-token",
    "authorization",
    "http.request.header.authorization",
    "http.request.header.cookie",
    "http.response.header.set-cookie",
    "cookie",
    "sessionid",
    "session_key",
    "private_key",
    "credentials",
]


@pytest.fixture
def wire() -> Iterator[tuple[TelemetryManager, OtlpHttpCollector]]:
    """A default-configured manager exporting over real OTLP/HTTP, installed process-wide."""
    # Scrubbing runs as the pipeline's span transform, wired by default by the manager.
    require_api("tenantrace.export.scrubbing")
    collector = OtlpHttpCollector().start()
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=collector.endpoint,
            otlp_protocol="http/protobuf",
            batch_config=BatchExportConfig(schedule_delay_millis=10, export_timeout_millis=5000),
        )
    )
    previous = install_manager(manager)
    try:
        yield manager, collector
    finally:
        install_manager(previous)
        manager.shutdown(timeout_millis=2000)
        collector.stop()


def _delivered(manager: TelemetryManager, collector: OtlpHttpCollector, spans: int) -> bytes:
    assert manager.force_flush(10_000)
    received = collector.wait_for(spans)
    assert len(received) >= spans
    stats = manager.get_stats()
    assert stats["dropped_spans"] == 0, stats
    return b"".join(collector.bodies)


def _leaks(wire_bytes: bytes) -> list[bytes]:
    return sorted(set(MARKER.findall(wire_bytes)))


def test_secret_looking_attribute_keys_are_redacted_everywhere_on_the_wire(
    wire: tuple[TelemetryManager, OtlpHttpCollector],
) -> None:
    manager, collector = wire
    secrets = {key: f"LEAK{i}x" for i, key in enumerate(SECRET_KEYS)}
    link = Link(SpanContext(0x1234, 0x5678, True, TraceFlags(1)), dict(secrets))
    with manager.span("login", tenant_id="acme", attributes=dict(secrets), links=[link]) as span:
        span.add_event("auth", dict(secrets))
        span.set_attribute("session.id", "visible-session-42")  # an id, not a secret
        span.set_attribute("user.id", "visible-user-7")
    body = _delivered(manager, collector, 1)
    assert _leaks(body) == []
    [received] = collector.spans()
    assert received.attributes["session.id"] == "visible-session-42"
    assert received.attributes["user.id"] == "visible-user-7"
    assert set(secrets) <= set(received.attributes)  # redacted, not silently removed


def test_captured_arguments_named_like_secrets_are_redacted(
    wire: tuple[TelemetryManager, OtlpHttpCollector],
) -> None:
    manager, collector = wire

    @trace_function(capture_args=["username", "password", "api_key"])
    def login(username: str, password: str, api_key: str) -> bool:
        return True

    with tenant_scope("acme"):
        assert login("alice", "LEAKpw1", api_key="LEAKkey1")
    body = _delivered(manager, collector, 1)
    assert _leaks(body) == []
    assert b"alice" in body  # a non-secret argument is kept


def test_sql_literals_never_reach_the_wire(
    wire: tuple[TelemetryManager, OtlpHttpCollector],
) -> None:
    layers = require_api("tenantrace.layers", "trace_query")
    manager, collector = wire
    queries = [
        "SELECT * FROM users WHERE email = 'LEAKa1@example.com' AND pin = 9182736450",
        "INSERT INTO tokens (value) VALUES ('LEAKb2'), ('LEAKc3')",
        "UPDATE users SET password = 'LEAKd4' WHERE id IN (1, 2, 3)",
        'SELECT * FROM t WHERE note = "LEAKe5" OR x = $$LEAKf6$$',
        "SELECT * FROM t WHERE a = 'it''s LEAKg7'",
    ]
    for query in queries:
        with layers.trace_query(query, "SELECT", "users", tenant_id="acme"):
            pass
    body = _delivered(manager, collector, len(queries))
    assert _leaks(body) == []
    assert b"9182736450" not in body
    assert all(s.attributes.get("db.query.text") for s in collector.spans())


def test_raw_cache_keys_never_reach_the_wire(
    wire: tuple[TelemetryManager, OtlpHttpCollector],
) -> None:
    layers = require_api(
        "tenantrace.layers", "trace_cache_operation", "record_cache_hit", "record_cache_miss"
    )
    manager, collector = wire
    keys = ["session:LEAKh8:profile", "user/LEAKi9@example.com", "LEAKj10"]
    with manager.span("request", tenant_id="acme"):
        for key in keys:
            with layers.trace_cache_operation("GET", key, "acme"):
                layers.record_cache_miss(key, "acme")
            with layers.trace_cache_operation("SET", key, "acme"):
                pass
            layers.record_cache_hit(key, "acme")
    body = _delivered(manager, collector, 1 + 2 * len(keys))
    assert _leaks(body) == []


_SECRET_WORDS = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
]


_secret_keys = st.builds(
    lambda prefix, word, suffix, upper: prefix + (word.upper() if upper else word) + suffix,
    st.sampled_from(["", "x.", "db.", "http.request.header.", "my_", "X-"]),
    st.sampled_from(_SECRET_WORDS),
    st.sampled_from(["", "_value", ".raw", "-v2", "s"]),
    st.booleans(),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=_secret_keys, as_list=st.booleans())
def test_any_spelling_of_a_secret_key_is_redacted(
    wire: tuple[TelemetryManager, OtlpHttpCollector], key: str, as_list: bool
) -> None:
    manager, collector = wire
    secret: Any = ["LEAKprop", "LEAKprop2"] if as_list else "LEAKprop"
    collector.clear()
    with manager.span("op", tenant_id="acme", attributes={key: secret}):
        pass
    body = _delivered(manager, collector, 1)
    assert _leaks(body) == [], key
