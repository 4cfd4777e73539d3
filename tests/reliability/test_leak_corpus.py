"""The leak corpus: every secret form, through every API and real auto-instrumentation.

Each secret below goes through tenantrace's own APIs (``manager.span``,
``@trace_function``, ``get_tracer()``, the routing tracer, ``trace_query``) and
through REAL OpenTelemetry instrumentations of real clients (sqlite3 and
psycopg through ``opentelemetry-instrumentation-dbapi``, redis, httpx,
requests) talking to real servers on loopback (PostgreSQL, Redis, a local HTTP
server). Spans are exported over OTLP/gRPC to an in-process receiver that keeps
the request BYTES as they arrived, and the test searches those bytes (plain
and percent-encoded) for every secret: a decoder's view could hide a leak.

Every "clean" test has a positive control (the span arrived, the statement is
there with ``?``, the URL is there with ``REDACTED``), so it cannot pass by
exporting nothing. The leaks this corpus found (database error text, bound
parameters, percent-encoded names in text, escaped quotes, cookies, bytes and
pairs among captured arguments) are closed; their tests guard them.

With ``CI=true`` a missing service or instrumentation package fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import importlib
import socket
import sqlite3
import string
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leak_wire import HeaderServer, RawOtlpReceiver, WireSpan, leaked
from opentelemetry import propagate
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from optional_api import IN_CI, require_port
from pydantic import BaseModel

from tenantrace import (
    BatchExportConfig,
    TelemetryConfig,
    TelemetryManager,
    TenantRoutingTracerProvider,
    tenant_scope,
    trace_function,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import get_tracer, trace_query
from tenantrace.propagation import (
    EgressPolicy,
    TenantPropagator,
    baggage_scope,
    set_egress_policy,
)

# ------------------------------------------------------------------ the secrets

PASSWORD = "hunter2"
EMAIL = "ann@example.com"
INSERT = f"INSERT INTO users VALUES ('{EMAIL}', '{PASSWORD}')"
SELECT_BY_PASSWORD = f"SELECT email FROM users WHERE pw = '{PASSWORD}' AND email = '{EMAIL}'"
# A missing comma: the server's error quotes the literal after it.
MISSING_COMMA = f"INSERT INTO users VALUES ('{EMAIL}' '{PASSWORD}')"
SSN, OCTAL, ORACLE = "123_45_6789", "0o4711", "LeakOracleQuote14"
LITERAL_FORMS = [
    f"SELECT {SSN} AS ssn FROM users",
    f"SELECT {OCTAL} AS mode FROM users",
    f"SELECT q'[{ORACLE}]' AS note FROM users",
]
SQL_SECRETS = [PASSWORD, EMAIL, SSN, OCTAL, ORACLE]

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJsZWFrLWNvcnB1cyIsInRlbmFudCI6ImFjbWUifQ"
    ".TGVha0NvcnB1c1NpZ25hdHVyZVZhbHVlMDE"
)
AWS_KEY = "AKIALEAKCORPUS7X2Q9Z"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYLEAKCORPUS"
GITHUB = "ghp_LeakCorpusGithubToken0123456789abcde"  # ghp_ + 36
SLACK = "xoxb-1234567890-LeakCorpusSlack"
STRIPE = "sk_live_LeakCorpusStripeKey01"
GOOGLE = "AIzaLeakCorpusGoogleKey0123456789abcdef"  # AIza + 35
PEM_BODY = "MIIEowIBAAKCAQEAleakcorpusPemBody"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
DSN_PASSWORD = "PgDsnSecret9"
DSN = f"postgresql://postgres:{DSN_PASSWORD}@127.0.0.1:5432/test"
KV_PASSWORD = "PgKvSecret8"
KV_DSN = f"host=127.0.0.1 dbname=test user=postgres password={KV_PASSWORD}"
# Every credential shape the scrubber recognises in free text, each with its tell-tale.
SHAPED = {
    f"Authorization: Bearer {JWT}": JWT.split("."),
    f"token {JWT} expired": JWT.split("."),
    f"access key {AWS_KEY} denied": [AWS_KEY],
    f"aws_secret_access_key={AWS_SECRET}": [AWS_SECRET],
    f"github said {GITHUB}": [GITHUB],
    f"slack {SLACK}": [SLACK],
    f"stripe {STRIPE}": [STRIPE],
    f"maps {GOOGLE}": [GOOGLE],
    f"key file {PEM}": [PEM_BODY],
    f"cannot reach {DSN}": [DSN_PASSWORD],
    f"bad dsn {KV_DSN}": [KV_PASSWORD],
}
SHAPE_MESSAGE = " | ".join(SHAPED)
SHAPE_SECRETS = sorted({s for secrets in SHAPED.values() for s in secrets})

API_KEY = "SECRET123"
ENCODED_NAMES = {"api%5Fkey": "LeakEncApiKey", "pass%77ord": "LeakEncPassword"}
SHORT_NAMES = {
    "pass": "LeakShortPass",
    "pw": "LeakShortPw",
    "pin": "LeakShortPin",
    "otp": "LeakShortOtp",
    "sig": "LeakShortSig",
    "signature": "LeakShortSignature",
    "csrf": "LeakShortCsrf",
    "conn_str": "LeakShortConnStr",
}
URL_USER, URL_PASSWORD = "leakyuser", "LeakyPass77"
COOKIE, SET_COOKIE = "LeakCookieValue", "LeakSetCookieValue"
API_KEY_HEADER, AUTH_TOKEN_HEADER, CSRF_HEADER = "LeakXApiKey", "LeakXAuthToken", "LeakXCsrf"
BASIC = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
HTTP_HEADERS = {
    "Authorization": f"Bearer {JWT}",
    "Proxy-Authorization": f"Basic {BASIC}",
    "Cookie": f"session={COOKIE}",
    "X-Api-Key": API_KEY_HEADER,
    "X-Auth-Token": AUTH_TOKEN_HEADER,
    "X-CSRF-Token": CSRF_HEADER,
}
HTTP_SECRETS = [
    API_KEY,
    *ENCODED_NAMES.values(),
    *SHORT_NAMES.values(),
    URL_PASSWORD,
    BASIC,
    COOKIE,
    SET_COOKIE,
    API_KEY_HEADER,
    AUTH_TOKEN_HEADER,
    CSRF_HEADER,
    *JWT.split("."),
]
REDIS_PASSWORD = "RedisAclPw15"
BAGGAGE_EMAIL = "bob@example.org"


def _query(names: dict[str, str]) -> str:
    return "&".join(f"{name}={value}" for name, value in names.items()) + "&q=shoes"


PLAIN_QUERY = _query({"api_key": API_KEY, **SHORT_NAMES})
FULL_QUERY = _query({"api_key": API_KEY, **ENCODED_NAMES, **SHORT_NAMES})

# ------------------------------------------------------------------ fixtures


def _require_module(name: str) -> ModuleType:
    """The module; skipped locally when it is not installed, a failure in CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} is not installed ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def receiver() -> Iterator[RawOtlpReceiver]:
    collector = RawOtlpReceiver().start()
    yield collector
    collector.stop()


