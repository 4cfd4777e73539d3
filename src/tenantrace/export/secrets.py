"""Secrets by shape: credentials inside free text, and secrets inside URLs.

Key-based redaction (``scrubbing``) catches ``password=...`` attributes; it
cannot see a bearer token quoted in an exception message, a JWT in a status
description, or ``?api_key=...`` in ``url.full``. These functions find them
by their shape and return the text with the secret replaced by
``[REDACTED]``; text with nothing to redact is returned as the same object, so
callers can tell with ``is`` that nothing changed.

What is recognised (``redact_text``):

- ``Authorization``-style credentials: ``Bearer <token>``, ``Basic <base64>``,
  ``Token <token>``, ``Digest ...`` (the scheme word stays);
- JSON Web Tokens (three base64url parts, the first starting ``eyJ``);
- cloud keys: AWS access key ids (``AKIA``/``ASIA``... and 16 more), AWS secret
  keys after ``aws_secret_access_key``, Google API keys (``AIza``), GitHub,
  GitLab, Slack and Stripe tokens, by their documented prefixes;
- PEM private-key blocks (``-----BEGIN ... PRIVATE KEY-----`` to ``END``);
- ``password=`` / ``pwd=`` / ``secret=`` / ``token=`` / ``api_key=`` pairs in
  connection strings, query strings and ``key: value`` text (the key stays);
- userinfo in URLs (``scheme://user:pass@host`` keeps ``scheme://host``).

``redact_url`` additionally drops userinfo and replaces the values of query
parameters whose names, percent-decoded and case-folded, name a secret with
``REDACTED`` (the semantic conventions' word for ``url.query``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final
from urllib.parse import unquote_plus

__all__ = [
    "QUERY_REDACTED",
    "REDACTED",
    "SECRET_NAMES",
    "SECRET_QUERY_NAMES",
    "redact_db_error",
    "redact_query",
    "redact_text",
    "redact_url",
]

REDACTED: Final = "[REDACTED]"

# The names whose values are secrets in "name=value" text and URL queries,
# compared after percent-decoding, case folding and dropping separators.
SECRET_NAMES: Final = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "passphrase",
        "pin",
        "otp",
        "secret",
        "clientsecret",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "apikey",
        "apitoken",
        "accesskey",
        "secretkey",
        "privatekey",
        "sig",
        "signature",
        "xamzsignature",
        "xamzcredential",
        "xamzsecuritytoken",
        "xgoogsignature",
        "awsaccesskeyid",
        "credential",
        "credentials",
        "csrf",
        "csrftoken",
        "xsrftoken",
        "sessionid",
        "sessionkey",
        "auth",
        "authorization",
        "connstr",
        "connectionstring",
        "dsn",
        "jwt",
        "bearer",
        "cookie",
        "setcookie",
    }
)
# In a URL query these name secrets too (a Google API "key", an OAuth "code", a
# web "session"); in free text they are too often ordinary words ("status code: 500").
SECRET_QUERY_NAMES: Final = SECRET_NAMES | {"key", "code", "session", "state"}
_SEPARATORS: Final = re.compile(r"[\s._\-]+")

# Cheap first test, on every event attribute and description: text with no
# "=", ":" or "@" (no pair, no header, no URL userinfo) and none of these words
# (lowercased) cannot hold a shape we redact. One C-level scan each.
_WORD_HINTS: Final = re.compile(
    "|".join(
        re.escape(word)
        for word in (
            "bearer",
            "basic",
            "token",
            "digest",
            "negotiate",
            "apikey",
            "eyj",
            "akia",
            "asia",
            "aroa",
            "aida",
            "agpa",
            "aipa",
            "anpa",
            "anva",
            "apka",
            "abia",
            "acca",
            "aiza",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "glpat-",
            "xox",
            "sk_live",
            "rk_live",
            "sk_test",
            "rk_test",
            "private key",
        )
    )
)


def _may_hold_secret(text: str) -> bool:
    return "=" in text or ":" in text or "@" in text or bool(_WORD_HINTS.search(text.lower()))


_SHAPES: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]] = (
    # PEM private keys: the whole block.
    (
        re.compile(
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        lambda m: REDACTED,
    ),
    # JWT: header.payload.signature, base64url, header starting {" -> eyJ.
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
        lambda m: REDACTED,
    ),
    # Authorization schemes: keep the scheme word.
    (
        re.compile(
            r"\b(Bearer|Basic|Token|Digest|Negotiate|ApiKey)(\s+)([A-Za-z0-9._~+/=:\-]{8,}"
            r"(?:,\s*[A-Za-z]+=\"[^\"]*\")*)",
            re.IGNORECASE,
        ),
        lambda m: f"{m[1]}{m[2]}{REDACTED}",
    ),
    # Cloud and platform keys by their documented prefixes.
    (
        re.compile(
            r"\b(?:(?:AKIA|ASIA|AROA|AIDA|AGPA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{16}"
            r"|AIza[0-9A-Za-z_\-]{35}"
            r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"
            r"|glpat-[A-Za-z0-9_\-]{20,}"
            r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})(?![A-Za-z0-9_\-])"
        ),
        lambda m: REDACTED,
    ),
    # Userinfo in any URL inside the text.
    (
        re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]*@"),
        lambda m: m[1],
    ),
)

# name=value / name: value / "name": "value" pairs whose name is a secret. The
# value is looked at, not consumed: in "failed: password=x" the pair "failed:
# password" must not hide the pair "password=x" behind it.
_PAIR: Final = re.compile(
    r"""(?P<name>["']?(?P<bare>[A-Za-z%][A-Za-z0-9_.\-%]{0,60})["']?)(?P<sep>\s*[=:]\s*)"""
    # A quoted value runs to its closing quote (escaped quotes inside), or to the
    # end when there is none.
    r"""(?=(?P<value>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s;,&"'}\]]+))"""
)


# A name ending in one of these names a secret too: aws_secret_access_key,
# x-session-token, db_password, stripe_api_key.
_SECRET_SUFFIXES: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "signature",
    "credential",
    "credentials",
    "connectionstring",
    "connstr",
)


