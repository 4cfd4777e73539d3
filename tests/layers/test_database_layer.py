"""``trace_query`` against real sqlite3 and the PostgreSQL on this machine."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import INVALID_SPAN

from tenantrace import TelemetryConfig, TelemetryLevel, tenant_scope
from tenantrace.layers import record_rows, trace_query
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"


@pytest.fixture
def sqlite_db() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE entities (tenant_id TEXT, name TEXT, score INTEGER)")
    yield db
    db.close()


def test_sqlite_insert_and_select_whole_spans(
    spans: SpanCapture, sqlite_db: sqlite3.Connection
) -> None:
    insert = "INSERT INTO entities VALUES ('acme', 'LEAKalpha', 41), ('acme', 'LEAKbeta', 42)"
    with tenant_scope("acme"):
        with trace_query(insert, "INSERT", "entities", connection=sqlite_db):
            sqlite_db.execute(insert)
        query = "SELECT name FROM entities WHERE tenant_id = ? AND score > 40"
        with trace_query(query, "SELECT", "entities", connection=sqlite_db) as span:
            rows = sqlite_db.execute(query, ("acme",)).fetchall()
            record_rows(len(rows))
            span.set_attribute("row_count", len(rows))  # the seed's own attribute
    assert len(rows) == 2
    inserted, selected = spans.spans()
    assert inserted == CapturedSpan(
        name="INSERT entities",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=inserted.trace_id,
        span_id=inserted.span_id,
        parent_id=None,
        kind="CLIENT",
        status="UNSET",
        attributes={
            "tenant.id": "acme",
            "db.system.name": "sqlite",
            "db.query.text": "INSERT INTO entities VALUES (?, ?, ?)",
            "db.operation.name": "INSERT",
            "db.collection.name": "entities",
        },
    )
    assert selected.name == "SELECT entities"
    assert selected.attributes == {
        "tenant.id": "acme",
        "db.system.name": "sqlite",
        "db.query.text": "SELECT name FROM entities WHERE tenant_id = ? AND score > ?",
        "db.operation.name": "SELECT",
        "db.collection.name": "entities",
        "db.response.returned_rows": 2,
        "row_count": 2,
    }


def test_sqlite_error_is_recorded_and_reraised(
    spans: SpanCapture, sqlite_db: sqlite3.Connection
) -> None:
    query = "SELECT * FROM missing_table WHERE secret = 'LEAKgamma'"
    with pytest.raises(sqlite3.OperationalError), trace_query(query, "SELECT", "missing_table"):
        sqlite_db.execute(query)
    [span] = spans.spans()
    assert span.status == "ERROR"
    assert span.attributes["error.type"] == "OperationalError"
    assert span.events == ["exception"]
    assert "LEAK" not in span.attributes["db.query.text"]


def test_operation_inferred_and_free_text_never_named(spans: SpanCapture) -> None:
    with trace_query("  (select 1)", None, None, tenant_id="acme"):
        pass
    with trace_query("DELETE FROM t WHERE a = 1", "not an op!", "bad table name; drop", "acme"):
        pass
    with trace_query("DELETE FROM t", "not an op!", None, "acme", db_system="sqlite"):
        pass
    inferred, refused, named = spans.spans()
    assert inferred.name == "SELECT" and inferred.attributes["db.operation.name"] == "SELECT"
    # Nothing says which database ran it: no system is claimed, the name is generic.
    assert refused.name == "db" and "db.system.name" not in refused.attributes
    assert "db.operation.name" not in refused.attributes
    assert "db.collection.name" not in refused.attributes
    assert named.name == "sqlite"  # the conventions' fallback: the system name


async def test_async_with_and_nesting_under_a_parent(spans: SpanCapture) -> None:
    with spans.manager.span("request", tenant_id="globex") as parent:
        async with trace_query("SELECT 1", "SELECT", "dual") as span:
            assert span.is_recording()
    child, root = spans.spans()
    assert child.parent_id == root.span_id
    assert child.tenant == "globex"
    assert parent.is_recording() is False  # ended


def test_level_gating_and_suppression_yield_no_span() -> None:
    with capture_spans(TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")) as cap:
        with trace_query("SELECT 1", "SELECT", "t") as span:
            assert span is INVALID_SPAN
        assert cap.spans() == []
    with capture_spans() as cap:
        with suppress_instrumentation(), trace_query("SELECT 1", "SELECT", "t") as span:
            assert span is INVALID_SPAN
        with trace_query("SELECT 1", "SELECT", "t", level=TelemetryLevel.BASIC):
            pass
        assert cap.names() == ["SELECT t"]


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def postgres(require_service: Callable[[str, str, int], None]) -> Iterator[object]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE accounts (id serial PRIMARY KEY, tenant text, email text, pin int)"
        )
        yield conn


@pytest.mark.postgres
def test_postgresql_queries_are_sanitised_in_the_exported_span(
    spans: SpanCapture, postgres: object
) -> None:
    import psycopg

    assert isinstance(postgres, psycopg.Connection)
    insert = (
        "INSERT INTO accounts (tenant, email, pin) VALUES "
        "('acme', 'LEAKa@example.com', 918273), ('acme', E'LEAK\\'b', 564738)"
    )
    select = "SELECT id, email FROM accounts WHERE tenant = %s AND pin IN (918273, 564738)"
    pg = {
        "db_system": "postgresql",
        "database": "test",
        "server_address": "127.0.0.1",
        "server_port": 5432,
    }
    with tenant_scope("acme"):
        with trace_query(insert, "INSERT", "accounts", **pg):  # type: ignore[arg-type]
            postgres.execute(insert)
        with trace_query(select, "SELECT", "accounts", **pg):  # type: ignore[arg-type]
            rows = postgres.execute(select, ("acme",)).fetchall()  # type: ignore[call-overload]
            record_rows(len(rows))
        bad = "SELECT * FROM accounts WHERE email = 'LEAKc' AND"
        with (
            pytest.raises(psycopg.errors.SyntaxError),
            trace_query(bad, "SELECT", "accounts", **pg),  # type: ignore[arg-type]
        ):
            postgres.execute(bad)  # type: ignore[call-overload]
    assert len(rows) == 2
    inserted, selected, failed = spans.spans()
    common = {
        "tenant.id": "acme",
        "db.system.name": "postgresql",
        "db.collection.name": "accounts",
        "db.namespace": "test",
        "server.address": "127.0.0.1",
        "server.port": 5432,
    }
    assert inserted.attributes == {
        **common,
        "db.operation.name": "INSERT",
        "db.query.text": "INSERT INTO accounts (tenant, email, pin) VALUES (?, ?, ?)",
    }
    assert selected.attributes == {
        **common,
        "db.operation.name": "SELECT",
        "db.query.text": "SELECT id, email FROM accounts WHERE tenant = %s AND pin IN (?)",
        "db.response.returned_rows": 2,
    }
    assert (failed.status, failed.attributes["error.type"]) == ("ERROR", "SyntaxError")
    assert failed.attributes["db.query.text"] == "SELECT * FROM accounts WHERE email = ? AND"
    for span in (inserted, selected, failed):
        assert span.kind == "CLIENT" and span.tenant == "acme"
        text = repr(span.attributes)
        assert "LEAK" not in text and "918273" not in text and "564738" not in text


@pytest.mark.postgres
async def test_postgresql_async_connection(
    spans: SpanCapture, require_service: Callable[[str, str, int], None]
) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
        query = "SELECT 'LEAKd' AS word, 424242 AS n"
        async with trace_query(query, "SELECT", None, "acme", db_system="postgresql"):
            cursor = await conn.execute(query)  # type: ignore[call-overload]
            assert await cursor.fetchone() == ("LEAKd", 424242)
    [span] = spans.spans()
    assert span.attributes["db.query.text"] == "SELECT ? AS word, ? AS n"
    assert span.name == "SELECT" and span.tenant == "acme"
