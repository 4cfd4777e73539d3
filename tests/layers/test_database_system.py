"""``db.system.name`` from the connection: real sqlite3, PostgreSQL and MariaDB connections.

``trace_query`` names the system it is told (``db_system``), else the one the
DB-API connection or cursor it is given says, else none at all: a PostgreSQL
query is never labelled ``sqlite`` because nobody said otherwise.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tenantrace import TelemetryConfig, TelemetryLevel
from tenantrace.layers.database import infer_db_system, trace_query
from tenantrace.testing import SpanCapture, capture_spans

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
_F = TypeVar("_F", bound=Callable[..., Any])


def _mariadb_marker() -> Callable[[_F], _F]:
    """``pytest.mark.mariadb`` once pyproject lists the marker (--strict-markers), else none."""
    try:
        return pytest.mark.mariadb
    except pytest.fail.Exception:
        return lambda test: test


mariadb = _mariadb_marker()


def _driver(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"{name} is not installed ({exc}); CI must provide it", pytrace=False)
        pytest.skip(f"{name} is not installed ({exc})")


# ------------------------------------------------------------------ real connections


def test_sqlite3_connection_and_cursor(spans: SpanCapture) -> None:
    class Subclassed(sqlite3.Connection):  # a factory= connection class is still sqlite3's
        pass

    db = sqlite3.connect(":memory:")
    own = sqlite3.connect(":memory:", factory=Subclassed)
    try:
        for connection in (db, db.cursor(), own, own.cursor()):
            assert infer_db_system(connection) == "sqlite"
        with trace_query("SELECT 'LEAK' AS a, [b c] FROM t", "SELECT", "t", "acme", connection=db):
            pass
    finally:
        db.close()
        own.close()
    [span] = spans.spans()
    assert span.attributes["db.system.name"] == "sqlite"
    assert span.attributes["db.query.text"] == "SELECT ? AS a, [b c] FROM t"  # SQLite's names


@pytest.fixture
def postgres(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    psycopg = _driver("psycopg")
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


@pytest.mark.postgres
def test_psycopg_connection_and_cursor(spans: SpanCapture, postgres: Any) -> None:
    with postgres.cursor() as cursor:
        assert infer_db_system(postgres) == infer_db_system(cursor) == "postgresql"
        query = 'SELECT "Name", $tag$LEAK it\'s$tag$ FROM (SELECT 1 AS "Name") AS t'
        with trace_query(query, "SELECT", None, "acme", connection=cursor):
            cursor.execute(query)
            assert cursor.fetchone() == (1, "LEAK it's")
    [span] = spans.spans()
    assert span.attributes["db.system.name"] == "postgresql"
    # Read as PostgreSQL: "Name" is a name, the dollar quote a literal.
    assert span.attributes["db.query.text"] == 'SELECT "Name", ? FROM (SELECT ? AS "Name") AS t'


@pytest.mark.postgres
async def test_psycopg_async_connection(
    spans: SpanCapture, require_service: Callable[[str, str, int], None]
) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    psycopg = _driver("psycopg")
    async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
        cursor = conn.cursor()
        assert infer_db_system(conn) == infer_db_system(cursor) == "postgresql"
        async with trace_query("SELECT $1::int", "SELECT", None, "acme", connection=conn):
            await cursor.execute("SELECT %s::int", (7,))
            assert await cursor.fetchone() == (7,)
    [span] = spans.spans()
    assert span.attributes["db.system.name"] == "postgresql"
    assert span.attributes["db.query.text"] == "SELECT $1::int"  # a PostgreSQL parameter


@pytest.fixture
def maria(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("MariaDB", "127.0.0.1", 3306)
    pymysql = _driver("pymysql")
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", database="test")
    try:
        yield conn
    finally:
        conn.close()


@mariadb
def test_pymysql_on_mariadb_is_mariadb(spans: SpanCapture, maria: Any) -> None:
    assert "MariaDB" in maria.get_server_info()
    with maria.cursor() as cursor:
        assert infer_db_system(maria) == infer_db_system(cursor) == "mariadb"
        query = "SELECT `a b`, 'LEAK' FROM (SELECT 1 AS `a b`) AS t # LEAK comment"
        with trace_query(query, "SELECT", None, "acme", connection=cursor):
            cursor.execute(query)
            assert cursor.fetchone() == (1, "LEAK")
    [span] = spans.spans()
    assert span.attributes["db.system.name"] == "mariadb"
    assert span.attributes["db.query.text"] == "SELECT `a b`, ? FROM (SELECT ? AS `a b`) AS t"


# ------------------------------------------------------------------ nothing is guessed


def test_no_system_given_or_found_is_no_system(spans: SpanCapture) -> None:
    query = "SELECT * FROM t WHERE a = 'LEAK' AND b = $1"
    with trace_query(query, "SELECT", "t", "acme"):
        pass
    with trace_query(query, None, None, "acme", connection=object()):
        pass
    plain, unknown = spans.spans()
    for span in (plain, unknown):
        assert "db.system.name" not in span.attributes
        assert "LEAK" not in span.attributes["db.query.text"]
    assert plain.name == "SELECT t"
    assert unknown.name == "SELECT"


@pytest.mark.postgres
def test_an_explicit_system_wins(spans: SpanCapture, postgres: Any) -> None:
    with trace_query(
        "SELECT 1", "SELECT", None, "acme", db_system="cockroachdb", connection=postgres
    ):
        pass
    [span] = spans.spans()
    assert span.attributes["db.system.name"] == "cockroachdb"


def test_nothing_is_inferred_for_a_span_that_is_not_recorded() -> None:
    class Watched:
        touched = 0

        def __getattr__(self, name: str) -> Any:
            Watched.touched += 1
            raise AttributeError(name)

    config = TelemetryConfig(level=TelemetryLevel.BASIC, exporter_type="memory")
    with capture_spans(config) as capture:
        with trace_query("SELECT 1", connection=Watched()):
            pass
        assert capture.spans() == []
    assert Watched.touched == 0


def test_a_failing_driver_property_fails_nothing(spans: SpanCapture) -> None:
    class Broken:
        @property
        def connection(self) -> Any:
            raise RuntimeError("closed")

    Broken.__module__ = "pymysql.cursors"
    assert infer_db_system(Broken()) is None
    with trace_query("SELECT 'LEAK'", connection=Broken()):
        pass
    [span] = spans.spans()
    assert "db.system.name" not in span.attributes


# ------------------------------------------------------------------ drivers not installed here
# The mapping is by the driver's package; these classes stand in for drivers this
# machine does not have (psycopg2, mysqlclient, mysql-connector, MariaDB Connector).


def _driver_class(module: str, server_info: str | None = None) -> type:
    namespace: dict[str, Any] = {"__module__": module}
    if server_info is not None:
        namespace["get_server_info"] = lambda self: server_info
    return type("Connection", (), namespace)


@pytest.mark.parametrize(
    ("module", "server_info", "expected"),
    [
        ("psycopg2.extensions", None, "postgresql"),
        ("asyncpg.connection", None, "postgresql"),
        ("pg8000.legacy", None, "postgresql"),
        ("psycopg.crdb", None, "cockroachdb"),
        ("aiosqlite.core", None, "sqlite"),
        ("oracledb.connection", None, "oracle.db"),
        ("MySQLdb.connections", "8.0.36", "mysql"),
        ("MySQLdb.connections", "8.0.36-0ubuntu0.22.04.1", "mysql"),
        ("mysql.connector.connection_cext", "5.5.5-10.6.16-MariaDB-log", "mariadb"),
        ("mysql.connector.connection", "8.0.11-TiDB-v7.5.0", None),
        ("aiomysql.connection", "5.7.44-log", "mysql"),
        ("pymysql.connections", None, None),  # no version to tell MySQL from MariaDB
        ("pymysql.connections", "not a version", None),
        ("pyodbc", None, None),  # ODBC reaches anything
        ("myapp.db", "8.0.36", None),
    ],
)
def test_driver_packages(module: str, server_info: str | None, expected: str | None) -> None:
    assert infer_db_system(_driver_class(module, server_info)()) == expected


def test_mariadb_connector_server_info_attribute() -> None:
    cls = _driver_class("mariadb.connections")
    connection = cls()
    connection.server_info = "11.4.2-MariaDB"
    assert infer_db_system(connection) == "mariadb"
