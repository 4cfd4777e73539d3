"""One reading's scanner: the reading compiled to regular expressions, and the scan
that finds what it removes from a statement (literals and comments).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from tenantrace.export._sql_dialects import CURRENCY, Reading

__all__ = ["Patterns", "compile_reading", "scan"]

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
Patterns = tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]


def _string(quote: str, backslash: bool) -> str:
    """The rest of a string opened by ``quote``: doubled quotes, maybe backslash escapes."""
    q = re.escape(quote)
    if backslash:
        return f"(?:[^{q}\\\\]|\\\\[\\s\\S]|{q}{q})*+(?:{q}|\\\\?\\Z)"
    return f"(?:[^{q}]|{q}{q})*+(?:{q}|\\Z)"


def _quoted_name(opening: str, body: str, closing: str) -> list[_Alternative]:
    # A terminated quoted name is kept; an unterminated one runs to the end and goes.
    return [("keep", opening, f"{body}{closing}"), ("lit", opening, "[\\s\\S]*")]


def _comments(r: Reading) -> list[_Alternative]:
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


def _strings(r: Reading, glued: bool) -> list[_Alternative]:
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


def _names(r: Reading) -> list[_Alternative]:
    found: list[_Alternative] = []
    if r.brackets == "doubled":
        found += _quoted_name("\\[", "(?:[^\\]]|\\]\\])*+", "\\]")
    elif r.brackets == "plain":
        found += _quoted_name("\\[", "[^\\]]*+", "\\]")
    if r.backticks:
        found += _quoted_name("`", "(?:[^`]|``)*+", "`")
    return found


def _numbers(r: Reading, glued: bool) -> list[_Alternative]:
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
        found.append(("lit", f"[{CURRENCY}]", f"{after_name}[-+]?{number}"))
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
def compile_reading(reading: Reading) -> Patterns:
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


def scan(query: str, patterns: Patterns) -> list[_Interval]:
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
