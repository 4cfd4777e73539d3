"""``sanitize_sql``: every literal becomes ``?``, whatever the dialect and the quoting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantrace.layers import sanitize_sql


@pytest.mark.parametrize(
    ("query", "dialect", "expected"),
    [
        (
            "SELECT * FROM users WHERE email = 'a@example.com' AND pin = 9182736450",
            None,
            "SELECT * FROM users WHERE email = ? AND pin = ?",
        ),
        (
            "SELECT * FROM t WHERE a = 'x' AND b IN (1, 2, 3)",
            None,
            "SELECT * FROM t WHERE a = ? AND b IN (?)",
        ),
        ("SELECT * FROM t WHERE a = 'it''s'", "sqlite", "SELECT * FROM t WHERE a = ?"),
        # A backslash before a quote: MySQL reads one string (the default mode) or a
        # string and the start of another (NO_BACKSLASH_ESCAPES); PostgreSQL the other
        # way round (standard_conforming_strings on / off). The server's setting is
        # not known, so what either reading takes for a literal goes.
        (r"SELECT * FROM t WHERE a = 'it\'s' AND b = 1", "mysql", "SELECT * FROM t WHERE a = ?"),
        (
            r"SELECT * FROM t WHERE a = 'C:\' OR b = 'x'",
            "postgresql",
            "SELECT * FROM t WHERE a = ?",
        ),
        (
            r"SELECT * FROM t WHERE a = 'C:\\' AND b = 1",
            "mysql",
            "SELECT * FROM t WHERE a = ? AND b = ?",
        ),
        (
            "SELECT * FROM \"Users\" WHERE note = E'a\\'b' AND c = $tag$x$tag$ AND d = $1::int",
            "postgresql",
            'SELECT * FROM "Users" WHERE note = ? AND c = ? AND d = $1::int',
        ),
        ('SELECT * FROM t WHERE note = "secret"', "sqlite", "SELECT * FROM t WHERE note = ?"),
        ("SELECT * FROM t WHERE x = $$body$$", None, "SELECT * FROM t WHERE x = ?"),
        (
            "SELECT a /* secret */ FROM t -- trailing secret\nWHERE y = -1.5e3 AND z = 0xFF",
            None,
            "SELECT a FROM t WHERE y = -? AND z = ?",
        ),
        (
            "SELECT * FROM entities WHERE tenant_id = ? LIMIT ?",
            "sqlite",
            "SELECT * FROM entities WHERE tenant_id = ? LIMIT ?",
        ),
        (
            "SELECT * FROM t WHERE id IN (%s, %s, %s) AND k = %(key)s AND n = :name",
            "postgresql",
            "SELECT * FROM t WHERE id IN (?) AND k = %(key)s AND n = :name",
        ),
        (
            "INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            None,
            "INSERT INTO t (a, b) VALUES (?, ?)",
        ),
        ("SELECT t1.col_2 FROM t1", None, "SELECT t1.col_2 FROM t1"),
        ("SELECT 'never closed", None, "SELECT ?"),
        ("SELECT `order` FROM `t` WHERE a = 'x'", "mysql", "SELECT `order` FROM `t` WHERE a = ?"),
    ],
)
def test_sanitized_text(query: str, dialect: str | None, expected: str) -> None:
    assert sanitize_sql(query, dialect) == expected


def test_backslash_in_an_unknown_dialect_removes_both_readings() -> None:
    # MySQL reads 'it\'s secret' as one string; standard SQL ends it at the
    # backslash. Unknown dialect: whichever is right, no literal may survive.
    for query in (
        r"SELECT * FROM t WHERE a = 'it\'s secret' AND b = 1",
        r"SELECT * FROM t WHERE a = 'C:\' OR b = 'secret'",
    ):
        assert "secret" not in sanitize_sql(query, "other_sql")


def test_long_query_is_cut_before_sanitising() -> None:
    query = "SELECT * FROM t WHERE a = '" + "s" * 100_000 + "'"
    assert sanitize_sql(query) == "SELECT * FROM t WHERE a = ?"


_CONTENT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    content=_CONTENT,
    number=st.integers(min_value=100, max_value=10**15),
    dialect=st.sampled_from([None, "sqlite", "postgresql", "mysql", "other_sql"]),
    quote=st.sampled_from(["'", '"', "$$"]),
)
def test_no_literal_survives(content: str, number: int, dialect: str | None, quote: str) -> None:
    marker = f"MARK{content}"
    if quote == "'":
        literal = "'" + marker.replace("'", "''") + "'"
        if dialect == "mysql":
            literal = "'" + marker.replace("\\", "\\\\").replace("'", "''") + "'"
    elif quote == '"':
        if dialect == "postgresql":  # an identifier there: not a literal
            return
        literal = '"' + marker.replace('"', '""') + '"'
        if dialect == "mysql":
            literal = '"' + marker.replace("\\", "\\\\").replace('"', '""') + '"'
    else:
        # A dollar quote is PostgreSQL's; SQLite reads $$MARK$$ as a parameter's name,
        # MySQL as a column's.
        if "$$" in marker or dialect in ("sqlite", "mysql"):
            return
        literal = f"$${marker}$$"
    query = f"SELECT name FROM things WHERE note = {literal} AND size > {number}"
    out = sanitize_sql(query, dialect)
    assert "MARK" not in out
    assert str(number) not in out
    assert out.startswith("SELECT name FROM things WHERE note = ?")
