"""The SDK's conventions the gRPC and the HTTP exporters share: environment variables,
credential providers, the user agent, and endpoints as logs may show them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "display_endpoint",
    "endpoint_secrets",
    "env_first",
    "env_headers",
    "env_timeout",
    "load_credential_provider",
    "lower_keys",
    "user_agent",
]

DEFAULT_TIMEOUT_S: Final = 10.0


def env_first(*names: str) -> str | None:
    """The first of the environment variables ``names`` that is set and not blank."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def env_headers(*names: str) -> dict[str, str]:
    """Headers from the first of ``names`` set (``k1=v1,k2=v2``, percent-decoded, keys
    lowercased), as the SDK reads ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``."""
    raw = env_first(*names)
    if raw is None:
        return {}
    from opentelemetry.util.re import parse_env_headers

    return {key.lower(): value for key, value in parse_env_headers(raw, liberal=True).items()}


def env_timeout() -> float:
    """``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`` in seconds (as the Python SDK reads it), else 10."""
    raw = env_first("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        value = float(raw) if raw is not None else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def display_endpoint(endpoint: str) -> str:
    """``endpoint`` for logs and errors: its userinfo and query (credentials, tokens) redacted."""
    if "://" not in endpoint:
        return endpoint
    try:
        parts = urlsplit(endpoint)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparseable endpoint>"
    netloc = f"REDACTED@{host}" if "@" in parts.netloc else host
    query = "REDACTED" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def endpoint_secrets(endpoint: str) -> tuple[str, ...]:
    """The parts of ``endpoint`` a transport error message must not repeat."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return ()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    found = (parts.query, userinfo, parts.fragment)
    return tuple(sorted({s for s in found if len(s) > 1}, key=len, reverse=True))


def user_agent() -> str:
    try:
        from opentelemetry.sdk.version import __version__ as sdk_version
    except ImportError:  # pragma: no cover - the SDK is a dependency
        sdk_version = "unknown"
    return f"OTel-OTLP-Exporter-Python/{sdk_version} tenantrace"


def load_credential_provider(names: Sequence[str], kind: Callable[[object], bool]) -> object | None:
    """The object made by the ``opentelemetry_otlp_credential_provider`` entry point named by
    the first of the environment variables ``names`` (as the SDK's exporters load it);
    None when none is set. Raises when it is set but missing or of the wrong type."""
    name = env_first(*names)
    if name is None:
        return None
    from opentelemetry.util._importlib_metadata import entry_points

    found = list(entry_points(group="opentelemetry_otlp_credential_provider", name=name))
    if not found:
        raise RuntimeError(
            f"credential provider {name!r} not found in 'opentelemetry_otlp_credential_provider'"
        )
    made: object = found[0].load()()
    if not kind(made):
        raise RuntimeError(f"credential provider {name!r} made a {type(made).__qualname__}")
    return made


def lower_keys(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {key.lower(): value for key, value in (headers or {}).items()}
