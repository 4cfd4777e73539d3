"""The SQL corpus on the real servers: each statement is valid there and read as the case says.

``test_sql_corpus.py`` checks what ``sanitize_sql`` leaves of each statement;
here each PostgreSQL statement runs on the PostgreSQL at 127.0.0.1:5432, each
MySQL one on the MariaDB at 127.0.0.1:3306, each SQLite one on ``sqlite3``, all
against temporary tables, and the row each returns proves the server took each
literal for the literal the case says (``'it\\'s'`` is ``it's`` under MariaDB's
default mode, ``C:\\`` with ``NO_BACKSLASH_ESCAPES``...). Hypothesis then sends
random text through every literal form to the servers: the server gives the text
back unchanged (so the form is right) and the sanitised statement holds none of it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sql_corpus import MYSQL_CASES, POSTGRESQL_CASES, SQLITE_CASES, Case

from tenantrace.export.sql import sanitize_sql

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
ACCOUNTS = "(id int, email varchar(200), note varchar(200), amount numeric(12, 2))"
SEED = "INSERT INTO accounts VALUES (1, 'seed@example.com', 'seed', 10)"
_F = TypeVar("_F", bound=Callable[..., Any])


def _mariadb_marker() -> Callable[[_F], _F]:
    """``pytest.mark.mariadb`` once pyproject lists the marker (--strict-markers), else none."""
    try:
        return pytest.mark.mariadb
    except pytest.fail.Exception:
        return lambda test: test


mariadb = _mariadb_marker()


def _driver(name: str) -> Any:
    """The driver module; missing, the test skips locally and fails in CI."""
    try:
        return __import__(name)
    except ImportError as exc:
        message = f"{name} is not installed ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)


def _ids(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def _assert_sanitised(case: Case) -> None:
    for system in (case.system, None):
        out = sanitize_sql(case.sql, system)
        for secret in case.secrets:
            assert secret not in out, f"{secret!r} survived in {out!r} ({system})"


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def postgres(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    psycopg = _driver("psycopg")
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE accounts {ACCOUNTS}")
        conn.execute(SEED)
        yield conn


@pytest.mark.postgres
@pytest.mark.parametrize("case", _ids(POSTGRESQL_CASES))
def test_postgresql_reads_each_literal_as_the_case_says(case: Case, postgres: Any) -> None:
    psycopg = _driver("psycopg")
    for statement in case.setup:
        postgres.execute(statement)
    if postgres.info.server_version < case.min_version:
        # A newer server's syntax: this one must refuse it, not read it some other way.
        with pytest.raises(psycopg.errors.SyntaxError, match="trailing junk"):
            postgres.execute(case.sql)
    else:
        cursor = postgres.execute(case.sql, case.args)
        if case.rows is not None:
            assert cursor.fetchone() == case.rows
        if case.check is not None:
            assert postgres.execute(case.check[0]).fetchone() == case.check[1]
    _assert_sanitised(case)


# ------------------------------------------------------------------ MariaDB


@pytest.fixture
def maria(require_service: Callable[[str, str, int], None]) -> Iterator[Any]:
    require_service("MariaDB", "127.0.0.1", 3306)
    pymysql = _driver("pymysql")
    conn = pymysql.connect(**MARIADB, autocommit=True, charset="utf8mb4")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE accounts {ACCOUNTS}")
            cursor.execute(SEED)
        yield conn
    finally:
        conn.close()


@mariadb
@pytest.mark.parametrize("case", _ids(MYSQL_CASES))
def test_mariadb_reads_each_literal_as_the_case_says(case: Case, maria: Any) -> None:
    with maria.cursor() as cursor:
        for statement in case.setup:
            cursor.execute(statement)
        cursor.execute(case.sql, case.args)
        if case.rows is not None:
            assert cursor.fetchone() == case.rows
        if case.check is not None:
            cursor.execute(case.check[0])
            assert cursor.fetchone() == case.check[1]
    _assert_sanitised(case)


# ------------------------------------------------------------------ SQLite


@pytest.mark.parametrize("case", _ids(SQLITE_CASES))
def test_sqlite_reads_each_literal_as_the_case_says(case: Case) -> None:
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE TEMP TABLE accounts {ACCOUNTS}")
        db.execute(SEED)
        row = db.execute(case.sql, case.args or ()).fetchone()
        if case.rows is not None:
            assert row == case.rows
        if case.check is not None:
            assert db.execute(case.check[0]).fetchone() == case.check[1]
    finally:
        db.close()
    _assert_sanitised(case)


# ------------------------------------------------------------------ random literals

# Any text a server stores: no NUL (PostgreSQL refuses it in text), no lone surrogate;
# quotes, backslashes, dollars, comment marks and newlines drawn often.
_TRICKY = st.sampled_from(["'", "''", '"', "\\", "\\'", "$", "$$", "--", "/*", "*/", "#", "\n"])
_TEXT = st.lists(
    _TRICKY | st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=24,
).map("".join)
_ALLOWED_TOKENS = {"SELECT", "?", "AS", "v", "_utf8mb4?"}


def _postgresql_literal(form: str, text: str) -> str:
    if form == "standard":  # standard_conforming_strings on: only ' is doubled
        return "'" + text.replace("'", "''") + "'"
    if form == "escape":
        return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if form == "unicode":
        return "U&'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    if form == "national":
        return "N'" + text.replace("'", "''") + "'"
    tag = "q"
    while f"${tag}$" in f"${text}$":
        tag += "q"
    return f"${tag}${text}${tag}$"


def _assert_nothing_survives(sql: str, system: str) -> None:
    for reading in (system, None):
        out = sanitize_sql(sql, reading)
        assert "LEAK" not in out, (sql, reading, out)
        assert set(out.split()) <= _ALLOWED_TOKENS, (sql, reading, out)


@pytest.mark.postgres
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_TEXT, form=st.sampled_from(["standard", "escape", "unicode", "national", "dollar"]))
def test_random_postgresql_literals(postgres: Any, text: str, form: str) -> None:
    value = f"LEAK{text}LEAK"
    if form == "national":
        value = value.rstrip(" ")  # char(n) drops trailing spaces
    sql = f"SELECT {_postgresql_literal(form, value)} AS v"
    assert postgres.execute(sql).fetchone() == (value,)
    _assert_nothing_survives(sql, "postgresql")


def _mariadb_literal(form: str, text: str, no_backslash_escapes: bool) -> str:
    if no_backslash_escapes:
        return "'" + text.replace("'", "''") + "'"
    escaped = text.replace("\\", "\\\\")
    if form == "backslash":
        return "'" + escaped.replace("'", "\\'") + "'"
    if form == "double-quoted":
        return '"' + escaped.replace('"', '\\"') + '"'
    if form == "national":
        return "N'" + escaped.replace("'", "''") + "'"
    return "_utf8mb4'" + escaped.replace("'", "''") + "'"


@mariadb
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=_TEXT,
    form=st.sampled_from(["backslash", "double-quoted", "national", "introducer"]),
    no_backslash_escapes=st.booleans(),
)
def test_random_mariadb_literals(
    maria: Any, text: str, form: str, no_backslash_escapes: bool
) -> None:
    value = f"LEAK{text}LEAK"
    if form == "national":  # N'...' is utf8mb3 in MariaDB: no characters past U+FFFF
        value = "".join(char for char in value if char <= "\uffff")
    mode = "NO_BACKSLASH_ESCAPES" if no_backslash_escapes else ""
    sql = f"SELECT {_mariadb_literal(form, value, no_backslash_escapes)} AS v"
    with maria.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = %s", (mode,))
        cursor.execute(sql.replace("%", "%%"), ())  # PyMySQL formats % even without args
        assert cursor.fetchone() == (value,)
    _assert_nothing_survives(sql, "mariadb")


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, quote=st.sampled_from(["'", '"']))
def test_random_sqlite_literals(text: str, quote: str) -> None:
    value = f"LEAK{text}LEAK"
    sql = f"SELECT {quote}{value.replace(quote, quote * 2)}{quote} AS v"
    db = sqlite3.connect(":memory:")
    try:
        assert db.execute(sql).fetchone() == (value,)
    finally:
        db.close()
    _assert_nothing_survives(sql, "sqlite")


@pytest.mark.postgres
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(number=st.integers(min_value=10**5, max_value=10**12), form=st.integers(0, 5))
def test_random_postgresql_numerals(postgres: Any, number: int, form: int) -> None:
    numeral = [
        str(number),
        f"{number}e-3",
        f".{number}",
        f"{number}.",
        f"1.{number}E+10",
        f"{number}.{number}",
    ][form]
    sql = f"SELECT {numeral} AS v"
    assert postgres.execute(sql).fetchone() is not None
    for reading in ("postgresql", None):
        assert sanitize_sql(sql, reading) == "SELECT ? AS v"