@pytest.fixture
def manager(receiver: RawOtlpReceiver) -> Iterator[TelemetryManager]:
    """A default-configured manager exporting over real OTLP/gRPC, installed process-wide."""
    telemetry = TelemetryManager(
        TelemetryConfig(
            service_name="leak-corpus",
            otlp_endpoint=receiver.endpoint,
            otlp_protocol="grpc",
            batch_config=BatchExportConfig(schedule_delay_millis=10, export_timeout_millis=5000),
        )
    )
    previous = install_manager(telemetry)
    try:
        yield telemetry
    finally:
        install_manager(previous)
        telemetry.shutdown(timeout_millis=2000)


@pytest.fixture
def provider(manager: TelemetryManager) -> TenantRoutingTracerProvider:
    """What auto-instrumentations are given: routed by tenant to ``manager``."""
    return TenantRoutingTracerProvider(manager)


def _wire(manager: TelemetryManager, receiver: RawOtlpReceiver) -> bytes:
    assert manager.force_flush(10_000)
    stats = manager.get_stats()
    assert stats["dropped_spans"] == 0, stats
    wire = receiver.wire()
    assert wire, "nothing was exported"
    return wire


class Leak(AssertionError):
    """A secret was found on the wire."""


def _assert_clean(wire: bytes, secrets: list[str]) -> None:
    found = leaked(wire, secrets)
    if found:
        raise Leak(f"secrets on the wire: {found}")


def _named(receiver: RawOtlpReceiver, name: str) -> list[WireSpan]:
    return [span for span in receiver.spans() if span.name == name]


def _exception_messages(receiver: RawOtlpReceiver) -> list[str]:
    return [
        str(attrs.get("exception.message"))
        for span in receiver.spans()
        for name, attrs in span.events
        if name == "exception"
    ]


@contextlib.contextmanager
def _dbapi(module: ModuleType, system: str, provider: Any, **options: Any) -> Iterator[None]:
    """``module.connect`` instrumented by opentelemetry-instrumentation-dbapi, for the block.

    opentelemetry-instrumentation-sqlite3 / -psycopg are thin wrappers of this
    call; their newest releases pin an older opentelemetry-instrumentation.
    """
    dbapi = _require_module("opentelemetry.instrumentation.dbapi")
    dbapi.trace_integration(module, "connect", system, tracer_provider=provider, **options)
    try:
        yield
    finally:
        dbapi.unwrap_connect(module, "connect")


# psycopg's own instrumentation reads the connection's attributes here.
PSYCOPG_ATTRIBUTES = {
    "database": "info.dbname",
    "port": "info.port",
    "host": "info.host",
    "user": "info.user",
}


@contextlib.contextmanager
def _instrumented(instrumentor: Any, provider: Any) -> Iterator[None]:
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


def _http_instrumentors() -> list[Any]:
    httpx_module = _require_module("opentelemetry.instrumentation.httpx")
    requests_module = _require_module("opentelemetry.instrumentation.requests")
    return [httpx_module.HTTPXClientInstrumentor(), requests_module.RequestsInstrumentor()]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ databases


