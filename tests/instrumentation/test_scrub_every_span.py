"""The export path scrubs every span, whoever made it: URLs, statements, free text, arguments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tenantrace import TelemetryConfig, tenant_scope, trace_function
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans() as capture:
        yield capture


def _everything(span: CapturedSpan) -> str:
    assert span.raw is not None
    raw = span.raw
    parts = [
        json.dumps(dict(raw.attributes or {}), default=str),
        str(raw.status.description),
        *(json.dumps(dict(e.attributes or {}), default=str) for e in raw.events),
        *(json.dumps(dict(link.attributes or {}), default=str) for link in raw.links),
    ]
    return "\n".join(parts)


def test_an_auto_instrumented_client_span_loses_its_url_secrets(spans: SpanCapture) -> None:
    tracer = trace.get_tracer("opentelemetry.instrumentation.httpx")
    with (
        tenant_scope("acme"),
        tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "url.full": "https://bob:hunter2@api.example.com/v1?api%5Fkey=SECRET123&page=2",
                "http.url": "https://api.example.com/v1?token=SECRET124",
                "http.target": "/v1?pass%77ord=SECRET125",
                "url.query": "sig=SECRET126&q=shoes",
                "server.address": "bob:hunter2@api.example.com",
            },
        ),
    ):
        pass
    exported = spans.one("GET")
    text = _everything(exported)
    for secret in ("hunter2", "SECRET123", "SECRET124", "SECRET125", "SECRET126"):
        assert secret not in text
    assert exported.attributes["url.query"] == "sig=REDACTED&q=shoes"
    assert exported.attributes["server.address"] == "api.example.com"


def test_a_statement_from_any_instrumentation_is_sanitized(spans: SpanCapture) -> None:
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlite3")
    statement = "INSERT INTO users VALUES ('ann@example.com', 'hunter2', 123_45_6789)"
    with tracer.start_as_current_span(
        "INSERT", kind=SpanKind.CLIENT, attributes={"db.statement": statement}
    ):
        pass
    exported = spans.one("INSERT")
    assert exported.attributes["db.statement"] == "INSERT INTO users VALUES (?, ?, ?)"


def test_statements_are_kept_when_the_user_opts_out() -> None:
    config = TelemetryConfig(exporter_type="memory", sanitize_db_statements=False)
    with capture_spans(config) as spans:
        tracer = trace.get_tracer("lib")
        with tracer.start_as_current_span(
            "q", attributes={"db.query.text": "SELECT 1 WHERE a = 'x'"}
        ):
            pass
        assert spans.one("q").attributes["db.query.text"] == "SELECT 1 WHERE a = 'x'"


def test_exception_text_and_descriptions_lose_credentials(spans: SpanCapture) -> None:
    tracer = trace.get_tracer("lib")
    with pytest.raises(PermissionError), tracer.start_as_current_span("call"):
        raise PermissionError(f"rejected Authorization: Bearer {JWT} for key {AWS}")
    with tracer.start_as_current_span("described") as span:
        span.set_status(Status(StatusCode.ERROR, f"login failed: password=hunter2 token {JWT}"))
    for name in ("call", "described"):
        text = _everything(spans.one(name))
        for secret in (JWT, AWS, "hunter2"):
            assert secret not in text, (name, text)


def test_event_and_link_attributes_are_judged_by_shape(spans: SpanCapture) -> None:
    tracer = trace.get_tracer("lib")
    with tracer.start_as_current_span("first") as first:
        pass
    link = trace.Link(first.get_span_context(), {"note": f"copied from Bearer {JWT}"})
    with tracer.start_as_current_span("second", links=[link]) as span:
        span.add_event(
            "retry", {"detail": "conn postgresql://app:hunter2@db/x", "list": (AWS, "ok")}
        )
    text = _everything(spans.one("second"))
    for secret in (JWT, AWS, "hunter2"):
        assert secret not in text


def test_a_status_description_the_user_set_stands_but_loses_its_secrets(
    spans: SpanCapture,
) -> None:
    with spans.manager.span("op") as span:
        span.set_status(Status(StatusCode.ERROR, "quota exceeded for tenant"))
    assert spans.one("op").raw.status.description == "quota exceeded for tenant"  # type: ignore[union-attr]


@dataclass
class Login:
    user: str
    password: str


class Settings:  # a pydantic-like model
    def model_dump(self) -> dict[str, object]:
        return {"endpoint": "https://db", "conn_str": "Server=db;Password=hunter3"}


def test_captured_arguments_are_redacted_at_any_depth(spans: SpanCapture) -> None:
    @trace_function(capture_args=("payload", "login", "settings", "note"))
    def handle(payload: dict[str, object], login: Login, settings: Settings, note: str) -> None:
        return None

    handle(
        {
            "user": "ann",
            "auth": {"password": "hunter2", "api_key": "k-123456"},
            "items": [1, {"otp": "999111"}],
        },
        Login("bob", "hunter4"),
        Settings(),
        f"forwarded Bearer {JWT}",
    )
    [exported] = spans.spans()
    text = _everything(exported)
    for secret in ("hunter2", "k-123456", "999111", "hunter3", "hunter4", JWT):
        assert secret not in text, text
    assert "ann" in text and "bob" in text  # what is not secret is still shown
