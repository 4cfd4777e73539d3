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
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

__all__ = ["MAX_QUERY_CHARS", "sanitize_sql"]

MAX_QUERY_CHARS: Final = 16_384
_MAX_CACHED_CHARS: Final = 4_096  # longer statements are sanitised every time, not kept
_CACHE_ENTRIES: Final = 512

# --------------------------------------------------------------------------- readings

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
_CURRENCY: Final = (
    "$\\u00a2-\\u00a5\\u058f\\u060b\\u07fe\\u07ff\\u09f2\\u09f3\\u09fb\\u0af1\\u0bf9\\u0e3f"
    "\\u17db\\u20a0-\\u20cf\\ua838\\ufdfc\\ufe69\\uff04\\uffe0\\uffe1\\uffe5\\uffe6"
    "\\U00011fdd-\\U00011fe0\\U0001e2ff\\U0001ecb0"
)


@dataclass(frozen=True, slots=True)
class _Reading:
    """One lexer configuration. The defaults are what each flag means when the
    statement lacks the characters that make it matter (see ``_readings``)."""

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


def _variants(base: _Reading, **choices: tuple[Any, ...]) -> tuple[_Reading, ...]:
    readings = [base]
    for field, values in choices.items():
        readings = [replace(r, **{field: v}) for r in readings for v in values]
    return tuple(readings)


_POSTGRESQL: Final = _variants(
    _Reading(dquote="ident", dollar="quote", nested=True, dash_cr=True, e_backslash=True),
    backslash=(False, True),  # standard_conforming_strings on (the default) / off
)
_MYSQL: Final = _variants(
    _Reading(names="@", backticks=True, hash_comment=True, dash_space=True),
    backslash=(True, False),  # default / NO_BACKSLASH_ESCAPES
    dquote=("string", "ident"),  # default / ANSI_QUOTES
    bang=("open", "skip"),  # /*!NNNNN ... */ run or skipped by the server's version
    mbang=("open", "skip", "plain"),  # MariaDB runs /*M! ... */, MySQL ignores it
)
_SQLITE: Final = (
    # "..." names a column if one exists, else it is a string: read as a string.
    _Reading(names="?:@#$", brackets="plain", backticks=True),
)
# PostgreSQL ends a -- comment at \r as well as \n, MariaDB and SQLite only at \n (both
# checked on the servers); for Oracle and SQL Server, untested here, both are read.
_ORACLE_DB: Final = _variants(
    _Reading(ident=_ORACLE, names=":", dquote="ident", q_quotes=True),
    dash_cr=(False, True),
)
_SQL_SERVER: Final = _variants(
    _Reading(ident=_TSQL, brackets="doubled", dollar="money", nested=True),
    dquote=("ident", "string"),  # QUOTED_IDENTIFIER ON (the default) / OFF
    dash_cr=(False, True),
)

_DIALECTS: Final[dict[str, tuple[_Reading, ...]]] = {
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


def _dialect(db_system: object) -> str:
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

_HAS_CURRENCY: Final = re.compile(f"[{_CURRENCY}]")
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


def _features(query: str) -> int:
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


_DEFAULT: Final = _Reading()
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


@lru_cache(maxsize=512)
def _readings(dialect: str, features: int) -> tuple[_Patterns, ...]:
    """The distinct readings of ``dialect`` for a statement with ``features``, compiled."""
    distinct: dict[_Reading, None] = {}
    for reading in _DIALECTS[dialect]:
        defaults: dict[str, Any] = {
            name: getattr(_DEFAULT, name)
            for needed, names in _RELEVANCE
            if features & needed != needed
            for name in names
        }
        distinct[replace(reading, **defaults)] = None
    return tuple(_compile(reading) for reading in distinct)


# --------------------------------------------------------------------------- patterns

_LITERAL: Final = 0  # removed, becomes ?
_COMMENT: Final = 1  # removed, becomes a space
_KEEP: Final = 2  # kept as written (a quoted name, a $1 parameter)
_NEST: Final = 3  # /* of a nesting comment: its end is found by counting
_NEST_ONCE: Final = 4  # /*! skipped by MySQL: one level of nesting
_EXEC_OPEN: Final = 5  # /*! whose text is SQL
_EXEC_CLOSE: Final = 6  # the */ of that comment

# Group kind: (action, prefix letters before the match that belong to the literal,
# whether the token ends in a name's character though no name goes on after it).
_ACTIONS: Final = {
    "lit": (_LITERAL, 0, False),
    "lit1": (_LITERAL, 1, False),
    "lit2": (_LITERAL, 2, False),
    "num": (_LITERAL, 0, True),
    "param": (_KEEP, 0, True),
    "com": (_COMMENT, 0, False),
    "keep": (_KEEP, 0, False),
    "nest": (_NEST, 0, False),
    "once": (_NEST_ONCE, 0, False),
    "xopen": (_EXEC_OPEN, 0, False),
    "xclose": (_EXEC_CLOSE, 0, False),
}

_Alternative = tuple[str, str, str]  # kind (see _ACTIONS), first character(s), the rest
_Patterns = tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]


