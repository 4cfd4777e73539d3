"""How each database reads SQL: its *readings* (lexer configurations), and which of
them differ for a given statement.

A reading is one configuration of a database's lexer (see ``tenantrace.export.sql``);
``distinct_readings(dialect, features)`` gives the readings of ``dialect`` that
a statement with ``features`` (``statement_features(query)``) can tell apart: a flag
whose characters the statement lacks is set to its default, so a typical
statement has one reading even when its dialect is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

__all__ = ["CURRENCY", "Reading", "dialect_of", "distinct_readings", "statement_features"]

# Characters of an unquoted name. PostgreSQL, MySQL and SQLite take every
# non-ASCII character (and ``$`` after the first): written as "no ASCII character
# but 0-9 A-Z a-z _ $", a class that compiles fast. Oracle adds ``#``; SQL Server
# ``@`` and ``#``. A quote prefix (``E'``) or a digit right after one of them is
# part of the name, not a literal.
_WIDE: Final = "[^\\x00-\\x23\\x25-\\x2f\\x3a-\\x40\\x5b-\\x5e\\x60\\x7b-\\x7f]"
_ORACLE: Final = "[\\w$#]"
_TSQL: Final = "[\\w@#$]"

# Unicode currency symbols (category Sc): SQL Server reads ``$12.50`` or ``€5``
# as a money literal. The whole U+20A0 block is included, assigned or not.
CURRENCY: Final = (
    "$\\u00a2-\\u00a5\\u058f\\u060b\\u07fe\\u07ff\\u09f2\\u09f3\\u09fb\\u0af1\\u0bf9\\u0e3f"
    "\\u17db\\u20a0-\\u20cf\\ua838\\ufdfc\\ufe69\\uff04\\uffe0\\uffe1\\uffe5\\uffe6"
    "\\U00011fdd-\\U00011fe0\\U0001e2ff\\U0001ecb0"
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One lexer configuration. The defaults are what each flag means when the
    statement lacks the characters that make it matter (see ``distinct_readings``)."""

    ident: str = _WIDE  # the class of an unquoted name's characters
    names: str = ""  # after these, digits name a parameter or variable: ?1 :1 @1 $1
    backslash: bool = False  # '...', N'...', U&'...', "..." strings take backslash escapes
    e_backslash: bool = False  # E'...' takes backslash escapes (PostgreSQL)
    dquote: str = "string"  # "..." is a "string" or an "ident"
    dollar: str = "none"  # "quote": $$...$$, $tag$...$tag$; "money": $12.50, €5
    brackets: str = "none"  # [name]: "plain" (SQLite) or "doubled" (SQL Server: ]] escapes)
    backticks: bool = False  # `name`
    hash_comment: bool = False  # # ... to the end of the line (MySQL)
    dash_space: bool = False  # -- opens a comment only before whitespace or a control (MySQL)
    dash_cr: bool = False  # a -- comment also ends at \r
    nested: bool = False  # /* /* */ */ nest
    bang: str = "plain"  # /*! ... */ (MySQL): "open" (its text is SQL) or "skip" (nests once)
    mbang: str = "plain"  # /*M! ... */ (MariaDB): "plain" comment, "open" or "skip"
    q_quotes: bool = False  # q'[...]', Q'{...}', nq'!...!' (Oracle)


def _variants(base: Reading, **choices: tuple[Any, ...]) -> tuple[Reading, ...]:
    readings = [base]
    for field, values in choices.items():
        readings = [replace(r, **{field: v}) for r in readings for v in values]
    return tuple(readings)


_POSTGRESQL: Final = _variants(
    Reading(dquote="ident", dollar="quote", nested=True, dash_cr=True, e_backslash=True),
    backslash=(False, True),  # standard_conforming_strings on (the default) / off
)
_MYSQL: Final = _variants(
    Reading(names="@", backticks=True, hash_comment=True, dash_space=True),
    backslash=(True, False),  # default / NO_BACKSLASH_ESCAPES
    dquote=("string", "ident"),  # default / ANSI_QUOTES
    bang=("open", "skip"),  # /*!NNNNN ... */ run or skipped by the server's version
    mbang=("open", "skip", "plain"),  # MariaDB runs /*M! ... */, MySQL ignores it
)
_SQLITE: Final = (
    # "..." names a column if one exists, else it is a string: read as a string.
    Reading(names="?:@#$", brackets="plain", backticks=True),
)
# PostgreSQL ends a -- comment at \r as well as \n, MariaDB and SQLite only at \n (both
# checked on the servers); for Oracle and SQL Server, untested here, both are read.
_ORACLE_DB: Final = _variants(
    Reading(ident=_ORACLE, names=":", dquote="ident", q_quotes=True),
    dash_cr=(False, True),
)
_SQL_SERVER: Final = _variants(
    Reading(ident=_TSQL, brackets="doubled", dollar="money", nested=True),
    dquote=("ident", "string"),  # QUOTED_IDENTIFIER ON (the default) / OFF
    dash_cr=(False, True),
)

