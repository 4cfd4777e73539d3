"""SQL text without its literals: strings, numbers and comments become ``?`` or nothing.

``sanitize_sql(query, db_system)`` is what a span may say about a statement. It
runs where the statement is recorded (``trace_query``) and again on the export
thread for every span carrying ``db.query.text`` / ``db.statement``,
auto-instrumented ones included, so it is built to be cheap, bounded and
never to raise. It imports nothing from ``tenantrace.layers``.

How a statement is read
-----------------------
A *reading* is one configuration of a database's lexer: PostgreSQL with
``standard_conforming_strings`` on or off, MySQL/MariaDB with or without
``NO_BACKSLASH_ESCAPES`` and ``ANSI_QUOTES``, SQL Server with
``QUOTED_IDENTIFIER`` on or off, and so on. Each reading is one regular
expression scanned left to right, so a quote inside a comment or a ``--``
inside a string is read the way that server reads it. A character is removed
when *any* reading of the statement's dialect takes it for part of a literal
or a comment; a literal run becomes ``?``, a comment becomes a space. Whatever
the server's settings, then, none of its literals survives.

``db_system`` picks the dialect, in either naming of the OpenTelemetry
conventions (``db.system.name`` or the older ``db.system``):

============================================  =================================
``postgresql``                                PostgreSQL (both settings of
                                              ``standard_conforming_strings``)
``mysql``, ``mariadb``                        MySQL and MariaDB (every
                                              ``sql_mode`` that changes lexing)
``sqlite``                                    SQLite
``oracle.db``, ``oracle``                     Oracle
``microsoft.sql_server``, ``mssql``           SQL Server (``QUOTED_IDENTIFIER``
                                              on and off)
anything else, or ``None``                    every reading of all five
============================================  =================================

Only the readings that differ *for this statement* are run: a statement
without a backslash reads the same with and without backslash escapes, one
without ``"`` the same whether ``"`` quotes names or strings, and so on. A
typical statement is scanned once even when its dialect is unknown.

Anything unterminated (a string, a quoted name, a comment, a dollar quote)
runs to the end of the text and is removed: when in doubt, remove more. Text
past ``MAX_QUERY_CHARS`` is cut before sanitising. Results are cached (LRU,
bounded in entries and in the size of what is cached).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from tenantrace.export._sql_dialects import dialect_of, distinct_readings, statement_features
from tenantrace.export._sql_lexer import Patterns, scan
from tenantrace.export._sql_lexer import compile_reading as _compile

__all__ = ["MAX_QUERY_CHARS", "sanitize_sql"]

MAX_QUERY_CHARS: Final = 16_384
_MAX_CACHED_CHARS: Final = 4_096  # longer statements are sanitised every time, not kept
_CACHE_ENTRIES: Final = 512


@lru_cache(maxsize=512)
def _readings(dialect: str, features: int) -> tuple[Patterns, ...]:
    """The distinct readings of ``dialect`` for a statement with ``features``, compiled."""
    return tuple(_compile(reading) for reading in distinct_readings(dialect, features))


# --------------------------------------------------------------------------- output

# After _tidy's first steps, whitespace is single spaces, none after "(" or before "," ")".
_IN_LIST: Final = re.compile("[Ii](?<!\\w.)[Nn] ?\\((?:\\?|%s)(?:, ?(?:\\?|%s))*\\)")
# VALUES (?, ?), (?, ?), ...: a batch insert of n rows is one shape, not n.
_REPEATED_TUPLES: Final = re.compile("(\\([?,\\s]*\\))(?:\\s*,\\s*\\1)+")


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = text.replace("( ", "(").replace(" )", ")").replace(" ,", ",")
    if "(" in text and ("?" in text or "%s" in text):
        text = _REPEATED_TUPLES.sub("\\1", _IN_LIST.sub("IN (?)", text))
    return text


def _sanitize(query: str, dialect: str) -> str:
    readings = _readings(dialect, statement_features(query))
    intervals = scan(query, readings[0])
    if len(readings) > 1:
        for patterns in readings[1:]:
            intervals += scan(query, patterns)
        intervals.sort()
    out: list[str] = []
    kept_from = 0
    index = 0
    while index < len(intervals):
        start, end, literal = intervals[index]
        index += 1
        # Overlapping or touching removals (from one reading or several) merge into one.
        while index < len(intervals) and intervals[index][0] <= end:
            end = max(end, intervals[index][1])
            literal = literal or intervals[index][2]
            index += 1
        out.append(query[kept_from:start])
        out.append("?" if literal else " ")
        kept_from = end
    out.append(query[kept_from:])
    return _tidy("".join(out))


@lru_cache(maxsize=_CACHE_ENTRIES)
def _sanitize_cached(query: str, dialect: str) -> str:
    return _sanitize(query, dialect)


def sanitize_sql(query: str, db_system: str | None = None) -> str:
    """``query`` with every literal replaced by ``?``, comments removed, IN lists collapsed.

    ``SELECT * FROM t WHERE a = 'x' AND b IN (1, 2, 3)`` becomes
    ``SELECT * FROM t WHERE a = ? AND b IN (?)``. Identifiers (quoted or not)
    and placeholders (``?``, ``$1``, ``%s``, ``%(name)s``, ``:name``) are kept
    where the dialect reads them so. ``db_system`` is a ``db.system.name`` (or
    ``db.system``) value naming the dialect; unknown or ``None``: every dialect's
    reading is applied. Never raises: what cannot be sanitised becomes ``?``.
    """
    try:
        if not isinstance(query, str):
            return "?"
        dialect = dialect_of(db_system)
        if len(query) > MAX_QUERY_CHARS:
            query = query[:MAX_QUERY_CHARS]
        if len(query) > _MAX_CACHED_CHARS:
            return _sanitize(query, dialect)
        return _sanitize_cached(query, dialect)
    except Exception:  # a bug here must not cost the span, nor leak the text
        return "?"