def _string(quote: str, backslash: bool) -> str:
    """The rest of a string opened by ``quote``: doubled quotes, maybe backslash escapes."""
    q = re.escape(quote)
    if backslash:
        return f"(?:[^{q}\\\\]|\\\\[\\s\\S]|{q}{q})*+(?:{q}|\\\\?\\Z)"
    return f"(?:[^{q}]|{q}{q})*+(?:{q}|\\Z)"


def _quoted_name(opening: str, body: str, closing: str) -> list[_Alternative]:
    # A terminated quoted name is kept; an unterminated one runs to the end and goes.
    return [("keep", opening, f"{body}{closing}"), ("lit", opening, "[\\s\\S]*")]


def _comments(r: _Reading) -> list[_Alternative]:
    found: list[_Alternative] = []
    for marker, mode in (("!", r.bang), ("M!", r.mbang)):  # MySQL's executable ones first
        if mode == "open":
            found.append(("xopen", "/", f"\\*{marker}\\d*"))
        elif mode == "skip":
            found.append(("once", "/", f"\\*{marker}"))
    if r.nested:
        found.append(("nest", "/", "\\*"))
    else:
        found.append(("com", "/", "\\*[\\s\\S]*?(?:\\*/|\\Z)"))
    dash = "-(?=[\\x00-\\x20\\x7f]|\\Z)" if r.dash_space else "-"
    found.append(("com", "-", dash + ("[^\\n\\r]*" if r.dash_cr else "[^\\n]*")))
    if r.hash_comment:
        found.append(("com", "#", "[^\\n]*"))
    return found


def _q_quoted(group: str) -> str:
    """The rest of an Oracle q-quote after its ``'``: up to the closing delimiter and ``'``."""
    other = f"(?P<{group}>[^\\s\\[{{<(])[\\s\\S]*?(?:(?P={group})'|\\Z)"
    return (
        "(?:\\[[\\s\\S]*?(?:\\]'|\\Z)|\\{[\\s\\S]*?(?:\\}'|\\Z)|<[\\s\\S]*?(?:>'|\\Z)"
        f"|\\([\\s\\S]*?(?:\\)'|\\Z)|{other})"
    )


