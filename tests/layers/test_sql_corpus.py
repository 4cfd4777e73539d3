"""``sanitize_sql`` over a corpus of every literal form of five dialects.

Each case is a realistic statement with secrets in its literals (and comments).
Sanitised for its own dialect, the output is checked exactly; sanitised with no
dialect (every reading at once) no secret may survive either. The PostgreSQL,
MariaDB and SQLite cases are also run on the real servers by
``test_sql_servers.py``, which proves each statement is valid there and that the
server reads each literal the way the case says (``rows``).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tenantrace.export import sql as sql_module
from tenantrace.export.sql import MAX_QUERY_CHARS, sanitize_sql
from tenantrace.layers import sanitize_sql as layers_sanitize_sql

PG, MYSQL, MARIADB, SQLITE, ORACLE, MSSQL = (
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "oracle.db",
    "microsoft.sql_server",
)


@dataclass(frozen=True)
class Case:
    """One statement: the secrets in it, what must stay, and how its server reads it."""

    id: str
    system: str  # the db.system.name it is written for
    sql: str
    secrets: tuple[str, ...]
    expected: str | None = None  # the exact output for ``system`` (None: over-removal allowed)
    kept: tuple[str, ...] = ()  # names and placeholders that survive for ``system``
    rows: tuple[Any, ...] | None = None  # the row the server returns (server tests)
    setup: tuple[str, ...] = ()  # session settings run first (server tests)
    args: Any = None  # parameters passed with the statement (server tests)
    check: tuple[str, tuple[Any, ...]] | None = None  # a query and its row, run after
    min_version: int = 0  # PostgreSQL server_version_num the form needs


POSTGRESQL_CASES = [
    Case(
        "doubled-quote",
        PG,
        "SELECT 'pgS1''s quote' AS v",
        ("pgS1", "quote"),
        "SELECT ? AS v",
        rows=("pgS1's quote",),
    ),
    Case(
        "e-string",
        PG,
        r"SELECT E'pgS2\'esc\\aped\n' AS v",
        ("pgS2", "esc", "aped"),
        "SELECT ? AS v",
        rows=("pgS2'esc\\aped\n",),
    ),
    Case(
        "e-string-trailing-backslash",
        PG,
        r"SELECT e'pgS3\\' AS v, 'pgS3b' AS w",
        ("pgS3",),
        "SELECT ? AS v, ? AS w",
        rows=("pgS3\\", "pgS3b"),
    ),
    Case(
        "unicode-escape-string",
        PG,
        r"SELECT U&'pgS4\0061' AS v, u&'pgS5!0062' UESCAPE '!' AS w",
        ("pgS4", "pgS5", "0061", "0062"),
        "SELECT ? AS v, ? UESCAPE ? AS w",
        rows=("pgS4a", "pgS5b"),
    ),
    Case("national", PG, "SELECT N'pgS6' AS v", ("pgS6",), "SELECT ? AS v", rows=("pgS6",)),
    Case(
        "bit-and-hex-strings",
        PG,
        "SELECT B'10110111' AS b, X'1F2E' AS x, b'0101' AS c, x'aB' AS d",
        ("10110111", "1F2E", "0101", "aB"),
        "SELECT ? AS b, ? AS x, ? AS c, ? AS d",
        rows=("10110111", "0001111100101110", "0101", "10101011"),
    ),
    Case(
        "dollar-quotes",
        PG,
        "SELECT $$pgS7 it's a $ sign$$ AS v, $tag$pgS8 has $$ inside$tag$ AS w,"
        " $a$pgS9 $b$ x $b$$a$ AS z",
        ("pgS7", "pgS8", "pgS9", "sign", "inside"),
        "SELECT ? AS v, ? AS w, ? AS z",
        rows=("pgS7 it's a $ sign", "pgS8 has $$ inside", "pgS9 $b$ x $b$"),
    ),
    Case(
        "comments-with-quotes",
        PG,
        "SELECT 1 /* pgS10 it's in a comment */ AS v -- pgS11 it's too\n, 2 AS w",
        ("pgS10", "pgS11"),
        "SELECT ? AS v, ? AS w",
        rows=(1, 2),
    ),
    Case(
        "nested-comments",
        PG,
        "SELECT /* pgS12 /* nested 'pgS12b' */ still a comment */ 3 AS v",
        ("pgS12", "still"),
        "SELECT ? AS v",
        rows=(3,),
    ),
    Case(
        "dash-comment-ends-at-cr",
        PG,
        "SELECT 4 AS v -- pgS13 comment\r, 'pgS14' AS w",
        ("pgS13", "pgS14"),
        "SELECT ? AS v, ? AS w",
        rows=(4, "pgS14"),
    ),
    Case(
        "comment-marks-inside-a-string",
        PG,
        "SELECT 'pgS15 -- not /* a comment' AS v /* it's */ , 5 AS w",
        ("pgS15", "not"),
        "SELECT ? AS v, ? AS w",
        rows=("pgS15 -- not /* a comment", 5),
    ),
    Case(
        "numbers",
        PG,
        "SELECT 918273 AS a, 1e-5 AS b, .5 AS c, 5. AS d, 1.5E+10 AS e, 4711.0815 AS f, -42 AS g",
        ("918273", "1e-5", "1.5E+10", "4711", "0815", "42"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, -? AS g",
        rows=(
            918273,
            Decimal("0.00001"),
            Decimal("0.5"),
            Decimal("5"),
            Decimal("15000000000"),
            Decimal("4711.0815"),
            -42,
        ),
    ),
    Case(
        "postgresql-16-numbers",
        PG,
        "SELECT 123_45_6789 AS a, 0o4711 AS b, 0x1F_FF AS c, 0b1010_1010 AS d,"
        " 1_000.000_1 AS e, 0XAbC AS f",
        ("45_6789", "6789", "4711", "1F_FF", "1010", "000_1", "AbC"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f",
        rows=(123456789, 2505, 8191, 170, Decimal("1000.0001"), 2748),
        min_version=160000,
    ),
    Case(
        "names-stay",
        PG,
        'SELECT "Mixed Case", t1.col_2, U&"d\\0061t", a$1 FROM'
        ' (SELECT 1 AS "Mixed Case", 2 AS col_2, 3 AS "dat", 4 AS a$1) AS t1',
        (),
        'SELECT "Mixed Case", t1.col_2, U&"d\\0061t", a$1 FROM'
        ' (SELECT ? AS "Mixed Case", ? AS col_2, ? AS "dat", ? AS a$1) AS t1',
        kept=('"Mixed Case"', "t1.col_2", 'U&"d\\0061t"', "a$1"),
        rows=(1, 2, 3, 4),
    ),
    Case(
        "positional-parameters",
        PG,
        "PREPARE pgq1(int, text) AS SELECT $1 + 1 AS n, $2 || 'pgS16' AS s",
        ("pgS16",),
        "PREPARE pgq1(int, text) AS SELECT $1 + ? AS n, $2 || ? AS s",
        kept=("$1", "$2", "pgq1"),
        check=("EXECUTE pgq1(41, 'x')", (42, "xpgS16")),
    ),
    Case(
        "typed-literals",
        PG,
        "SELECT DATE '2024-03-05' AS d, INTERVAL '3 days' AS i, 'pgS17'::text AS t,"
        " '{11,22}'::int[] AS a",
        ("2024-03-05", "3 days", "pgS17", "11,22"),
        "SELECT DATE ? AS d, INTERVAL ? AS i, ?::text AS t, ?::int[] AS a",
        rows=(datetime.date(2024, 3, 5), datetime.timedelta(days=3), "pgS17", [11, 22]),
    ),
    Case(
        "string-continued-on-a-new-line",
        PG,
        "SELECT 'pgS18a'\n'pgS18b' AS v",
        ("pgS18a", "pgS18b"),
        "SELECT ? ? AS v",
        rows=("pgS18apgS18b",),
    ),
    Case(
        "insert",
        PG,
        "INSERT INTO accounts (id, email, note, amount) VALUES"
        " (7, 'pgS19@example.com', E'pgS20\\tnote', 1234.56), (8, $$pgS21$$, U&'pgS22', 99)",
        ("pgS19", "pgS20", "pgS21", "pgS22", "1234.56", "99"),
        "INSERT INTO accounts (id, email, note, amount) VALUES (?, ?, ?, ?)",
        check=(
            "SELECT email, note, amount FROM accounts WHERE id = 7",
            ("pgS19@example.com", "pgS20\tnote", Decimal("1234.56")),
        ),
    ),
    Case(
        "update",
        PG,
        "UPDATE accounts SET note = 'pgS23' WHERE email = 'pgS24@example.com'"
        " AND amount IN (101, 202, 303)",
        ("pgS23", "pgS24", "101", "202", "303"),
        "UPDATE accounts SET note = ? WHERE email = ? AND amount IN (?)",
    ),
    Case(
        "delete",
        PG,
        "DELETE FROM accounts WHERE note LIKE 'pgS25%' OR amount BETWEEN 31337 AND 31338",
        ("pgS25", "31337", "31338"),
        "DELETE FROM accounts WHERE note LIKE ? OR amount BETWEEN ? AND ?",
    ),
    Case(
        "standard-conforming-strings-off",
        PG,
        r"SELECT 'pgS26 it\'s' AS v, 'pgS27' AS w",
        ("pgS26", "pgS27"),
        setup=("SET standard_conforming_strings = off", "SET escape_string_warning = off"),
        rows=("pgS26 it's", "pgS27"),
    ),
    Case(
        "standard-conforming-strings-on",
        PG,
        r"SELECT 'C:\pgS28\' AS v, 'pgS29' AS w",
        ("pgS28", "pgS29"),
        rows=("C:\\pgS28\\", "pgS29"),
    ),
    Case(
        "array-slice",
        PG,
        "SELECT (ARRAY[101, 202, 303, 404])[2:3] AS v",
        ("101", "202", "303", "404"),
        "SELECT (ARRAY[?, ?, ?, ?])[?:?] AS v",
        rows=([202, 303],),
    ),
    Case(
        "jsonb-question-mark-operator",
        PG,
        """SELECT '{"pgS30": 1}'::jsonb ? 'pgS30' AS v""",
        ("pgS30",),
        "SELECT ?::jsonb ? ? AS v",
        rows=(True,),
    ),
    Case(
        "hash-is-an-operator",
        PG,
        "SELECT 5 # length('pgS31x') AS v",
        ("pgS31x",),
        "SELECT ? # length(?) AS v",
        rows=(3,),
    ),
]

MYSQL_CASES = [
    Case(
        "backslash-and-doubled-quotes",
        MARIADB,
        r"""SELECT 'myS1\'s' AS a, "myS2\"dq" AS b, 'myS3''dbl' AS c, "myS4""dbl" AS d""",
        ("myS1", "myS2", "myS3", "myS4", "dbl"),
        rows=("myS1's", 'myS2"dq', "myS3'dbl", 'myS4"dbl'),
    ),
    Case(
        "doubled-backslash",
        MARIADB,
        r"SELECT 'myS5 C:\\' AS a, 'myS6' AS b",
        ("myS5", "myS6"),
        "SELECT ? AS a, ? AS b",
        rows=("myS5 C:\\", "myS6"),
    ),
    Case(
        "prefixed-strings-and-hex",
        MARIADB,
        "SELECT _utf8mb4'myS7' AS a, N'myS8' AS b, X'6D7953395F' AS c, b'1011' AS d,"
        " 0b1011 AS e, 0x6D79 AS f, x'4d' AS g",
        ("myS7", "myS8", "6D7953395F", "1011", "0x6D79", "4d"),
        "SELECT _utf8mb4? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, ? AS g",
        rows=("myS7", "myS8", b"myS9_", b"\x0b", b"\x0b", b"my", b"M"),
    ),
    Case(
        "comments",
        MARIADB,
        "SELECT 1 AS a # myS10 it's a comment\n, 2 AS b -- myS11 comment\n, 3 AS c /* myS12 */",
        ("myS10", "myS11", "myS12"),
        "SELECT ? AS a, ? AS b, ? AS c",
        rows=(1, 2, 3),
    ),
    Case(
        "double-dash-without-space-is-minus-minus",
        MARIADB,
        "SELECT 1--1 AS a, 5 --\tmyS13\n AS b",
        ("myS13",),
        "SELECT ?--? AS a, ? AS b",
        rows=(2, 5),
    ),
    Case(
        "dash-comment-runs-past-cr",
        MARIADB,
        "SELECT 1 AS a -- myS14 comment\r, 'myS15' AS b",
        ("myS14", "myS15"),
        "SELECT ? AS a",
        rows=(1,),
    ),
    Case(
        "executable-comment",
        MARIADB,
        "SELECT /*!50000 'myS16' AS a, */ 'myS17' AS b",
        ("myS16", "myS17"),
        rows=("myS16", "myS17"),
    ),
    Case(
        "executable-comment-for-a-later-version",
        MARIADB,
        "SELECT /*!999999 'myS18' AS a, */ 'myS19' AS b",
        ("myS18", "myS19"),
        rows=("myS19",),
    ),
    Case(
        "skipped-comment-nests-once",
        MARIADB,
        "SELECT /*!999999 /* myS20 */ 'myS21', */ 'myS22' AS b",
        ("myS20", "myS21", "myS22"),
        rows=("myS22",),
    ),
    Case(
        "mariadb-executable-comment",
        MARIADB,
        "SELECT /*M!100000 'myS23' AS a, */ 'myS24' AS b",
        ("myS23", "myS24"),
        rows=("myS23", "myS24"),
    ),
    Case(
        "comment-end-inside-an-executed-string",
        MARIADB,
        "SELECT /*! 'myS25*/still' */ AS a",
        ("myS25", "still"),
        rows=("myS25*/still",),
    ),
    Case(
        "backtick-names-stay",
        MARIADB,
        "SELECT `col``umn`, `t1`.`c2` FROM (SELECT 1 AS `col``umn`, 2 AS `c2`) AS `t1`",
        (),
        "SELECT `col``umn`, `t1`.`c2` FROM (SELECT ? AS `col``umn`, ? AS `c2`) AS `t1`",
        kept=("`col``umn`", "`t1`.`c2`"),
        rows=(1, 2),
    ),
    Case(
        "numbers",
        MARIADB,
        "SELECT 918273 AS a, 1e-5 AS b, .5 AS c, 5. AS d, 1.5E+10 AS e, 0x1F AS f, -42 AS g",
        ("918273", "1e-5", "1.5E+10", "0x1F", "42"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, -? AS g",
        rows=(918273, 1e-05, Decimal("0.5"), Decimal("5"), 15000000000.0, b"\x1f", -42),
    ),
    Case(
        "comment-marks-inside-a-string",
        MARIADB,
        "SELECT 'myS26 -- not # a /* comment' AS a",
        ("myS26", "comment"),
        "SELECT ? AS a",
        rows=("myS26 -- not # a /* comment",),
    ),
    Case(
        "no-backslash-escapes",
        MARIADB,
        r"SELECT 'myS27 C:\' AS a, 'myS28' AS b",
        ("myS27", "myS28"),
        setup=("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')",),
        rows=("myS27 C:\\", "myS28"),
    ),
    Case(
        "ansi-quotes",
        MARIADB,
        """SELECT "col" FROM (SELECT 'myS29' AS "col") AS t""",
        ("myS29",),
        setup=("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",),
        rows=("myS29",),
    ),
    Case(
        "like-escapes",
        MARIADB,
        r"SELECT 'myS30\%' AS a, 'myS31\_' AS b",
        ("myS30", "myS31"),
        rows=("myS30\\%", "myS31\\_"),
    ),
    Case(
        "insert",
        MARIADB,
        "INSERT INTO accounts (id, email, note, amount) VALUES"
        " (7, 'myS32@example.com', \"myS33 note\", 1234.56), (8, N'myS34', 'myS35', 99)",
        ("myS32", "myS33", "myS34", "myS35", "1234.56"),
        "INSERT INTO accounts (id, email, note, amount) VALUES (?, ?, ?, ?)",
        check=(
            "SELECT email, note, amount FROM accounts WHERE id = 7",
            ("myS32@example.com", "myS33 note", Decimal("1234.56")),
        ),
    ),
    Case(
        "update-with-a-user-variable",
        MARIADB,
        "UPDATE accounts SET note = @n := 'myS36' WHERE email = 'myS37' AND amount IN (101, 202)",
        ("myS36", "myS37", "101", "202"),
        "UPDATE accounts SET note = @n := ? WHERE email = ? AND amount IN (?)",
        kept=("@n",),
    ),
    Case(
        "driver-placeholder",
        MARIADB,
        "SELECT %s AS a, 'myS38' AS b",
        ("myS38",),
        "SELECT %s AS a, ? AS b",
        kept=("%s",),
        args=("x",),
        rows=("x", "myS38"),
    ),
]

SQLITE_CASES = [
    Case(
        "strings-and-blobs",
        SQLITE,
        "SELECT 'sqS1''q' AS a, \"sqS2\" AS b, x'73715333' AS c, X'00' AS d",
        ("sqS1", "sqS2", "73715333"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d",
        rows=("sqS1'q", "sqS2", b"sqS3", b"\x00"),
    ),
    Case(
        "numbers",
        SQLITE,
        "SELECT 918273 AS a, 1e-5 AS b, .5 AS c, 5. AS d, 1.5E+10 AS e, 0x1F AS f, -42 AS g",
        ("918273", "1e-5", "1.5E+10", "0x1F", "42"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, -? AS g",
        rows=(918273, 1e-05, 0.5, 5.0, 15000000000.0, 31, -42),
    ),
    Case(
        "bracket-and-backtick-names-stay",
        SQLITE,
        "SELECT [col 1], `c``2` FROM (SELECT 1 AS [col 1], 2 AS `c``2`)",
        (),
        "SELECT [col 1], `c``2` FROM (SELECT ? AS [col 1], ? AS `c``2`)",
        kept=("[col 1]", "`c``2`"),
        rows=(1, 2),
    ),
    Case(
        "dash-comment-runs-past-cr",
        SQLITE,
        "SELECT 1 AS a -- sqS4 it's\r, 'sqS5' AS b",
        ("sqS4", "sqS5"),
        "SELECT ? AS a",
        rows=(1,),
    ),
    Case(
        "block-comments-do-not-nest",
        SQLITE,
        "SELECT 2 AS a /* sqS6 /* not nested */, 3 AS b",
        ("sqS6",),
        "SELECT ? AS a, ? AS b",
        rows=(2, 3),
    ),
    Case(
        "numbered-parameters",
        SQLITE,
        "SELECT ?1 AS a, ?2 AS b, ?1 AS c, 'sqS7' AS d",
        ("sqS7",),
        "SELECT ?1 AS a, ?2 AS b, ?1 AS c, ? AS d",
        kept=("?1", "?2"),
        args=(5, 6),
        rows=(5, 6, 5, "sqS7"),
    ),
    Case(
        "named-parameters",
        SQLITE,
        "SELECT :name AS a, @p AS b, $v AS c, 'sqS8' AS d",
        ("sqS8",),
        "SELECT :name AS a, @p AS b, $v AS c, ? AS d",
        kept=(":name", "@p", "$v"),
        args={"name": 1, "p": 2, "v": 3},
        rows=(1, 2, 3, "sqS8"),
    ),
    Case(
        "insert",
        SQLITE,
        "INSERT INTO accounts (id, email, note, amount) VALUES"
        " (7, 'sqS9@example.com', 'sqS10 -- /* not a comment', 1234.5), (8, 'sqS11', 'x', 99)",
        ("sqS9", "sqS10", "sqS11", "1234.5"),
        "INSERT INTO accounts (id, email, note, amount) VALUES (?, ?, ?, ?)",
        check=(
            "SELECT email, note, amount FROM accounts WHERE id = 7",
            ("sqS9@example.com", "sqS10 -- /* not a comment", 1234.5),
        ),
    ),
]

# No Oracle or SQL Server runs here: these cases follow each one's documented lexing.
ORACLE_CASES = [
    Case(
        "q-quotes",
        ORACLE,
        "SELECT q'[orS1 it's]' AS a, Q'{orS2 {x}}' AS b, q'<orS3>' AS c, q'(orS4)' AS d,"
        " q'!orS5 it's!' AS e, nq'[orS6]' AS f, N'orS7' AS g, NQ'#orS8#' AS h FROM dual",
        ("orS1", "orS2", "orS3", "orS4", "orS5", "orS6", "orS7", "orS8"),
        "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, ? AS g, ? AS h FROM dual",
    ),
    Case(
        "binds-and-names-stay",
        ORACLE,
        'SELECT "Mixed" FROM emp WHERE ename = :name AND empno = :1 AND sal > 1.5e3'
        " AND job# = 'orS9' -- orS10\n AND bonus = 25.5f",
        ("orS9", "orS10", "1.5e3", "25.5f"),
        'SELECT "Mixed" FROM emp WHERE ename = :name AND empno = :1 AND sal > ?'
        " AND job# = ? AND bonus = ?",
        kept=('"Mixed"', ":name", ":1", "job#"),
    ),
]

MSSQL_CASES = [
    Case(
        "brackets-national-money-binary",
        MSSQL,
        "SELECT [it's a name], [a]]b] FROM t WHERE a = N'msS1' AND b = $12.50"
        " AND c = -$4 AND d = \u00a33 AND e = 0x4D53 AND f = @p1",
        ("msS1", "12.50", "0x4D53"),
        "SELECT [it's a name], [a]]b] FROM t WHERE a = ? AND b = ? AND c = -? AND d = ?"
        " AND e = ? AND f = @p1",
        kept=("[it's a name]", "[a]]b]", "@p1"),
    ),
    Case(
        "nested-comments-and-temp-tables",
        MSSQL,
        "SELECT 1 /* msS2 /* nested */ msS3 */ FROM #temp WHERE x = 'msS4' AND y = $action",
        ("msS2", "msS3", "msS4"),
        "SELECT ? FROM #temp WHERE x = ? AND y = $action",
        kept=("#temp", "$action"),
    ),
    Case(
        "quoted-identifier-on-or-off",
        MSSQL,
        "SELECT \"msS5\" FROM t WHERE b = 'msS6'",
        ("msS5", "msS6"),
        "SELECT ? FROM t WHERE b = ?",
    ),
]

# Statements each dialect reads differently: with no dialect, every reading applies.
CROSS_DIALECT_TRAPS = [
    ("SELECT [it's] FROM t WHERE a = 'xS1'", ("xS1",)),  # SQL Server / SQLite bracket name
    ("SELECT q'[it's xS2]' FROM dual", ("xS2",)),  # Oracle q-quote
    ("SELECT 1 # 'x\nxS3'", ("xS3",)),  # PostgreSQL: # is an operator; MySQL: a comment
    ("SELECT 1--'\nxS4'", ("xS4",)),  # MySQL: minus minus; elsewhere a comment
    ("SELECT $12 , 'it$$s' , $$ xS5 $$", ("xS5",)),  # money, dollar quotes
    ("SELECT /*!999999 it's */ 'xS6'", ("xS6",)),  # MySQL: skipped or run
    (r"SELECT 'C:\' , 'xS7' , 'it\'s xS8'", ("xS7", "xS8")),  # backslash escapes or not
    ("""SELECT "it's" , 'xS9'""", ("xS9",)),  # "..." a name or a string
    ("SELECT 1 -- a\r'xS10'", ("xS10",)),  # -- ends at \r (PostgreSQL) or not
    ("SELECT /* a /* b */ 'xS11' */ 'xS12'", ("xS11", "xS12")),  # nested comments or not
    ("SELECT 1E'a\\' , 'xS13'", ("xS13",)),  # 1 then E'...' (PostgreSQL < 15)
    ("SELECT 28$3, a$1 FROM t", ("28", "$3")),  # SQL Server money after a number
    ("SELECT 1$$a'b$$, 'xS14'", ("xS14",)),  # a dollar quote right after a number
    ("SELECT `it's` , 'xS15'", ("xS15",)),  # MySQL / SQLite backtick name
    ("SELECT N'xS16' , nq'!xS17!' , U&'xS18'", ("xS16", "xS17", "xS18")),
]

ALL_CASES = POSTGRESQL_CASES + MYSQL_CASES + SQLITE_CASES + ORACLE_CASES + MSSQL_CASES


def _ids(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=f"{case.system}-{case.id}") for case in cases]


@pytest.mark.parametrize("case", _ids(ALL_CASES))
def test_no_secret_survives_for_its_dialect(case: Case) -> None:
    out = sanitize_sql(case.sql, case.system)
    for secret in case.secrets:
        assert secret not in out, f"{secret!r} survived in {out!r}"
    if case.expected is not None:
        assert out == case.expected
    for name in case.kept:
        assert name in out, f"{name!r} was removed from {out!r}"


@pytest.mark.parametrize("case", _ids(ALL_CASES))
@pytest.mark.parametrize("system", [None, "other_sql", "cockroachdb"])
def test_no_secret_survives_when_the_dialect_is_unknown(case: Case, system: str | None) -> None:
    out = sanitize_sql(case.sql, system)
    for secret in case.secrets:
        assert secret not in out, f"{secret!r} survived in {out!r}"


@pytest.mark.parametrize(("sql", "secrets"), CROSS_DIALECT_TRAPS)
def test_statements_dialects_read_differently(sql: str, secrets: tuple[str, ...]) -> None:
    out = sanitize_sql(sql)
    for secret in secrets:
        assert secret not in out, f"{secret!r} survived in {out!r}"


@pytest.mark.parametrize("case", _ids(ALL_CASES))
def test_sanitising_twice_changes_nothing(case: Case) -> None:
    # trace_query sanitises, then the export path sanitises the same text again. (With
    # no dialect, a second pass may remove more: "[it?" is an open [name] in SQL Server.)
    once = sanitize_sql(case.sql, case.system)
    assert sanitize_sql(once, case.system) == once


@pytest.mark.parametrize(
    ("system", "same_as"),
    [
        ("mariadb", "mysql"),
        ("MySQL", "mysql"),
        ("oracle", "oracle.db"),
        ("mssql", "microsoft.sql_server"),
        (" postgresql ", "postgresql"),
    ],
)
def test_both_naming_conventions_pick_the_same_dialect(system: str, same_as: str) -> None:
    for case in ALL_CASES:
        assert sanitize_sql(case.sql, system) == sanitize_sql(case.sql, same_as)


def test_the_layers_name_is_the_same_function() -> None:
    assert layers_sanitize_sql is sanitize_sql
    from tenantrace.layers._sql import sanitize_sql as private_name
    from tenantrace.layers.database import sanitize_sql as database_name

    assert private_name is sanitize_sql and database_name is sanitize_sql


def test_instrumentation_does_not_import_the_layers() -> None:
    code = (
        "import sys, tenantrace.export.sql as s; s.sanitize_sql('SELECT 1');"
        "print(sorted(m for m in sys.modules if m.startswith('tenantrace.layers')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_never_raises_and_takes_any_text(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sanitize_sql(None) == "?"  # type: ignore[arg-type]
    assert sanitize_sql(b"SELECT 'x'") == "?"  # type: ignore[arg-type]
    assert sanitize_sql("") == ""
    assert sanitize_sql("SELECT 1", 42) == "SELECT ?"  # type: ignore[arg-type]
    assert sanitize_sql("SELECT '\x00\ud800'") == "SELECT ?"

    def broken(query: str, dialect: str) -> str:
        raise RuntimeError("a bug")

    sql_module._sanitize_cached.cache_clear()
    monkeypatch.setattr(sql_module, "_sanitize", broken)
    assert sanitize_sql("SELECT 'LEAK' FROM t") == "?"  # never the raw text
    sql_module._sanitize_cached.cache_clear()


def test_long_statements_are_cut_and_not_cached() -> None:
    sql_module._sanitize_cached.cache_clear()
    long_literal = "SELECT * FROM t WHERE a = '" + "s" * (2 * MAX_QUERY_CHARS) + "'"
    assert sanitize_sql(long_literal) == "SELECT * FROM t WHERE a = ?"
    middle = "SELECT " + ", ".join(f"c{i}" for i in range(1000)) + " FROM t WHERE a = 'LEAK'"
    assert len(middle) > 4096
    assert sanitize_sql(middle).endswith("FROM t WHERE a = ?")
    assert sql_module._sanitize_cached.cache_info().currsize == 0  # neither was kept
    sanitize_sql("SELECT 'short'")
    assert sql_module._sanitize_cached.cache_info().currsize == 1


def test_caches_are_bounded() -> None:
    assert sql_module._sanitize_cached.cache_info().maxsize == 512
    assert sql_module._readings.cache_info().maxsize is not None
    assert sql_module._compile.cache_info().maxsize is not None
    sql_module._sanitize_cached.cache_clear()
    for i in range(2000):
        sanitize_sql(f"SELECT * FROM t WHERE id = {i}")
    assert sql_module._sanitize_cached.cache_info().currsize == 512


def test_every_currency_symbol_reads_as_money_in_sql_server() -> None:
    symbols = [
        chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Sc"
    ]
    assert len(symbols) > 50
    for symbol in symbols:
        assert sanitize_sql(f"SELECT {symbol}918273", MSSQL) == "SELECT ?", symbol
