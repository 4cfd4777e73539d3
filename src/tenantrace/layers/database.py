"""``trace_query``: one CLIENT span per database query, with the OpenTelemetry database conventions.

::

    with trace_query("SELECT * FROM entities WHERE tenant_id = ?", "SELECT", "entities") as span:
        rows = cursor.execute(query, (tenant_id,)).fetchall()
        record_rows(len(rows))

The span is named ``{db.operation.name} {db.collection.name}`` (low cardinality,
as the conventions ask) and carries ``db.system.name``, ``db.operation.name``,
``db.collection.name`` and ``db.query.text``. The query text is sanitised
(every literal becomes ``?``, comments go, ``IN`` lists collapse); parameters
are never recorded.

``db.system.name`` is ``db_system`` when given, else read from the DB-API
``connection`` (or cursor) passed in, else left out: a wrong system name is
worse than none, so nothing is guessed.
"""

from __future__ import annotations

import re
from typing import Final

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.spans import NoOpScope, SpanScope
from tenantrace.layers._spans import layer_span
from tenantrace.layers._sql import sanitize_sql

__all__ = ["infer_db_system", "record_rows", "sanitize_sql", "trace_query"]

# Semantic convention names (opentelemetry.semconv.attributes.db_attributes, stable;
# db.response.returned_rows is still incubating there).
DB_SYSTEM_NAME: Final = "db.system.name"
DB_OPERATION_NAME: Final = "db.operation.name"
DB_COLLECTION_NAME: Final = "db.collection.name"
DB_QUERY_TEXT: Final = "db.query.text"
DB_NAMESPACE: Final = "db.namespace"
DB_RESPONSE_RETURNED_ROWS: Final = "db.response.returned_rows"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# An operation is a verb ("SELECT", "INSERT", "find"), a collection a dotted
# name: anything else is not recorded, so free text never reaches a span name.
_OPERATION: Final = re.compile(r"[A-Za-z][A-Za-z_ ]{0,31}")
_COLLECTION: Final = re.compile(r"[^\W\d][\w$.\-]{0,127}")
_FIRST_WORD: Final = re.compile(r"\s*\(*\s*([A-Za-z]+)")
# The span name when neither the operation, the collection nor the system is known.
_UNNAMED: Final = "db"


def _operation(operation: str | None, sanitized: str) -> str | None:
    if isinstance(operation, str):
        operation = operation.strip()
        return operation.upper() if _OPERATION.fullmatch(operation) else None
    first = _FIRST_WORD.match(sanitized)
    return first.group(1).upper() if first else None


def _collection(table: str | None) -> str | None:
    if isinstance(table, str) and _COLLECTION.fullmatch(table.strip()):
        return table.strip()
    return None


# DB-API driver packages (the top-level module of the connection's or cursor's class)
# and the db.system.name each one implies. MySQL-protocol drivers reach MySQL and
# MariaDB alike: the server's version string decides (see _mysql_family).
_POSTGRESQL_DRIVERS: Final = frozenset({"psycopg", "psycopg2", "asyncpg", "pg8000"})
_SQLITE_DRIVERS: Final = frozenset({"sqlite3", "aiosqlite"})
_ORACLE_DRIVERS: Final = frozenset({"oracledb", "cx_Oracle"})
_MYSQL_DRIVERS: Final = frozenset({"pymysql", "MySQLdb", "mysql", "mariadb", "aiomysql", "asyncmy"})
# MySQL-protocol servers that are neither MySQL nor MariaDB: their name is not guessed.
_NOT_MYSQL: Final = re.compile(r"tidb|singlestore|memsql|manticore|dolt|doris|starrocks", re.I)
_MYSQL_VERSION: Final = re.compile(r"\d+\.\d+\.\d+")
_MAX_CACHED_TYPES: Final = 256
_driver_cache: dict[type, str | None] = {}


def _driver_family(cls: type) -> str | None:
    """``postgresql``, ``sqlite``, ``oracle.db``, ``mysql`` (a MySQL-protocol driver) or None."""
    try:
        return _driver_cache[cls]
    except KeyError:
        pass
    family: str | None = None
    for klass in cls.__mro__:  # a subclass of a driver's class (sqlite3.Connection) counts
        module = getattr(klass, "__module__", "") or ""
        root = module.partition(".")[0]
        if root in _POSTGRESQL_DRIVERS:
            # psycopg's CockroachDB connection says which server it talks to.
            family = "cockroachdb" if module.startswith("psycopg.crdb") else "postgresql"
        elif root in _SQLITE_DRIVERS:
            family = "sqlite"
        elif root in _ORACLE_DRIVERS:
            family = "oracle.db"
        elif root in _MYSQL_DRIVERS:
            family = "mysql"
        if family:
            break
    if len(_driver_cache) >= _MAX_CACHED_TYPES:
        _driver_cache.clear()
    _driver_cache[cls] = family
    return family