def _strings(r: _Reading, glued: bool) -> list[_Alternative]:
    """Strings, prefixed ones first (E'', B'', X'', N'', U&'', q'[...]', nq'...').

    Searching, a prefix is told by looking back from the quote, so that names are
    never tried as prefixes, and only where it does not continue a name
    (``namE'x'`` is a name and a string); "lit1" / "lit2" take its letters into
    the literal. ``glued``: right after a token that ends in a name's character
    (a number, a ``$1``), the prefix letter starts the match itself.
    """
    plain = _string("'", r.backslash)
    bodies = [  # (prefix letters, the string after its quote)
        ("[eE]", _string("'", r.e_backslash or r.backslash)),
        ("[bBxX]", _string("'", False)),
        ("[nN][qQ]", plain),
        ("[uU]&", plain),
        ("[nNqQ]", plain),
    ]
    if r.q_quotes:
        bodies[:0] = [("[nN][qQ]", _q_quoted("nqd")), ("[qQ]", _q_quoted("qd"))]
    found: list[_Alternative] = []
    for prefix, body in bodies:
        first, _, more = prefix.partition("]")
        first += "]"
        if glued:  # the prefix's first letter is the match's first character
            found.append(("lit", first, f"{more}'{body}"))
        else:
            letters = prefix.count("[") + prefix.count("&")
            not_in_name = f"(?<!{r.ident}{'.' * (letters + 1)})"
            found.append((f"lit{letters}", "'", f"(?<={prefix}'){not_in_name}{body}"))
    found.append(("lit", "'", plain))
    if r.dquote == "string":
        found.append(("lit", '"', _string('"', r.backslash)))
    else:
        found += _quoted_name('"', '(?:[^"]|"")*+', '"')
    return found


def _names(r: _Reading) -> list[_Alternative]:
    found: list[_Alternative] = []
    if r.brackets == "doubled":
        found += _quoted_name("\\[", "(?:[^\\]]|\\]\\])*+", "\\]")
    elif r.brackets == "plain":
        found += _quoted_name("\\[", "[^\\]]*+", "\\]")
    if r.backticks:
        found += _quoted_name("`", "(?:[^`]|``)*+", "`")
    return found


def _numbers(r: _Reading, glued: bool) -> list[_Alternative]:
    """$1 parameters, dollar quotes, money and numbers. Searching, a digit right after
    a name's character (t1) or a parameter's sigil (?1 :1 @1 where the dialect says
    so) is no number, and a ``$`` right after a name's character starts nothing."""
    after_name = "" if glued else f"(?<!{r.ident}.)"
    after_param = after_name
    if r.names and not glued:
        after_param += f"(?<![{re.escape(r.names)}].)"
    letter = "[^\\W\\d_](?![&'\"])"  # 1e5, 0x1F, 0o17, 1_000 go on; the E of 1E'...' does not
    digits = f"(?:\\d|_|{letter})*"
    exponent = f"(?:(?<=[eE])[-+]\\d{digits})?"
    found: list[_Alternative] = []
    if r.dollar == "quote":
        tag = "(?:[A-Za-z_]|[^\\x00-\\x7f])(?:[0-9A-Za-z_]|[^\\x00-\\x7f])*"
        found.append(("param", "\\$", f"{after_name}\\d+"))
        found.append(
            ("lit", "\\$", f"{after_name}(?P<tag>(?:{tag})?)\\$[\\s\\S]*?(?:\\$(?P=tag)\\$|\\Z)")
        )
    elif r.dollar == "money":
        number = f"(?:\\d{digits}(?:\\.{digits})?|\\.\\d{digits}){exponent}"
        found.append(("lit", f"[{_CURRENCY}]", f"{after_name}[-+]?{number}"))
    rest = f"(?:(?<=\\d){digits}(?:\\.{digits})?|(?<=\\.)\\d{digits}){exponent}"
    found.append(("num", "[\\d.]", after_param + rest))
    return found


def _build(alternatives: list[_Alternative]) -> re.Pattern[str]:
    """``[every first character](?:(?<=first)(?:rest|rest...)|...)``.

    Starting with one character class lets the regex engine skip everything
    else (names, keywords, spaces, operators) at C speed; the look-behind then
    picks the alternatives that start with the character just read.
    """
    seen: dict[str, int] = {}
    by_first: dict[str, list[str]] = {}
    for kind, first, rest in alternatives:
        seen[kind] = seen.get(kind, 0) + 1
        by_first.setdefault(first, []).append(f"(?P<{kind}_{seen[kind]}>{rest})")
    firsts = "".join(
        first[1:-1] if first.startswith("[") else re.escape(first) if len(first) == 1 else first
        for first in by_first
    )
    # Digits come first: most of them end a name (t1, c42) and must be turned down fast.
    groups = sorted(by_first.items(), key=lambda group: group[0] != "[\\d.]")
    dispatch = "|".join(f"(?<={first})(?:{'|'.join(rests)})" for first, rests in groups)
    return re.compile(f"[{firsts}](?:{dispatch})")