def test_sqlite3_statements_through_the_dbapi_instrumentation(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    with _dbapi(sqlite3, "sqlite", provider), tenant_scope("acme"):
        conn = sqlite3.connect(":memory:")
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE users (email TEXT, pw TEXT)")
        cursor.execute(INSERT)
        cursor.execute(SELECT_BY_PASSWORD)
        assert cursor.fetchall() == [(EMAIL,)]
        for statement in LITERAL_FORMS:
            # 123_45_6789 and 0o4711 are not SQLite literals: the error quotes the token.
            with contextlib.suppress(sqlite3.OperationalError):
                cursor.execute(statement)
        conn.close()
    wire = _wire(manager, receiver)
    _assert_clean(wire, SQL_SECRETS)
    statements = {span.attributes.get("db.statement") for span in receiver.spans()}
    assert "INSERT INTO users VALUES (?, ?)" in statements
    assert "SELECT email FROM users WHERE pw = ? AND email = ?" in statements
    assert all(span.tenant == "acme" for span in receiver.spans())
    # The two errors quoting a literal were exported, the literal sanitized away.
    quoted = [m for m in _exception_messages(receiver) if "unrecognized token" in m]
    assert len(quoted) == 2 and all(m == "unrecognized token: ?" for m in quoted), quoted


def test_trace_query_sanitizes_every_literal_form(
    manager: TelemetryManager, receiver: RawOtlpReceiver
) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE users (email TEXT, pw TEXT)")
    with tenant_scope("acme"):
        for statement in [INSERT, SELECT_BY_PASSWORD]:
            with trace_query(statement, connection=conn):
                conn.execute(statement)
        for system in ("sqlite", "postgresql", "oracle.db", None):
            for statement in LITERAL_FORMS:
                with trace_query(statement, db_system=system):
                    pass
    conn.close()
    wire = _wire(manager, receiver)
    _assert_clean(wire, SQL_SECRETS)
    texts = {span.attributes.get("db.query.text") for span in receiver.spans()}
    assert "INSERT INTO users VALUES (?, ?)" in texts


@pytest.mark.postgres
def test_psycopg_statements_and_a_dsn_with_a_password(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    require_port("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    with (
        _dbapi(psycopg, "postgresql", provider, connection_attributes=PSYCOPG_ATTRIBUTES),
        tenant_scope("acme"),
    ):
        with psycopg.connect(DSN, autocommit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("CREATE TEMP TABLE users (email text, pw text)")
            cursor.execute(INSERT)
            cursor.execute(SELECT_BY_PASSWORD)
            assert cursor.fetchall() == [(EMAIL,)]
            cursor.execute("SELECT email FROM users WHERE pw = %s", (PASSWORD,))
            with trace_query(SELECT_BY_PASSWORD, connection=conn):
                cursor.execute(SELECT_BY_PASSWORD)
        # A real connection failure, and the DSN quoted by the application's own error.
        with (
            pytest.raises(psycopg.OperationalError),
            manager.span("connect.missing_db"),
        ):
            psycopg.connect(DSN.replace("/test", "/tenantrace_no_such_db")).close()
        with pytest.raises(ConnectionError), manager.span("connect.app_error"):
            raise ConnectionError(f"cannot reach {DSN} ({KV_DSN})")
    wire = _wire(manager, receiver)
    _assert_clean(wire, [PASSWORD, EMAIL, DSN_PASSWORD, KV_PASSWORD])
    statements = {span.attributes.get("db.statement") for span in receiver.spans()}
    assert "INSERT INTO users VALUES (?, ?)" in statements
    assert any(span.attributes.get("db.system") == "postgresql" for span in receiver.spans())
    assert _named(receiver, "connect.app_error")


@pytest.mark.redis
def test_redis_commands_auth_and_url_credentials(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    require_port("Redis", "127.0.0.1", 6379)
    instrumentation = _require_module("opentelemetry.instrumentation.redis")
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    user = f"tenantrace-leak-{uuid.uuid4().hex[:8]}"
    key = f"session:abc:{uuid.uuid4().hex[:8]}"
    admin = redis.Redis(host="127.0.0.1", port=6379)
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{REDIS_PASSWORD}"], keys=["session:*"], commands=["+@all"]
    )
    try:
        with _instrumented(instrumentation.RedisInstrumentor(), provider), tenant_scope("acme"):
            # No retries: redis-py retries a refused AUTH with backoff (seconds).
            client = redis.Redis(host="127.0.0.1", port=6379, retry=Retry(NoBackoff(), 0))
            client.execute_command("SET", key, PASSWORD)  # SET session:abc hunter2
            client.set(key, PASSWORD)
            assert client.get(key) == PASSWORD.encode()
            with client.pipeline() as pipe:
                pipe.set(key, PASSWORD).get(key)
                pipe.execute()
            client.execute_command("AUTH", user, REDIS_PASSWORD)
            # The default user has no password: the server refuses, quoting nothing.
            with pytest.raises(redis.RedisError):
                client.execute_command("AUTH", PASSWORD)
            by_url = redis.Redis.from_url(f"redis://{user}:{REDIS_PASSWORD}@127.0.0.1:6379/0")
            assert by_url.get(key) == PASSWORD.encode()
            by_url.close()
            client.close()
    finally:
        admin.delete(key)
        admin.acl_deluser(user)
        admin.close()
    wire = _wire(manager, receiver)
    _assert_clean(wire, [PASSWORD, REDIS_PASSWORD])
    statements = {span.attributes.get("db.statement") for span in receiver.spans()}
    assert "SET ? ?" in statements
    assert "AUTH ? ?" in statements


# ------------------------------------------------------------------ HTTP clients


@pytest.fixture
def http_server() -> Iterator[HeaderServer]:
    server = HeaderServer(cookie=SET_COOKIE)
    yield server
    server.stop()


@pytest.fixture
def capture_all_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrumentations record every request and response header (read at instrument())."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", ".*")


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: loopback only
    return session


@pytest.mark.usefixtures("capture_all_headers")
def test_httpx_and_requests_urls_userinfo_and_headers(
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
    http_server: HeaderServer,
) -> None:
    base = f"http://127.0.0.1:{http_server.port}"
    urls = [
        f"{base}/search?{FULL_QUERY}",
        f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{http_server.port}/private?{PLAIN_QUERY}",
    ]

    async def async_calls() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            for url in urls:
                (await client.get(url, headers=HTTP_HEADERS)).raise_for_status()

    with contextlib.ExitStack() as stack:
        for instrumentor in _http_instrumentors():
            stack.enter_context(_instrumented(instrumentor, provider))
        with tenant_scope("acme"), httpx.Client(trust_env=False) as client, _session() as session:
            for url in urls:
                client.get(url, headers=HTTP_HEADERS).raise_for_status()
                session.get(url, headers=HTTP_HEADERS, timeout=5).raise_for_status()
                session.post(url, data={"password": PASSWORD}, headers=HTTP_HEADERS, timeout=5)
            asyncio.run(async_calls())
    assert len(http_server.received()) == 4 * len(urls)
    wire = _wire(manager, receiver)
    _assert_clean(wire, [*HTTP_SECRETS, PASSWORD])
    client_spans = [s for s in receiver.spans() if s.kind == PbSpan.SPAN_KIND_CLIENT]
    assert len(client_spans) == 4 * len(urls)
    shown = " ".join(
        str(s.attributes.get("url.full") or s.attributes.get("http.url")) for s in client_spans
    )
    # The clients normalise api%5Fkey / pass%77ord (unreserved characters) before the span.
    for span in client_spans:
        url = str(span.attributes.get("url.full") or span.attributes.get("http.url"))
        assert "api_key=REDACTED" in url, url
    assert "password=REDACTED" in shown
    assert "q=shoes" in shown  # an ordinary parameter is kept
    # The header capture was on: the headers are there, their values redacted.
    assert any("http.request.header.authorization" in s.attributes for s in client_spans)


@trace_function(name="fetch", tenant_id="acme")
def _fetch(url: str) -> None:
    """Application code: a 404 raised by ``raise_for_status()``, whose message quotes the URL."""
    with httpx.Client(trust_env=False) as client:
        client.get(url).raise_for_status()


def _urllib3_get(url: str) -> None:
    import urllib3

    with get_tracer("app").start_as_current_span("urllib3"):
        urllib3.PoolManager().request("GET", url, retries=0, timeout=5)


def _failing_calls(
    query: str, http_port: int
) -> Iterator[tuple[str, Callable[[], object], type[Exception]]]:
    closed = f"http://127.0.0.1:{_closed_port()}/down?{query}"
    urls = [
        # TLS to a plain-HTTP port: the handshake fails after the URL was parsed.
        f"https://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{http_port}/tls?{query}",
        closed,
    ]
    for url in urls:
        yield "httpx", lambda url=url: httpx.get(url, timeout=5, trust_env=False), httpx.HTTPError
        yield (
            "requests",
            lambda url=url: _session().get(url, timeout=5),
            requests.RequestException,
        )
    missing = f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{http_port}/missing?{query}"
    yield "raise_for_status", lambda: _fetch(missing), httpx.HTTPStatusError
    yield "urllib3", lambda: _urllib3_get(closed), Exception


@pytest.mark.usefixtures("capture_all_headers")
def test_failing_http_calls_record_their_errors_without_secrets(
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
    http_server: HeaderServer,
) -> None:
    with contextlib.ExitStack() as stack:
        for instrumentor in _http_instrumentors():
            stack.enter_context(_instrumented(instrumentor, provider))
        with tenant_scope("acme"):
            for _, call, error in _failing_calls(PLAIN_QUERY, http_server.port):
                with pytest.raises(error):
                    call()
    wire = _wire(manager, receiver)
    _assert_clean(wire, [API_KEY, *SHORT_NAMES.values(), URL_PASSWORD])
    messages = _exception_messages(receiver)
    # requests, urllib3 and raise_for_status() quote the URL: the text was there.
    assert sum("api_key=[REDACTED]" in m for m in messages) >= 4, messages
    assert any("for url 'http://127.0.0.1:" in m for m in messages), messages


@pytest.mark.parametrize("client", ["raise_for_status", "urllib3"])
def test_errors_quoting_percent_encoded_secret_names(
    client: str,
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    http_server: HeaderServer,
) -> None:
    with tenant_scope("acme"):
        for name, call, error in _failing_calls(_query(ENCODED_NAMES), http_server.port):
            if name == client:
                with pytest.raises(error):
                    call()
    wire = _wire(manager, receiver)
    assert any("Fkey=" in m for m in _exception_messages(receiver))
    _assert_clean(wire, list(ENCODED_NAMES.values()))


def test_baggage_reaches_only_hosts_the_egress_policy_allows(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    allowed = HeaderServer("127.0.0.1")
    other = HeaderServer("127.0.0.2")  # another loopback address, not on the allowlist
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(TenantPropagator())
    set_egress_policy(EgressPolicy.allow({"127.0.0.1"}))
    try:
        with contextlib.ExitStack() as stack:
            for instrumentor in _http_instrumentors():
                stack.enter_context(_instrumented(instrumentor, provider))
            urls = {
                "allowed": f"http://127.0.0.1:{allowed.port}/in",
                # The same server under a name the policy does not list.
                "by-name": f"http://localhost:{allowed.port}/out",
                "other": f"http://127.0.0.2:{other.port}/out",
                "userinfo": f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{allowed.port}/out",
            }
            with (
                tenant_scope("acme"),
                baggage_scope({"user.email": BAGGAGE_EMAIL}),
                httpx.Client(trust_env=False) as client,
                _session() as session,
            ):
                for url in urls.values():
                    client.get(url).raise_for_status()
                    session.get(url, timeout=5).raise_for_status()
    finally:
        set_egress_policy(None)
        propagate.set_global_textmap(previous)
        allowed.stop()
        other.stop()
    inside = [r for r in allowed.received() if r.path == "/in"]
    outside = [r for r in allowed.received() if r.path == "/out"] + other.received()
    assert len(inside) == 2
    assert len(outside) == 6
    for request in inside:  # the positive control: the allowed host gets the tenant
        assert "tenant.id=acme" in request.headers.get("baggage", ""), request
        assert "user.email=" in request.headers.get("baggage", ""), request
        assert "traceparent" in request.headers
    for request in outside:
        baggage = request.headers.get("baggage", "")
        assert "tenant.id" not in baggage, request
        assert "user.email" not in baggage, request
        assert BAGGAGE_EMAIL not in " ".join(request.headers.values()), request
        assert "traceparent" in request.headers  # the trace context still goes
    assert manager.force_flush(10_000)


# ------------------------------------------------------------------ tenantrace's own APIs


def test_credentials_in_exceptions_statuses_events_and_links_of_every_api(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    message = SHAPE_MESSAGE
    link = Link(SpanContext(0x1234, 0x5678, True, TraceFlags(1)), {"note": message})

    def decorate(span: Any) -> None:
        span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("retry", {"detail": message, "details": [message, "ok"]})

    @trace_function(name="trace_function", tenant_id="acme")
    def traced() -> None:
        raise RuntimeError(message)

    @trace_function(name="trace_function.async", tenant_id="acme")
    async def traced_async() -> None:
        raise RuntimeError(message)

    @trace_function(name="trace_function.status", tenant_id="acme")
    def traced_status() -> None:
        from opentelemetry import trace

        decorate(trace.get_current_span())

    with pytest.raises(RuntimeError), manager.span("manager.span", tenant_id="acme", links=[link]):
        raise RuntimeError(message)
    with manager.span("manager.status", tenant_id="acme", links=[link]) as span:
        decorate(span)
        span.record_exception(ValueError(message))
    with pytest.raises(RuntimeError):
        traced()
    with pytest.raises(RuntimeError):
        asyncio.run(traced_async())
    traced_status()
    tracers = {
        "get_tracer": get_tracer("leak.corpus"),
        "routing": provider.get_tracer("third.party.library"),
        "manager.get_tracer": manager.get_tracer("leak.corpus.manager"),
    }
    with tenant_scope("acme"):
        for name, tracer in tracers.items():
            with pytest.raises(RuntimeError), tracer.start_as_current_span(name, links=[link]):
                raise RuntimeError(message)
            with tracer.start_as_current_span(f"{name}.status", kind=SpanKind.CLIENT) as span:
                decorate(span)
            span = tracer.start_span(f"{name}.manual")
            span.record_exception(KeyError(message))
            decorate(span)
            span.end()
    conn = sqlite3.connect(":memory:")
    with (
        tenant_scope("acme"),
        pytest.raises(sqlite3.OperationalError),
        trace_query("SELECT * FROM missing_table", connection=conn),
    ):
        conn.execute("SELECT * FROM missing_table")
        raise AssertionError("unreachable")
    with tenant_scope("acme"), pytest.raises(RuntimeError), trace_query("SELECT 1"):
        raise RuntimeError(message)
    conn.close()
    wire = _wire(manager, receiver)
    _assert_clean(wire, SHAPE_SECRETS)
    names = {span.name for span in receiver.spans()}
    for expected in (
        "manager.span",
        "trace_function",
        "trace_function.async",
        "get_tracer",
        "routing",
        "manager.get_tracer",
    ):
        assert expected in names
    messages = _exception_messages(receiver)
    assert len(messages) >= 8
    assert all("[REDACTED]" in m for m in messages if "missing_table" not in m)


@dataclasses.dataclass
class Credentials:
    username: str
    password: str
    extra: Any = None


@dataclasses.dataclass
class ServiceConfig:
    name: str
    api_key: str
    account: Credentials
    endpoints: list[Any]


class DbLogin(NamedTuple):
    user: str
    password: str


class Login(BaseModel):
    user: str
    password: str
    otp: str


CAPTURED = {
    "password": "LeakArgPassword",
    "api_key": "LeakArgApiKey",
    "pass": "LeakArgPass",
    "pw": "LeakArgPw",
    "pin": "LeakArgPin",
    "otp": "LeakArgOtp",
    "sig": "LeakArgSig",
    "signature": "LeakArgSignature",
    "csrf": "LeakArgCsrf",
    "conn_str": "LeakArgConnStr",
    "client_secret": "LeakArgClientSecret",
    "Authorization": "LeakArgAuthorization",
}


def test_captured_arguments_are_redacted_at_any_depth(
    manager: TelemetryManager, receiver: RawOtlpReceiver
) -> None:
    captured = ["payload", "items", "config", "login", "password", "header"]

    @trace_function(name="capture", tenant_id="acme", capture_args=captured)
    def handle(
        *, payload: Any, items: Any, config: Any, login: Any, password: Any, header: Any
    ) -> None:
        return None

    handle(
        payload={"user": "visible-user", **CAPTURED, "nested": {"deeper": dict(CAPTURED)}},
        items=[dict(CAPTURED), ({"password": CAPTURED["password"]},), [{"pw": CAPTURED["pw"]}]],
        config=ServiceConfig(
            name="visible-service",
            api_key=CAPTURED["api_key"],
            account=Credentials("visible-login", CAPTURED["password"], {"otp": CAPTURED["otp"]}),
            endpoints=[{"dsn": DSN}, Credentials("u", CAPTURED["pass"])],
        ),
        login=Login(user="visible-pydantic", password=CAPTURED["password"], otp=CAPTURED["otp"]),
        password=PASSWORD,
        header=f"Bearer {JWT}",
    )
    wire = _wire(manager, receiver)
    _assert_clean(wire, [*CAPTURED.values(), PASSWORD, DSN_PASSWORD, *JWT.split(".")])
    [span] = _named(receiver, "capture")
    shown = " ".join(str(v) for v in span.attributes.values())
    for visible in ("visible-user", "visible-service", "visible-login", "visible-pydantic"):
        assert visible in shown


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param([(b"authorization", f"Bearer {JWT}".encode())], id="asgi-raw-headers"),
        pytest.param(b"password=LeakBytesPair&page=2", id="bytes-form-body"),
        pytest.param({b"password": "LeakBytesKey"}, id="bytes-key"),
        pytest.param([("api_key", "LeakTuplePair")], id="params-as-pairs"),
        pytest.param({"db": DbLogin("app", "LeakNamedTuple")}, id="namedtuple"),
    ],
)
def test_captured_bytes_pairs_and_namedtuples(
    manager: TelemetryManager, receiver: RawOtlpReceiver, argument: Any
) -> None:
    @trace_function(name="capture", tenant_id="acme", capture_args=["argument"])
    def handle(argument: Any) -> None:
        return None

    handle(argument)
    wire = _wire(manager, receiver)
    assert _named(receiver, "capture")
    secrets = ["LeakBytesPair", "LeakBytesKey", "LeakTuplePair", "LeakNamedTuple"]
    _assert_clean(wire, [*secrets, *JWT.split(".")])


# ------------------------------------------------------------------ known leaks (src bugs)

SQL_ERROR_BUG = (
    "src bug: the exception text of a database span is only redacted by credential "
    "shape; the driver's error quotes the statement's literals (SQLite: near "
    "\"'hunter2'\"; PostgreSQL: LINE 1: <statement>, DETAIL: Key (email)=(...))"
)


@pytest.mark.parametrize("api", ["dbapi", "trace_query"])
def test_sqlite3_error_quoting_a_literal(
    api: str,
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
) -> None:
    with _dbapi(sqlite3, "sqlite", provider), tenant_scope("acme"):
        conn = sqlite3.connect(":memory:")
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE users (email TEXT, pw TEXT)")
        with pytest.raises(sqlite3.OperationalError):
            if api == "dbapi":
                cursor.execute(MISSING_COMMA)
            else:
                with trace_query(MISSING_COMMA, connection=conn):
                    conn.execute(MISSING_COMMA)
        conn.close()
    messages = _exception_messages_after_flush(manager, receiver)
    assert any("syntax error" in m for m in messages)  # the error is there
    _assert_clean(receiver.wire(), [PASSWORD])


def _exception_messages_after_flush(
    manager: TelemetryManager, receiver: RawOtlpReceiver
) -> list[str]:
    _wire(manager, receiver)
    return _exception_messages(receiver)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(f"SELECT '{PASSWORD}'::int", id="invalid-input"),
        pytest.param(INSERT, id="duplicate-key"),
        pytest.param(INSERT[:-1], id="syntax-error"),
        pytest.param(f"SELECT {SSN}, {OCTAL}", id="numeric-literal-forms"),
    ],
)
@pytest.mark.parametrize("api", ["dbapi", "trace_query"])
def test_postgresql_error_echoing_the_statement(
    api: str,
    statement: str,
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
) -> None:
    require_port("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    with (
        _dbapi(psycopg, "postgresql", provider, connection_attributes=PSYCOPG_ATTRIBUTES),
        tenant_scope("acme"),
        psycopg.connect(DSN, autocommit=True) as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("CREATE TEMP TABLE users (email text PRIMARY KEY, pw text)")
        cursor.execute("INSERT INTO users VALUES (%s, %s)", (EMAIL, PASSWORD))
        with pytest.raises(psycopg.Error):
            if api == "dbapi":
                cursor.execute(statement)
            else:
                with trace_query(statement, connection=conn):
                    cursor.execute(statement)
    assert _exception_messages_after_flush(manager, receiver)
    _assert_clean(receiver.wire(), [PASSWORD, EMAIL, SSN, OCTAL])


def test_captured_statement_parameters(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    with _dbapi(sqlite3, "sqlite", provider, capture_parameters=True), tenant_scope("acme"):
        conn = sqlite3.connect(":memory:")
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE users (email TEXT, pw TEXT)")
        cursor.execute("INSERT INTO users VALUES (?, ?)", (EMAIL, PASSWORD))
        conn.close()
    wire = _wire(manager, receiver)
    assert any("db.statement.parameters" in s.attributes for s in receiver.spans())
    _assert_clean(wire, [PASSWORD, EMAIL])


# ------------------------------------------------------------------ properties

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# (word, stands alone): a word that must stand alone needs separators around it.
_KEY_WORDS = [
    ("password", False),
    ("passwd", False),
    ("passphrase", False),
    ("secret", False),
    ("client_secret", False),
    ("api_key", False),
    ("apikey", False),
    ("access_key", False),
    ("private_key", False),
    ("token", False),
    ("access_token", False),
    ("refresh-token", False),
    ("authorization", False),
    ("cookie", False),
    ("set-cookie", False),
    ("credential", False),
    ("credentials", False),
    ("connection_string", False),
    ("conn_str", False),
    ("session_key", False),
    ("sessionid", False),
    ("signature", False),
    ("csrf", False),
    ("xsrf", False),
    ("pwd", True),
    ("pw", True),
    ("pass", True),
    ("pin", True),
    ("otp", True),
    ("sig", True),
    ("auth", True),
    ("jwt", True),
    ("bearer", True),
    ("dsn", True),
]


@st.composite
def secret_keys(draw: st.DrawFn) -> str:
    word, alone = draw(st.sampled_from(_KEY_WORDS))
    word = "".join(c.upper() if draw(st.booleans()) else c for c in word)
    prefix = draw(st.sampled_from(["", "db.", "http.request.header.", "app.user.", "x-", "my_"]))
    suffixes = ["", ".value", "_raw", "-v2"] if alone else ["", ".value", "_raw", "-v2", "s"]
    return prefix + word + draw(st.sampled_from(suffixes))


# Unique enough never to occur in the request by chance; any characters after it.
secret_values = st.builds(
    lambda body: "LeakV" + body,
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=4, max_size=24),
)


@PROPERTY
@given(
    key=secret_keys(),
    value=secret_values,
    where=st.sampled_from(["span", "event", "link", "list"]),
    api=st.sampled_from(["manager", "routing"]),
)
def test_any_secret_value_under_any_secret_key_stays_off_the_wire(  # noqa: PLR0917 - fixtures and strategies
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
    key: str,
    value: str,
    where: str,
    api: str,
) -> None:
    receiver.clear()
    attributes: dict[str, Any] = {key: [value, "x"] if where == "list" else value}
    link = Link(SpanContext(0x1234, 0x5678, True, TraceFlags(1)), attributes)
    links = [link] if where == "link" else []
    if api == "manager":
        scope: Any = manager.span("op", tenant_id="acme", links=links)
    else:
        scope = provider.get_tracer("lib").start_as_current_span("op", links=links)
    with tenant_scope("acme"), scope as span:
        if where in ("span", "list"):
            span.set_attributes(attributes)
        elif where == "event":
            span.add_event("e", attributes)
    wire = _wire(manager, receiver)
    assert leaked(wire, [value]) == [], (key, value, where)
    assert key.encode() in wire  # the key is kept: redacted, not silently removed


_QUERY_NAMES = sorted(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "pin",
        "otp",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "api-key",
        "sig",
        "signature",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "AWSAccessKeyId",
        "csrf",
        "csrf_token",
        "xsrf_token",
        "session_id",
        "sessionid",
        "auth",
        "authorization",
        "conn_str",
        "connection_string",
        "dsn",
        "jwt",
        "key",
        "code",
        "session",
        "state",
    }
)


