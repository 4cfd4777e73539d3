"""Which attribute keys name a secret, and which name a value judged by its shape.

``classify(key, extra)`` gives a key's verdict: ``SAFE``, ``SECRET``,
``SECRET_UNLESS_NUMBER`` (a token count), or the shape its value is judged by
(``URL``, ``QUERY``, ``HOST``, ``SQL``, ``TEXT``). ``tenantrace.export.scrubbing``
says which words make a secret, and the exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "HOST",
    "QUERY",
    "REDACTED",
    "SAFE",
    "SECRET",
    "SECRET_UNLESS_NUMBER",
    "SQL",
    "TEXT",
    "URL",
    "classify",
    "is_secret_key",
]

REDACTED: Final = "[REDACTED]"

# Matched in the key with every separator removed, so they hold across dots:
# ``db.api.key`` and ``private.key`` are secrets as much as ``api_key``.
_WORDS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "accesskey",
    "credential",
    "connectionstring",
    "connstr",
    "sessionkey",
    "signature",
    "csrf",
    "xsrf",
)
# Secret only as a whole word: "auth" but not "author", "pwd" but not "pwdlen",
# "pin" but not "pinned", "sig" but not "signal".
_WHOLE_WORDS: Final = frozenset(
    {"pwd", "pw", "pass", "pin", "otp", "sig", "auth", "jwt", "bearer", "dsn"}
)
_URL_KEYS: Final = frozenset({"url.full", "http.url", "http.target", "url.original"})
_QUERY_KEYS: Final = frozenset({"url.query"})
_HOST_KEYS: Final = frozenset({"server.address", "net.peer.name", "http.host", "client.address"})
_SQL_KEYS: Final = frozenset({"db.statement", "db.query.text"})
_TEXT_KEYS: Final = frozenset({"exception.message", "exception.stacktrace", "error.message"})
# Known ids and counts that would otherwise match (see tenantrace.export.scrubbing).
_SAFE_KEYS: Final = frozenset({"session.id", "session.previous_id"})
_SPLIT: Final = re.compile(r"[._\-\s/:]+")
_JOIN: Final = re.compile(r"[_\-\s/:]+")
# "token" words that name a count: tokens, token_count, tokens_used, max_tokens...
_TOKEN_COUNT: Final = re.compile(r"tokens|token_?count|max_?token")

SAFE: Final = 0
SECRET: Final = 1
SECRET_UNLESS_NUMBER: Final = 2
URL: Final = 3
HOST: Final = 4
SQL: Final = 5
TEXT: Final = 6
QUERY: Final = 7

_MAX_KEY_CHARS: Final = 256


def classify(key: str, extra: Sequence[re.Pattern[str]]) -> int:
    lower = key[:_MAX_KEY_CHARS].lower()
    if lower in _SAFE_KEYS:
        return SAFE
    # Bound parameters of a statement are the values the statement does not show.
    if lower == "db.statement.parameters" or lower.startswith("db.query.parameter."):
        return SECRET
    for keys, verdict in (
        (_URL_KEYS, URL),
        (_QUERY_KEYS, QUERY),
        (_HOST_KEYS, HOST),
        (_SQL_KEYS, SQL),
        (_TEXT_KEYS, TEXT),
    ):
        if lower in keys:
            return verdict
    compact = [_JOIN.sub("", segment) for segment in lower.split(".")]
    joined = "".join(compact)
    if (
        any(pattern.search(lower) for pattern in extra)
        or any(word in joined for word in _WORDS)
        # "session id" only within one dotted segment: session.id is an id namespace.
        or any("sessionid" in segment for segment in compact)
        or not _WHOLE_WORDS.isdisjoint(_SPLIT.split(lower))
    ):
        return SECRET
    # "tokenizer" names a component, not a credential.
    if "token" in joined.replace("tokeniz", ""):
        return SECRET_UNLESS_NUMBER if _TOKEN_COUNT.search(lower) else SECRET
    return SAFE


def is_secret_key(key: str, extra_patterns: Iterable[str] = ()) -> bool:
    """True when an attribute named ``key`` would be redacted (whatever its value)."""
    patterns = [re.compile(p, re.IGNORECASE) for p in extra_patterns]
    return classify(key, patterns) == SECRET
