"""Database layer: trace_query on real sqlite3; literals never reach the span.

Run: python examples/layer_database.py  (no server: sqlite in memory, spans printed)
"""

import sqlite3

from tenantrace import tenant_scope
from tenantrace.layers import record_rows, sanitize_sql, trace_query
from tenantrace.testing import capture_spans

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE entities (tenant_id TEXT, email TEXT, score INTEGER)")

with capture_spans() as spans, tenant_scope("acme"):
    # A query with inline literals: the span records it with every literal as "?".
    insert = "INSERT INTO entities VALUES ('acme', 'ann@example.com', 91), ('acme', 'bo@x.io', 78)"
    with trace_query(insert, "INSERT", "entities"):
        db.execute(insert)

    # A parameterised query: placeholders stay, the parameters are never recorded.
    query = "SELECT email FROM entities WHERE tenant_id = ? AND score > ?"
    with trace_query(query, "SELECT", "entities") as span:
        rows = db.execute(query, ("acme", 80)).fetchall()
        record_rows(len(rows))  # db.response.returned_rows

    for span in spans.spans():
        print(f"{span.name:16} {span.attributes['db.query.text']}")
        assert "example.com" not in str(span.attributes) and "91" not in str(span.attributes)
    assert spans.one("SELECT entities").attributes["db.response.returned_rows"] == 1

print(sanitize_sql("SELECT * FROM t WHERE id IN (1, 2, 3) AND note = 'x' -- by ann"))