@st.composite
def query_names(draw: st.DrawFn) -> str:
    """A secret parameter name in any case, any of its characters percent-encoded."""
    out = []
    for letter in draw(st.sampled_from(_QUERY_NAMES)):
        char = letter.upper() if draw(st.booleans()) else letter
        if draw(st.integers(0, 3)) == 0:
            encoded = f"%{ord(char):02X}"
            char = encoded.lower() if draw(st.booleans()) else encoded
        out.append(char)
    return "".join(out)


query_values = st.builds(
    lambda body: "LeakQ" + body,
    st.text(string.ascii_letters + string.digits + "-._~!$'()*+,;:@/?%", min_size=4, max_size=24),
)


@PROPERTY
@given(
    name=query_names(),
    value=query_values,
    key=st.sampled_from(["url.full", "http.url", "url.original", "http.target", "url.query"]),
    position=st.sampled_from(["first", "middle", "last"]),
    on_event=st.booleans(),
)
def test_any_spelling_of_a_secret_query_parameter_stays_off_the_wire(  # noqa: PLR0917 - fixtures and strategies
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    provider: TenantRoutingTracerProvider,
    name: str,
    value: str,
    key: str,
    position: str,
    on_event: bool,
) -> None:
    receiver.clear()
    if key == "url.query":  # a '?' in a bare query: test_a_bare_url_query_holding_a_question_mark
        value = value.replace("?", "")
    pairs = {"first": [f"{name}={value}", "page=2"], "last": ["page=2", f"{name}={value}"]}
    query = "&".join(pairs.get(position, ["page=2", f"{name}={value}", "q=shoes"]))
    url = {
        "url.query": query,
        "http.target": f"/v1/items?{query}",
    }.get(key, f"https://api.example.com/v1/items?{query}")
    tracer = provider.get_tracer("opentelemetry.instrumentation.some_client")
    with (
        tenant_scope("acme"),
        tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as span,
    ):
        if on_event:
            span.add_event("redirect", {key: url})
        else:
            span.set_attribute(key, url)
    wire = _wire(manager, receiver)
    assert leaked(wire, [value]) == [], (name, value, key)
    assert b"page=2" in wire


