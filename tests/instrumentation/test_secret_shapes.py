"""Secrets by shape: in free text (exception messages, descriptions) and in URLs."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tenantrace.export.secrets import redact_text, redact_url

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALNUM_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _jwt(payload: dict[str, object], signature: str) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{signature}"


_secrets = st.one_of(
    st.builds(
        _jwt,
        st.dictionaries(st.sampled_from(["sub", "tenant", "exp"]), st.integers(), min_size=1),
        st.text(_B64URL, min_size=10, max_size=43),
    ),
    st.builds(lambda s: "AKIA" + s, st.text(_ALNUM_UPPER, min_size=16, max_size=16)),
    st.builds(lambda s: "AIza" + s, st.text(_B64URL, min_size=35, max_size=35)),
    st.builds(lambda s: "ghp_" + s, st.text("abcdefABCDEF0123456789", min_size=36, max_size=36)),
    st.builds(lambda s: "xoxb-" + s, st.text("0123456789abcdef-", min_size=12, max_size=40)),
    st.builds(
        lambda s: "sk_live_" + s, st.text("abcdefABCDEF0123456789", min_size=24, max_size=24)
    ),
)
_token_chars = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=12, max_size=60
)
_filler = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(before=_filler, secret=_secrets, after=_filler)
def test_a_credential_by_its_shape_never_survives(before: str, secret: str, after: str) -> None:
    text = f"{before} {secret} {after}"
    assert secret not in redact_text(text)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["Bearer", "bearer", "Basic", "Token"]),
    token=_token_chars,
    before=_filler,
)
def test_an_authorization_credential_never_survives(scheme: str, token: str, before: str) -> None:
    assume(token not in before)
    redacted = redact_text(f"{before} Authorization: {scheme} {token}")
    assert token not in redacted


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(
        [
            "password",
            "Password",
            "PWD",
            "pass",
            "pw",
            "secret",
            "api_key",
            "api-key",
            "token",
            "access_token",
            "otp",
            "pin",
            "signature",
            "csrf_token",
            "conn_str",
            "client_secret",
        ]
    ),
    value=_token_chars,
    sep=st.sampled_from(["=", ": ", " = ", '":"']),
)
def test_a_secret_pair_in_text_never_survives(name: str, value: str, sep: str) -> None:
    text = f"connect failed ({name}{sep}{value}; host=db)"
    if sep == '":"':
        text = f'connect failed {{"{name}":"{value}", "host": "db"}}'  # as JSON writes it
    assert value not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app:hunter2@db.internal:5432/orders",
        "redis://:hunter2@cache:6379/0",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt\nhunter2\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "Server=db;Database=x;User Id=sa;Password=hunter2;",
        "aws_secret_access_key=hunter2hunter2hunter2hunter2hunter2hunt",
    ],
)
def test_known_leaks_are_closed(text: str) -> None:
    assert "hunter2" not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "division by zero",
        "KeyError: 'user_id'",
        "status code: 500",
        "tokenizer loaded 1024 tokens",
        "the author=bob wrote the keyboard=qwerty layout",
        "GET https://example.com/search?q=hello returned 404",
        "session expired after 30 s",
        "Basic auth is disabled",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) is text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://u:p@api.example.com/v1?api_key=S1&page=2",
            "https://api.example.com/v1?api_key=REDACTED&page=2",
        ),
        (
            "http://h/x?api%5Fkey=S&pass%77ord=P&q=1",
            "http://h/x?api%5Fkey=REDACTED&pass%77ord=REDACTED&q=1",
        ),
        ("/orders?token=abc&id=7", "/orders?token=REDACTED&id=7"),
        ("api_key=x&page=2", "api_key=REDACTED&page=2"),
        (
            "https://maps.example/x?key=K&code=C&state=S",
            "https://maps.example/x?key=REDACTED&code=REDACTED&state=REDACTED",
        ),
        ("http://h/cb#access_token=T&x=1", "http://h/cb#access_token=REDACTED&x=1"),
        ("https://example.com/search?q=hello", "https://example.com/search?q=hello"),
    ],
)
def test_urls(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(
        ["api_key", "apiKey", "API-KEY", "password", "sig", "X-Amz-Signature", "token"]
    ),
    value=st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=30),
    encode=st.booleans(),
)
def test_a_secret_query_parameter_never_survives(name: str, value: str, encode: bool) -> None:
    from urllib.parse import quote

    shown = "".join(f"%{ord(c):02X}" if c in "_-" else c for c in name) if encode else name
    url = f"https://api.example.com/v1/items?page=2&{shown}={quote(value)}"
    assert value not in redact_url(url)