def _mysql_family(connection: object) -> str | None:
    """``mariadb`` or ``mysql`` from the version string the server sent at connect time."""
    info: object = None
    get_server_info = getattr(connection, "get_server_info", None)
    if callable(get_server_info):  # PyMySQL, mysqlclient, mysql-connector, aiomysql
        info = get_server_info()
    if not isinstance(info, str):
        info = getattr(connection, "server_info", None)  # MariaDB Connector/Python
    if not isinstance(info, str):
        return None
    if "mariadb" in info.lower():
        return "mariadb"
    if _NOT_MYSQL.search(info) or not _MYSQL_VERSION.match(info):
        return None
    return "mysql"


def infer_db_system(connection: object) -> str | None:
    """The ``db.system.name`` of a DB-API connection or cursor, or None when unsure.

    ``psycopg`` / ``psycopg2`` / ``asyncpg`` / ``pg8000`` give ``postgresql``
    (psycopg's ``CrdbConnection``: ``cockroachdb``), ``sqlite3`` /
    ``aiosqlite`` give ``sqlite``, ``oracledb`` / ``cx_Oracle`` give
    ``oracle.db``. A MySQL-protocol driver (PyMySQL, mysqlclient, mysql-connector,
    MariaDB Connector, aiomysql, asyncmy) gives ``mariadb`` or ``mysql`` as the
    server's version string says, and nothing when it names another server or
    cannot be read. Anything else gives None. Never raises.
    """
    try:
        candidates = [connection]
        # A cursor's class may be generic (psycopg.Cursor for a CockroachDB connection):
        # its connection says more.
        owner = getattr(connection, "connection", None)
        if owner is not None and owner is not connection:
            candidates.insert(0, owner)
        for candidate in candidates:
            family = _driver_family(type(candidate))
            if family == "mysql":
                return _mysql_family(candidate)
            if family:
                return family
    except Exception:  # a driver's property failing must not fail the traced query
        return None
    return None


def _query_attributes(
    query: str,
    operation: str | None,
    *,
    table: str | None,
    db_system: str | None,
    database: str | None,
    server_address: str | None,
    server_port: int | None,
) -> tuple[str, dict[str, AttributeValue]]:
    sanitized = sanitize_sql(query, db_system)
    op = _operation(operation, sanitized)
    collection = _collection(table)
    attributes: dict[str, AttributeValue] = {}
    if db_system:
        attributes[DB_SYSTEM_NAME] = db_system
    attributes[DB_QUERY_TEXT] = sanitized
    if op:
        attributes[DB_OPERATION_NAME] = op
    if collection:
        attributes[DB_COLLECTION_NAME] = collection
    if database:
        attributes[DB_NAMESPACE] = str(database)
    if server_address:
        attributes[SERVER_ADDRESS] = str(server_address)
    if isinstance(server_port, int) and not isinstance(server_port, bool):
        attributes[SERVER_PORT] = server_port
    name = " ".join(part for part in (op, collection) if part) or db_system or _UNNAMED
    return name, attributes


def trace_query(
    query: str,
    operation: str | None = None,
    table: str | None = None,
    tenant_id: str | None = None,
    *,
    db_system: str | None = None,
    connection: object = None,
    database: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope around one query, yielding its CLIENT span.

    ``operation`` (e.g. ``"SELECT"``) defaults to the query's first keyword;
    ``table`` becomes ``db.collection.name``. ``db_system`` is the
    ``db.system.name`` value (``"postgresql"``, ``"mysql"``, ``"mariadb"``,
    ``"sqlite"``...); without it, ``connection`` (a DB-API connection or
    cursor) tells it (see ``infer_db_system``); with neither, the attribute is
    left out. The system picks the SQL dialect the sanitiser reads; unknown, the
    sanitiser removes what any dialect would take for a literal. The tenant is
    ``tenant_id``, else the current one. Call ``record_rows(n)`` inside to
    record ``db.response.returned_rows``.
    """
    given = db_system.strip() if isinstance(db_system, str) and db_system.strip() else None

    def describe() -> tuple[str, dict[str, AttributeValue]]:
        # Only for a recorded span: a gated-off query costs no inference, no sanitising.
        system = given if given or connection is None else infer_db_system(connection)
        return _query_attributes(
            query,
            operation,
            table=table,
            db_system=system,
            database=database,
            server_address=server_address,
            server_port=server_port,
        )

    return layer_span(
        given or _UNNAMED, tenant_id, describe, level=level, kind=SpanKind.CLIENT, context=context
    )


def record_rows(count: int, span: Span | None = None) -> None:
    """Record ``db.response.returned_rows`` on ``span`` (default: the current span)."""
    if isinstance(count, bool) or not isinstance(count, int):
        return
    target = span if span is not None else trace_api.get_current_span()
    try:
        target.set_attribute(DB_RESPONSE_RETURNED_ROWS, count)
    except Exception:  # a foreign span implementation; never into user code
        return