def test_a_bare_url_query_holding_a_question_mark(
    manager: TelemetryManager, receiver: RawOtlpReceiver, provider: TenantRoutingTracerProvider
) -> None:
    tracer = provider.get_tracer("opentelemetry.instrumentation.some_server")
    with (
        tenant_scope("acme"),
        tracer.start_as_current_span("GET /login", kind=SpanKind.SERVER) as span,
    ):
        span.set_attribute("url.query", "api_key=LeakQueryKey&next=/home?tab=1")
    wire = _wire(manager, receiver)
    assert b"next=/home" in wire
    _assert_clean(wire, ["LeakQueryKey"])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_B64URL = string.ascii_letters + string.digits + "-_"
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


@st.composite
def shaped_credentials(draw: st.DrawFn) -> tuple[str, str]:  # noqa: PLR0911 - one per kind
    """(text holding a credential by its shape, the part that must not be exported)."""
    kind = draw(
        st.sampled_from(
            ["jwt", "bearer", "basic", "aws", "github", "slack", "stripe", "google", "pair", "url"]
        )
    )
    tail = lambda alphabet, lo, hi: draw(st.text(alphabet, min_size=lo, max_size=hi))  # noqa: E731
    if kind == "jwt":
        claims = draw(st.dictionaries(st.text(_ALNUM, min_size=1, max_size=6), st.integers()))
        payload = _b64url(repr(claims).replace("'", '"').encode() + b"LeakJwt")
        token = f"eyJhbGciOiJIUzI1NiJ9.{payload}.{tail(_B64URL, 0, 43)}"
        return token, payload
    if kind == "bearer":
        token = "LeakB" + tail(_ALNUM + "-._~+/", 3, 40)
        return f"{draw(st.sampled_from(['Bearer', 'bearer', 'Token']))} {token}", token
    if kind == "basic":
        token = base64.b64encode(f"user:LeakBasic{tail(_ALNUM, 1, 12)}".encode()).decode()
        return f"Basic {token}", token
    if kind == "aws":
        prefix = draw(st.sampled_from(["AKIA", "ASIA", "AROA", "AIDA", "ABIA", "ACCA"]))
        token = prefix + "LEAK" + tail(_UPPER_DIGITS, 12, 12)
        return token, token
    if kind == "github":
        token = draw(st.sampled_from(["ghp_", "gho_", "ghs_"])) + "Leak" + tail(_ALNUM, 32, 40)
        return token, token
    if kind == "slack":
        token = draw(st.sampled_from(["xoxb-", "xoxp-"])) + "Leak" + tail(_ALNUM + "-", 6, 30)
        return token, token
    if kind == "stripe":
        token = draw(st.sampled_from(["sk_live_", "rk_test_"])) + "Leak" + tail(_ALNUM, 12, 30)
        return token, token
    if kind == "google":
        token = "AIza" + "Leak" + tail(_ALNUM + "_-", 31, 31)
        return token, token
    if kind == "pair":
        name = draw(st.sampled_from(["password", "PASSWORD", "pwd", "secret", "api_key", "token"]))
        value = "LeakPair" + tail(_ALNUM + "!#$%()*+-./@^_|~", 1, 20)
        sep = draw(st.sampled_from(["=", ": ", " = ", '": "']))
        return f"{name}{sep}{value}", value
    user_password = "LeakUrl" + tail(_ALNUM, 1, 12)
    scheme = draw(st.sampled_from(["https", "postgresql", "redis", "amqp"]))
    return f"{scheme}://svc:{user_password}@db.internal:5432/x", user_password