_DIALECTS: Final[dict[str, tuple[Reading, ...]]] = {
    "postgresql": _POSTGRESQL,
    "mysql": _MYSQL,
    "sqlite": _SQLITE,
    "oracle": _ORACLE_DB,
    "sqlserver": _SQL_SERVER,
    "any": _POSTGRESQL + _MYSQL + _SQLITE + _ORACLE_DB + _SQL_SERVER,
}
# db.system.name (stable conventions) and db.system (earlier ones), lowercased.
_SYSTEMS: Final = {
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "oracle.db": "oracle",
    "oracle": "oracle",
    "microsoft.sql_server": "sqlserver",
    "mssql": "sqlserver",
}


def dialect_of(db_system: object) -> str:
    if isinstance(db_system, str):
        return _SYSTEMS.get(db_system.strip().lower(), "any")
    return "any"


# What in a statement makes a flag matter; without it, the flag is set to its default.
_F_BACKSLASH: Final = 1
_F_DQUOTE: Final = 2
_F_DOLLAR: Final = 4
_F_BRACKET: Final = 8
_F_BACKTICK: Final = 16
_F_HASH: Final = 32
_F_DASH: Final = 64
_F_CR: Final = 128
_F_NEST: Final = 256
_F_BANG: Final = 512
_F_MBANG: Final = 1024
_F_QQUOTE: Final = 2048
_F_NAMES: Final = 4096

_HAS_CURRENCY: Final = re.compile(f"[{CURRENCY}]")
# Where the name classes differ: # and @, non-ASCII text, and these (?1 :1 $1 :.5).
_HAS_NAME_DIGITS: Final = re.compile("[?:$][0-9.]")


_PLAIN_FEATURES: Final = (
    ("\\", _F_BACKSLASH),
    ('"', _F_DQUOTE),
    ("$", _F_DOLLAR),
    ("[", _F_BRACKET),
    ("`", _F_BACKTICK),
    ("#", _F_HASH | _F_NAMES),
    ("@", _F_NAMES),
    ("--", _F_DASH),
    ("\r", _F_CR),
    ("/*!", _F_BANG),
    ("/*M!", _F_MBANG),
    ("q'", _F_QQUOTE),
    ("Q'", _F_QQUOTE),
)


def statement_features(query: str) -> int:
    features = 0
    for text, feature in _PLAIN_FEATURES:
        if text in query:
            features |= feature
    if query.count("/*") > 1:
        features |= _F_NEST
    if not query.isascii():
        features |= _F_NAMES
        if _HAS_CURRENCY.search(query):
            features |= _F_DOLLAR
    elif _HAS_NAME_DIGITS.search(query):
        features |= _F_NAMES
    return features


_DEFAULT: Final = Reading()
_RELEVANCE: Final = (
    (_F_NAMES, ("ident", "names")),
    (_F_BACKSLASH, ("backslash", "e_backslash")),
    (_F_DQUOTE, ("dquote",)),
    (_F_DOLLAR, ("dollar",)),
    (_F_BRACKET, ("brackets",)),
    (_F_BACKTICK, ("backticks",)),
    (_F_HASH, ("hash_comment",)),
    (_F_DASH, ("dash_space",)),
    (_F_DASH | _F_CR, ("dash_cr",)),
    (_F_NEST, ("nested",)),
    (_F_BANG, ("bang",)),
    (_F_MBANG, ("mbang",)),
    (_F_QQUOTE, ("q_quotes",)),
)


def distinct_readings(dialect: str, features: int) -> Iterable[Reading]:
    """The distinct readings of ``dialect`` for a statement with ``features``."""
    distinct: dict[Reading, None] = {}
    for reading in _DIALECTS[dialect]:
        defaults: dict[str, Any] = {
            name: getattr(_DEFAULT, name)
            for needed, names in _RELEVANCE
            if features & needed != needed
            for name in names
        }
        distinct[replace(reading, **defaults)] = None
    return distinct.keys()