@lru_cache(maxsize=256)
def _compile(reading: _Reading) -> _Patterns:
    """The reading's patterns: searching and glued (see ``_strings``), each outside and
    inside a MySQL ``/*! ... */`` whose text is SQL (where ``*/`` closes it)."""
    patterns: list[re.Pattern[str]] = []
    for glued in (False, True):
        alternatives = (
            _comments(reading)
            + _strings(reading, glued)
            + _names(reading)
            + _numbers(reading, glued)
        )
        outside = _build(alternatives)
        executable = "open" in (reading.bang, reading.mbang)
        inside = _build([("xclose", "\\*", "/"), *alternatives]) if executable else outside
        patterns += [outside, inside]
    return patterns[0], patterns[1], patterns[2], patterns[3]


_COMMENT_EDGE: Final = re.compile("/\\*|\\*/")
_COMMENT_CLOSE: Final = re.compile("\\*/")
# A number that no database reads as the start of a name: what follows is a new token.
_PLAIN_NUMBER: Final = re.compile("[0-9]*\\.?[0-9]*(?:[eE][-+]?[0-9]+)?")


def _comment_end(query: str, pos: int, max_depth: int | None) -> int:
    """Where a block comment whose ``/*`` ends at ``pos`` ends, counting nested ones."""
    depth = 1
    while True:
        edge = (
            _COMMENT_CLOSE if max_depth is not None and depth >= max_depth else _COMMENT_EDGE
        ).search(query, pos)
        if edge is None:
            return len(query)
        pos = edge.end()
        if edge.group() == "/*":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos


_Interval = tuple[int, int, bool]  # start, end, is a literal (else a comment)


def _scan(query: str, patterns: _Patterns) -> list[_Interval]:
    """What one reading removes from ``query``."""
    searching, glued = patterns[0], patterns[2]
    found: list[_Interval] = []
    match = searching.search(query)
    while match is not None:
        group = match.lastgroup or ""
        action, prefix, ends_in_name = _ACTIONS[group[: group.index("_")]]
        start, end = match.span()
        if action == _LITERAL:
            found.append((start - prefix, end, True))
        elif action == _NEST:
            end = _comment_end(query, end, None)
            found.append((start, end, False))
        elif action == _NEST_ONCE:
            end = _comment_end(query, end, 2)
            found.append((start, end, False))
        elif action != _KEEP:
            found.append((start, end, False))
            if action == _EXEC_OPEN:
                searching, glued = patterns[1], patterns[3]
            elif action == _EXEC_CLOSE:
                searching, glued = patterns[0], patterns[2]
        pos = max(end, start + 1)
        match = None
        # 1$$x$$, $1$$x$$, 28$3 (money), 1E'x': the token just read ends in a name's
        # character, but no name goes on: what follows starts a token of its own.
        if ends_in_name and (
            not group.startswith("num_") or _PLAIN_NUMBER.fullmatch(query, start, end)
        ):
            match = glued.match(query, pos)
        if match is None:
            match = searching.search(query, pos)
    return found


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
    readings = _readings(dialect, _features(query))
    intervals = _scan(query, readings[0])
    if len(readings) > 1:
        for patterns in readings[1:]:
            intervals += _scan(query, patterns)
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
        dialect = _dialect(db_system)
        if len(query) > MAX_QUERY_CHARS:
            query = query[:MAX_QUERY_CHARS]
        if len(query) > _MAX_CACHED_CHARS:
            return _sanitize(query, dialect)
        return _sanitize_cached(query, dialect)
    except Exception:  # a bug here must not cost the span, nor leak the text
        return "?"
