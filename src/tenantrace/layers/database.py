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

__all__ = ["record_rows", "sanitize_sql", "trace_query"]

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


def _query_attributes(
    query: str,
    operation: str | None,
    *,
    table: str | None,
    db_system: str,
    database: str | None,
    server_address: str | None,
    server_port: int | None,
) -> tuple[str, dict[str, AttributeValue]]:
    sanitized = sanitize_sql(query, db_system)
    op = _operation(operation, sanitized)
    collection = _collection(table)
    attributes: dict[str, AttributeValue] = {DB_SYSTEM_NAME: db_system, DB_QUERY_TEXT: sanitized}
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
    name = " ".join(part for part in (op, collection) if part) or db_system
    return name, attributes


def trace_query(
    query: str,
    operation: str | None = None,
    table: str | None = None,
    tenant_id: str | None = None,
    *,
    db_system: str = "sqlite",
    database: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    context: Context | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope around one query, yielding its CLIENT span.

    ``operation`` (e.g. ``"SELECT"``) defaults to the query's first keyword;
    ``table`` becomes ``db.collection.name``; ``db_system`` is the
    ``db.system.name`` value (``"sqlite"``, ``"postgresql"``, ``"mysql"``...)
    and picks the SQL dialect the sanitiser reads. The tenant is ``tenant_id``,
    else the current one. Call ``record_rows(n)`` inside to record
    ``db.response.returned_rows``.
    """
    system = db_system if isinstance(db_system, str) and db_system else "other_sql"

    def describe() -> tuple[str, dict[str, AttributeValue]]:
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
        system, tenant_id, describe, level=level, kind=SpanKind.CLIENT, context=context
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