@PROPERTY
@given(
    credential=shaped_credentials(),
    before=st.sampled_from(["", "failed: ", "upstream said (", "'", '"', "\n", "x=1 "]),
    after=st.sampled_from(["", " rejected", ")", ".", "'", '"', "\n", ", retrying"]),
    where=st.sampled_from(["exception", "status", "event", "link"]),
)
def test_any_credential_shape_in_free_text_stays_off_the_wire(  # noqa: PLR0917 - fixtures and strategies
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    credential: tuple[str, str],
    before: str,
    after: str,
    where: str,
) -> None:
    receiver.clear()
    shaped, secret = credential
    text = f"{before}{shaped}{after}"
    links = [Link(SpanContext(0x1234, 0x5678, True, TraceFlags(1)), {"note": text})]
    with (
        contextlib.suppress(RuntimeError),
        manager.span("op", tenant_id="acme", links=links if where == "link" else None) as span,
    ):
        if where == "exception":
            raise RuntimeError(text)
        if where == "status":
            span.set_status(Status(StatusCode.ERROR, text))
        elif where == "event":
            span.add_event("e", {"detail": text})
    wire = _wire(manager, receiver)
    assert leaked(wire, [secret]) == [], (text, where)
    assert _named(receiver, "op")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(
            '{"password": "ab\\"LeakEscapedQuote"}',
            "LeakEscapedQuote",
            id="json-escaped-quote",
        ),
        pytest.param(
            "request headers: Cookie: session=LeakCookieText; theme=dark",
            "LeakCookieText",
            id="cookie-header-text",
        ),
    ],
)
def test_free_text_pairs_the_scrubber_misreads(
    manager: TelemetryManager, receiver: RawOtlpReceiver, text: str, secret: str
) -> None:
    with contextlib.suppress(RuntimeError), manager.span("op", tenant_id="acme"):
        raise RuntimeError(text)
    wire = _wire(manager, receiver)
    assert _exception_messages(receiver)
    _assert_clean(wire, [secret])


