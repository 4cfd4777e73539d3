"""Scrubbing on export: secret-looking keys redacted everywhere, ids and counts kept, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, TraceFlags

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager
from tenantrace.export.scrubbing import REDACTED, Scrubber, is_secret_key
from tenantrace.testing import SpanCapture, capture_spans

SECRET_KEYS = [
    "password",
    "db.password",
    "user_password",
    "PASSWD",
    "passphrase",
    "client_secret",
    "secret_key",
    "api_key",
    "apikey",
    "x-api-key",
    "API-KEY",
    "db.api.key",
    "token",
    "access_token",
    "auth.token",
    "refresh-token",
    "authorization",
    "http.request.header.authorization",
    "http.request.header.proxy-authorization",
    "http.request.header.cookie",
    "http.response.header.set-cookie",
    "cookie",
    "sessionid",
    "session_id",
    "x-session-id",
    "http.request.header.x-session-id",
    "session_key",
    "session.key",
    "private_key",
    "private.key",
    "aws_access_key",
    "credentials",
    "db.connection_string",
    "pwd",
    "x-auth",
    "jwt",
    "bearer",
    "dsn",
]

SAFE_KEYS = [
    "session.id",  # OpenInference: a conversation id Phoenix groups traces by
    "session.previous_id",
    "app.session.id",  # a dotted namespace, not the web "sessionid" credential
    "user.id",
    "tenant.id",
    "book.author",
    "http.request.method",
    "db.query.text",
    "cache.key_pattern",
    "tokenizer.name",
    "query.text",
    "routing.confidence",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", SAFE_KEYS)
def test_ids_and_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)


def test_whole_span_events_and_links_are_redacted_ids_kept(spans: SpanCapture) -> None:
    link = Link(SpanContext(0x1234, 0x5678, True, TraceFlags(1)), {"api_key": "k1", "peer": "b"})
    manager = spans.manager
    with manager.session_span(
        "login",
        tenant_id="acme",
        session_id="conv-42",
        user_id="u-7",
        attributes={"password": "hunter2", "db.connection_string": "postgres://u:p@h/db"},
    ) as span:
        span.add_event("auth", {"authorization": "Bearer abc", "scheme": "bearer-ish"})
        span.set_attribute("http.request.header.cookie", ["a=1", "b=2"])
    with manager.span("linked", tenant_id="acme", links=[link]):
        pass
    login, linked = spans.spans()
    assert login.attributes == {
        "tenant.id": "acme",
        "session.id": "acme:conv-42",
        "user.id": "u-7",
        "password": REDACTED,
        "db.connection_string": REDACTED,
        "http.request.header.cookie": REDACTED,
    }
    assert login.raw is not None and linked.raw is not None
    [event] = login.raw.events
    assert dict(event.attributes or {}) == {"authorization": REDACTED, "scheme": "bearer-ish"}
    [exported_link] = linked.raw.links
    assert dict(exported_link.attributes or {}) == {"api_key": REDACTED, "peer": "b"}
    assert exported_link.context.span_id == 0x5678


def test_token_counts_are_kept_but_token_strings_are_not(spans: SpanCapture) -> None:
    attributes: dict[str, Any] = {
        "llm.token_count.prompt": 12,
        "llm.token_count.total": 30,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.request.max_tokens": 256,
        "cost.tokens_used": 150,  # the CONTINUUM seed's own attribute
        "tokens": "sk-live-abc",  # a count key holding a string is a credential
        "my_tokens_value": ["t1", "t2"],
    }
    with spans.manager.span("llm", tenant_id="acme", attributes=attributes):
        pass
    [span] = spans.spans()
    assert span.attributes == {
        "tenant.id": "acme",
        "llm.token_count.prompt": 12,
        "llm.token_count.total": 30,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.request.max_tokens": 256,
        "cost.tokens_used": 150,
        "tokens": REDACTED,
        "my_tokens_value": REDACTED,
    }


def test_a_clean_span_is_not_copied() -> None:
    exporter = InMemorySpanExporter()
    scrubber = Scrubber()
    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(use_sync_export=True)), exporter=exporter
    )
    with manager.span("clean", tenant_id="acme", attributes={"a": 1}):
        pass
    [span] = exporter.get_finished_spans()
    assert scrubber(span) is span
    manager.shutdown()


def test_user_patterns_and_callback() -> None:
    seen: list[str] = []

    def callback(key: str, value: Any) -> Any:
        seen.append(key)
        if key == "drop.me":
            return None
        if isinstance(value, str) and "@" in value:
            return "<email>"
        return value

    config = TelemetryConfig(
        exporter_type="memory",
        redact_patterns=(r"^internal\.", r"ssn$"),
        redact_callback=callback,
    )
    with capture_spans(config) as capture:
        with capture.manager.span(
            "op",
            tenant_id="acme",
            attributes={
                "internal.note": "x",
                "user.ssn": "123",
                "email": "a@b.c",
                "drop.me": 1,
                "password": "p",
                "ok": "fine",
            },
        ):
            pass
        [span] = capture.spans()
    assert span.attributes == {
        "tenant.id": "acme",
        "internal.note": REDACTED,
        "user.ssn": REDACTED,
        "email": "<email>",
        "password": REDACTED,
        "ok": "fine",
    }
    assert span.raw is not None and span.raw.dropped_attributes == 1
    # The callback sees only what the rules did not already redact.
    assert "password" not in seen and "internal.note" not in seen


def test_a_failing_callback_redacts_instead_of_leaking(caplog: pytest.LogCaptureFixture) -> None:
    def broken(key: str, value: Any) -> Any:
        raise RuntimeError("bug in user code")

    with capture_spans(TelemetryConfig(exporter_type="memory", redact_callback=broken)) as cap:
        with cap.manager.span("op", tenant_id="acme", attributes={"note": "private"}):
            pass
        [span] = cap.spans()
    assert span.attributes == {"tenant.id": REDACTED, "note": REDACTED}
    assert caplog.text.count("scrub callback raised") == 1


def test_redaction_can_be_turned_off() -> None:
    with capture_spans(TelemetryConfig(exporter_type="memory", redact_secrets=False)) as cap:
        with cap.manager.span("op", tenant_id="acme", attributes={"password": "visible"}):
            pass
        assert cap.spans()[0].attributes["password"] == "visible"


def test_bad_pattern_or_callback_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="redact_patterns"):
        TelemetryConfig(redact_patterns=("(unclosed",))
    with pytest.raises(ValueError, match="redact_callback"):
        TelemetryConfig(redact_callback="not callable")  # type: ignore[arg-type]


def test_the_key_cache_is_bounded() -> None:
    scrubber = Scrubber(max_cached_keys=64)
    for i in range(1000):
        assert not scrubber.is_secret(f"attr.{i}")
    assert scrubber.is_secret("password")
    assert len(scrubber._decisions) <= 64


def test_a_ten_megabyte_value_is_cut_to_the_configured_length(spans: SpanCapture) -> None:
    huge = "x" * (10 * 1024 * 1024)
    with spans.manager.span("big", tenant_id="acme") as span:
        span.set_attribute("payload", huge)
        span.add_event("blob", {"payload": huge})
        span.set_attribute("list", [huge, "short"])
    [exported] = spans.spans()
    limit = spans.manager.config.max_attribute_length
    assert exported.attributes["payload"] == "x" * limit
    assert exported.attributes["list"] == ("x" * limit, "short")
    assert exported.raw is not None
    assert exported.raw.events[0].attributes == {"payload": "x" * limit}


def test_max_attribute_length_is_configurable() -> None:
    with capture_spans(TelemetryConfig(exporter_type="memory", max_attribute_length=16)) as cap:
        with cap.manager.span("op", tenant_id="acme", attributes={"text": "y" * 100}):
            pass
        assert cap.spans()[0].attributes["text"] == "y" * 16
