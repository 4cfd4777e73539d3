"""Property tests: generated literals inside statements, every dialect and none.

A literal's content never survives sanitising, whatever quotes, backslashes,
dollar signs or comment marks it holds and whichever way it is written; the
statement's names and placeholders do survive. Where every reading of the
dialect agrees on where the literal ends, the output is exact.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from tenantrace.export.sql import sanitize_sql

_TRICKY = st.sampled_from(
    [
        "'",
        "''",
        '"',
        "`",
        "\\",
        "\\'",
        "$",
        "$$",
        "$q$",
        "--",
        "/*",
        "*/",
        "#",
        "[",
        "]",
        "q'[",
        "]'",
        "E'",
        "N'",
        "?",
        "%s",
        ":x",
        "@y",
        "!",
        "\n",
        "\r",
    ]
)
_CONTENT = st.lists(_TRICKY | st.characters(blacklist_categories=("Cs",)), max_size=30).map("".join)

# (db_system, placeholder kept for it): None is no dialect at all.
_PLACEHOLDERS = {
    "postgresql": ["$1", "%s", "%(name)s"],
    "mysql": ["%s", "?", "%(name)s"],
    "mariadb": ["%s", "?"],
    "sqlite": ["?", "?1", ":name", "@p", "$v"],
    "oracle.db": [":name", ":1"],
    "microsoft.sql_server": ["@p1", "?"],
    None: ["?", "%s", "%(name)s", ":name"],
    "other_sql": ["?", "%s"],
}
_SYSTEMS = list(_PLACEHOLDERS)


def _universal(content: str) -> str:
    """Both doubled: a string every reading of every dialect ends at the same quote."""
    return "'" + content.replace("\\", "\\\\").replace("'", "''") + "'"


def _numerals(number: int) -> list[str]:
    return [
        str(number),
        f"{number:_}",
        hex(number),
        hex(number).upper().replace("0X", "0x"),
        oct(number),
        bin(number),
        f"{number}e-5",
        f"{number}E+10",
        f".{number}",
        f"{number}.",
        f"1.{number}e10",
        f"{number}.{number}",
    ]


def _template(placeholder: str, literal: str, numeral: str) -> str:
    return (
        f"SELECT id, t1.col_2, {placeholder} FROM t9 AS t1"
        f" WHERE note = {literal} AND n > {numeral} ORDER BY id"
    )


def _expected(placeholder: str) -> str:
    return _template(placeholder, "?", "?")


@settings(max_examples=400, deadline=None)
@given(
    content=_CONTENT,
    number=st.integers(min_value=10**5, max_value=10**15),
    form=st.integers(min_value=0, max_value=11),
    system=st.sampled_from(_SYSTEMS),
    data=st.data(),
)
def test_a_doubled_string_and_any_numeral_in_any_dialect(
    content: str, number: int, form: int, system: str | None, data: st.DataObject
) -> None:
    placeholder = data.draw(st.sampled_from(_PLACEHOLDERS[system]))
    numeral = _numerals(number)[form]
    query = _template(placeholder, _universal(f"LEAK{content}LEAK"), numeral)
    out = sanitize_sql(query, system)
    assert out == _expected(placeholder)  # exact: literal and numeral gone, the rest kept
    assert sanitize_sql(out, system) == out


# Dialect-specific ways to write a literal. Each returns None when it cannot hold the text.
def _backslash_escaped(content: str) -> str:  # MySQL/MariaDB default mode
    return "'" + content.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _double_quoted(content: str) -> str:  # a MySQL/MariaDB or SQLite string
    return '"' + content.replace("\\", "\\\\").replace('"', '""') + '"'


def _escape_string(content: str) -> str:  # PostgreSQL E'...'
    return "E'" + content.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _standard(content: str) -> str:  # PostgreSQL with standard_conforming_strings on
    return "'" + content.replace("'", "''") + "'"


def _unicode_escape(content: str) -> str:  # PostgreSQL U&'...'
    return "U&'" + content.replace("\\", "\\\\").replace("'", "''") + "'"


def _dollar_quoted(content: str) -> str:  # PostgreSQL $tag$...$tag$
    tag = "t"
    while f"${tag}$" in f"${content}$":
        tag += "t"
    return f"${tag}${content}${tag}$"


def _q_quoted(content: str) -> str | None:  # Oracle q'X...X'
    for opening, closing in (("[", "]"), ("{", "}"), ("<", ">"), ("(", ")"), ("!", "!")):
        if f"{closing}'" not in content + "'":
            return f"q'{opening}{content}{closing}'"
    return None


def _national(content: str) -> str:  # N'...' (SQL Server, Oracle, PostgreSQL)
    return "N'" + content.replace("'", "''") + "'"


_FORMS: dict[str, list[tuple[Callable[[str], str | None], bool]]] = {
    # (form, exact: do all the dialect's readings end the literal at the same place?)
    "mysql": [(_backslash_escaped, False), (_double_quoted, True), (_universal, True)],
    "mariadb": [(_backslash_escaped, False), (_double_quoted, True)],
    "postgresql": [
        (_escape_string, True),
        (_standard, False),  # with standard_conforming_strings off a \ escapes
        (_unicode_escape, True),
        (_dollar_quoted, True),
        (_national, False),
    ],
    "sqlite": [(_standard, True), (_double_quoted, False)],
    "oracle.db": [(_q_quoted, True), (_national, True), (_standard, True)],
    "microsoft.sql_server": [(_national, True), (_standard, True)],
}


@settings(max_examples=600, deadline=None)
@given(
    content=_CONTENT,
    system=st.sampled_from(sorted(_FORMS)),
    unknown=st.booleans(),
    data=st.data(),
)
def test_each_dialects_own_literals(
    content: str, system: str, unknown: bool, data: st.DataObject
) -> None:
    form, exact = data.draw(st.sampled_from(_FORMS[system]))
    literal = form(f"LEAK{content}LEAK")
    if literal is None:
        return
    reading = None if unknown else system
    placeholder = data.draw(st.sampled_from(_PLACEHOLDERS[reading]))
    query = _template(placeholder, literal, "31337")
    out = sanitize_sql(query, reading)
    assert "LEAK" not in out and "31337" not in out
    # What comes before the literal always survives; all of it when the readings agree.
    assert out.startswith(f"SELECT id, t1.col_2, {placeholder} FROM t9 AS t1 WHERE note = ?")
    if exact and not unknown and not (form is _double_quoted and "\\" in content):
        assert out == _expected(placeholder)


@settings(max_examples=300, deadline=None)
@given(content=_CONTENT, system=st.sampled_from(_SYSTEMS), style=st.sampled_from(["--", "/*"]))
def test_comments_never_survive(content: str, system: str | None, style: str) -> None:
    content = content.replace("\n", " ").replace("\r", " ")
    if style == "--":
        comment = f"-- LEAK{content}\n"
    else:
        comment = "/* LEAK" + content.replace("/*", "").replace("*/", "") + " */"
    query = f"SELECT id {comment} FROM t1 WHERE a = ?"
    assert sanitize_sql(query, system) == "SELECT id FROM t1 WHERE a = ?"


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    table=_NAMES,
    column=_NAMES,
    system=st.sampled_from(_SYSTEMS),
    quoted=st.sampled_from(['"Mixed Name"', "`Mixed Name`", "[Mixed Name]"]),
    data=st.data(),
)
def test_names_and_placeholders_survive(
    table: str, column: str, system: str | None, quoted: str, data: st.DataObject
) -> None:
    placeholder = data.draw(st.sampled_from(_PLACEHOLDERS[system]))
    query = f"UPDATE {table}1 SET {column}_2 = {placeholder} WHERE {column} = 'LEAK'"
    assert sanitize_sql(query, system) == (
        f"UPDATE {table}1 SET {column}_2 = {placeholder} WHERE {column} = ?"
    )
    # A quoted name stays where the dialect reads it as a name.
    keeps = {
        '"Mixed Name"': ("postgresql", "oracle.db"),
        "`Mixed Name`": ("mysql", "mariadb", "sqlite"),
        "[Mixed Name]": ("sqlite",),
    }[quoted]
    out = sanitize_sql(f"SELECT {quoted} FROM t1 WHERE a = 'LEAK'", system)
    assert "LEAK" not in out
    if system in keeps:
        assert out == f"SELECT {quoted} FROM t1 WHERE a = ?"
