"""SQL text without its literals: strings, numbers and comments become ``?`` or nothing.

The tokenizer is one regular expression scanned left to right, so a quote
inside a comment or a ``--`` inside a string is read the way the database
reads it. Anything unterminated (a string, a comment, a dollar quote) runs to
the end of the text and is replaced whole: when in doubt, remove more.

Backslash escapes depend on the dialect (MySQL: ``'it\\'s'``; standard SQL:
``'C:\\'`` is complete). For a query holding a backslash whose dialect is not
known, every character that either reading takes for a literal is removed, so
whichever reading is right, no literal survives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

__all__ = ["sanitize_sql"]

# Dialects where a backslash escapes a quote inside a string literal.
_BACKSLASH_DIALECTS: Final = frozenset({"mysql", "mariadb", "tidb", "clickhouse"})
# Dialects where "..." is always an identifier, never a string.
_QUOTED_IDENTIFIER_DIALECTS: Final = frozenset({"postgresql", "cockroachdb", "oracle.db"})
# Dialects known to follow the standard (no backslash escapes).
_STANDARD_DIALECTS: Final = frozenset(
    {"postgresql", "sqlite", "oracle.db", "microsoft.sql_server", "cockroachdb", "h2"}
)

MAX_QUERY_CHARS: Final = 16_384

# Alternatives in the order they are tried at one position: E'...' before
# identifiers (or the E would be read as a name), strings before comments.
_STANDARD_STRINGS = r"""
  (?P<estring>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z))
| (?P<string>'(?:[^']|'')*(?:'|\Z))
| (?P<dquoted>"(?:[^"]|"")*(?:"|\Z))
"""
_BACKSLASH_STRINGS = r"""
  (?P<estring>(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z))
| (?P<string>'(?:[^'\\]|\\.|'')*(?:'|\Z))
| (?P<dquoted>"(?:[^"\\]|\\.|"")*(?:"|\Z))
"""
_COMMON = r"""
| (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
| (?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
| (?P<placeholder>\$\d+|%\(\w+\)s|%s|\?|:[^\W\d]\w*|@[^\W\d]\w*)
| (?P<ident>[^\W\d][\w$]*)
| (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
| (?P<bquoted>`[^`]*(?:`|\Z))
"""
_STANDARD: Final = re.compile(_STANDARD_STRINGS + _COMMON, re.VERBOSE | re.DOTALL)
_BACKSLASH: Final = re.compile(_BACKSLASH_STRINGS + _COMMON, re.VERBOSE | re.DOTALL)

_SPACES: Final = re.compile(r"\s+")
_IN_LIST: Final = re.compile(r"\bIN\s*\(\s*(?:\?|%s)(?:\s*,\s*(?:\?|%s))*\s*\)", re.IGNORECASE)
# VALUES (?, ?), (?, ?), ...: a batch insert of n rows is one shape, not n.
_REPEATED_TUPLES: Final = re.compile(r"(\([?,\s]*\))(?:\s*,\s*\1)+")
_CLOSE_BEFORE: Final = re.compile(r"\s+([,)])")
_OPEN_AFTER: Final = re.compile(r"\(\s+")


_KEPT: Final = frozenset({"ident", "placeholder", "bquoted"})
_COMMENT_MARK: Final = 1
_LITERAL_MARK: Final = 2


def _replacer(keep_double_quoted: bool) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind in _KEPT or (kind == "dquoted" and keep_double_quoted):
            return match.group()
        return " " if kind == "comment" else "?"

    return replace


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _CLOSE_BEFORE.sub(r"\1", _OPEN_AFTER.sub("(", text))
    text = _IN_LIST.sub("IN (?)", text)
    return _REPEATED_TUPLES.sub(r"\1", text)


def _sanitize_with(pattern: re.Pattern[str], query: str, keep_double_quoted: bool) -> str:
    return _tidy(pattern.sub(_replacer(keep_double_quoted), query))


def _mark(pattern: re.Pattern[str], query: str, keep_double_quoted: bool, marks: bytearray) -> None:
    """Mark in ``marks`` the characters this reading of ``query`` removes."""
    for match in pattern.finditer(query):
        kind = match.lastgroup
        if kind in _KEPT or (kind == "dquoted" and keep_double_quoted):
            continue
        mark = _COMMENT_MARK if kind == "comment" else _LITERAL_MARK
        for index in range(match.start(), match.end()):
            marks[index] = max(marks[index], mark)


def _sanitize_both_readings(query: str, keep_double_quoted: bool) -> str:
    """Remove every character that either reading (with or without backslash escapes)
    takes for a literal or a comment: whichever reading is right, no literal survives."""
    marks = bytearray(len(query))
    _mark(_STANDARD, query, keep_double_quoted, marks)
    _mark(_BACKSLASH, query, keep_double_quoted, marks)
    out: list[str] = []
    index = 0
    while index < len(query):
        if not marks[index]:
            out.append(query[index])
            index += 1
            continue
        end, strongest = index, 0
        while end < len(query) and marks[end]:
            strongest = max(strongest, marks[end])
            end += 1
        out.append("?" if strongest == _LITERAL_MARK else " ")
        index = end
    return _tidy("".join(out))


@lru_cache(maxsize=512)
def _sanitize_cached(query: str, dialect: str) -> str:
    keep_double = dialect in _QUOTED_IDENTIFIER_DIALECTS
    if dialect in _BACKSLASH_DIALECTS:
        return _sanitize_with(_BACKSLASH, query, keep_double)
    if "\\" not in query or dialect in _STANDARD_DIALECTS:
        return _sanitize_with(_STANDARD, query, keep_double)
    return _sanitize_both_readings(query, keep_double)


def sanitize_sql(query: str, db_system: str | None = None) -> str:
    """``query`` with every literal replaced by ``?``, comments removed, IN lists collapsed.

    ``SELECT * FROM t WHERE a = 'x' AND b IN (1, 2, 3)`` becomes
    ``SELECT * FROM t WHERE a = ? AND b IN (?)``. Placeholders (``?``, ``$1``,
    ``%s``, ``%(name)s``, ``:name``) and identifiers are kept. Text past
    16 KiB is cut before sanitising (an open literal at the cut is removed).
    """
    if not isinstance(query, str):
        return "?"
    dialect = (db_system or "").lower()
    if len(query) > MAX_QUERY_CHARS:
        return _sanitize_cached.__wrapped__(query[:MAX_QUERY_CHARS], dialect)
    return _sanitize_cached(query, dialect)