@lru_cache(maxsize=4096)  # names repeat: parameter and field names, not values
def _secret_name(name: str, names: frozenset[str] = SECRET_NAMES) -> bool:
    compact = _SEPARATORS.sub("", unquote_plus(name).casefold())
    return compact in names or compact.endswith(_SECRET_SUFFIXES)


def _redact_pairs(text: str) -> str:
    out: list[str] = []
    done = 0
    for match in _PAIR.finditer(text):
        value = match["value"]
        if (
            match.start() < done
            or not _secret_name(match["bare"])
            or value.startswith(REDACTED[:-1])
            or value == QUERY_REDACTED
        ):
            continue
        quote = value[0] if value[:1] in ("'", '"') else ""
        closing = quote if len(value) > 1 and value.endswith(quote) else ""
        out.append(text[done : match.end()])
        out.append(f"{quote}{REDACTED}{closing}")
        done = match.end() + len(value)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_shapes(text: str) -> str:
    for pattern, replace in _SHAPES:
        text = pattern.sub(replace, text)
    return text


def redact_text(text: str) -> str:
    """``text`` with every credential it holds replaced; the same object if none."""
    if not _may_hold_secret(text):
        return text
    redacted = _redact_pairs(_redact_shapes(text))
    return text if redacted == text else redacted


# Database errors quote what the statement held: a PostgreSQL "LINE 1: ..." echo,
# "DETAIL: Key (email)=(ann@example.com)", "Failing row contains (...)", a
# SQLite 'near "'hunter2'"'. In the exception text of a database span these are
# sanitized too (literals become ?), and the quoted values dropped.
_DB_ERROR_VALUES: Final = re.compile(
    r"(?P<lead>\)=\(|[Ff]ailing row contains \(|[Vv]alues?\s*\()(?P<value>[^)]*)(?=\))"
)


def redact_db_error(text: str, sanitize: Callable[[str], str]) -> str:
    """Error text of a database call with the statement's literals and quoted values gone.

    ``sanitize`` is the SQL sanitizer (literals to ``?``), applied to the whole text:
    what a driver echoes of the statement, and every quoted string of its message.
    """
    redacted = _DB_ERROR_VALUES.sub(lambda m: f"{m['lead']}?", redact_text(text))
    redacted = sanitize(redacted)
    return text if redacted == text else redacted


_URL: Final = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*:)?(?P<authority>//[^/?#]*)?"
    r"(?P<path>[^?#]*)(?P<query>\?[^#]*)?(?P<fragment>#.*)?$",
    re.DOTALL,
)


# What OpenTelemetry's semantic conventions replace a sensitive query value with.
QUERY_REDACTED: Final = "REDACTED"


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        secret = eq and value != QUERY_REDACTED and _secret_name(name, SECRET_QUERY_NAMES)
        parts.append(f"{name}={QUERY_REDACTED}" if secret else part)
    return "&".join(parts)


# URLs repeat (a client calls the same endpoints): short ones are judged once.
_MAX_CACHED_URL: Final = 2048


def redact_query(query: str) -> str:
    """A query string (``url.query``: no ``?``, ``&``-separated) with secret values
    ``REDACTED``, whatever it holds after them (``next=/home?tab=1``)."""
    redacted = _redact_query(query[1:] if query.startswith("?") else query)
    if query.startswith("?"):
        redacted = "?" + redacted
    if _WORD_HINTS.search(redacted.lower()):
        redacted = _redact_shapes(redacted)
    return query if redacted == query else redacted


def redact_url(url: str) -> str:
    """``url`` without userinfo, its secret query parameters and credentials redacted.

    Also takes a bare query (``api_key=x&page=2``) or a target (``/path?q=1``).
    Returns the same object when nothing changes.
    """
    if len(url) > _MAX_CACHED_URL:
        return _redact_url(url)
    redacted = _redact_url_cached(url)
    return url if redacted == url else redacted


def _redact_url(url: str) -> str:
    match = _URL.match(url)
    if match is None:  # pragma: no cover - the pattern matches any string
        return redact_text(url)
    authority = match["authority"] or ""
    if "@" in authority:
        authority = "//" + authority.rsplit("@", 1)[1]
    query = match["query"]
    path = match["path"]
    if query is not None:
        query = "?" + _redact_query(query[1:])
    elif "=" in path and not match["scheme"] and not authority:  # a bare query string
        path = _redact_query(path)
    fragment = match["fragment"] or ""
    if "=" in fragment:
        fragment = "#" + _redact_query(fragment[1:])
    rebuilt = f"{match['scheme'] or ''}{authority}{path}{query or ''}{fragment}"
    # The query's pairs are judged above; a token elsewhere (a path segment) by shape.
    if _WORD_HINTS.search(rebuilt.lower()):
        rebuilt = _redact_shapes(rebuilt)
    return url if rebuilt == url else rebuilt


_redact_url_cached = lru_cache(maxsize=1024)(_redact_url)