_SECRET_ARG_KEYS = [word for word, _ in _KEY_WORDS]
_leaf = st.one_of(st.integers(), st.text(_ALNUM, max_size=8), st.none())


def _nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "items", "meta", "user"]), children, max_size=3),
        st.builds(Credentials, st.text(_ALNUM, max_size=6), st.just("LeakDcPassword"), children),
    )


@PROPERTY
@given(
    shape=st.recursive(_leaf, _nest, max_leaves=8),
    key=st.sampled_from(_SECRET_ARG_KEYS),
    value=secret_values,
    depth=st.integers(0, 2),
)
def test_any_nesting_of_a_secret_in_captured_arguments_stays_off_the_wire(  # noqa: PLR0917 - fixtures and strategies
    manager: TelemetryManager,
    receiver: RawOtlpReceiver,
    shape: Any,
    key: str,
    value: str,
    depth: int,
) -> None:
    receiver.clear()
    planted: Any = {key: value, "sibling": shape}
    for _ in range(depth):
        planted = [{"wrapper": planted}]

    @trace_function(name="capture", tenant_id="acme", capture_args=["argument"])
    def handle(argument: Any) -> None:
        return None

    handle(planted)
    wire = _wire(manager, receiver)
    assert leaked(wire, [value, "LeakDcPassword"]) == [], (key, planted)
    assert b"sibling" in wire or b"{'wrapper': ...}" in wire  # shown, or cut at depth 4
