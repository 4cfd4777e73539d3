"""Trace context inside queue messages: a JSON-serialisable carrier under one key.

``propagate_context_to_dict(message)`` returns a *new* dict: the message's own
keys untouched, plus ``message["trace_context"]`` holding string headers
(``traceparent``, ``tracestate``, ``baggage``...). ``extract_context_from_dict``
reads it back, from the dict itself or from its JSON text, under the trust
policy like any inbound carrier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.context import Context

from tenantrace.propagation.http import extract_trace_context, inject_trace_context
from tenantrace.propagation.limits import MAX_MESSAGE_CARRIER_CHARS
from tenantrace.propagation.trust import TrustArg

__all__ = [
    "DEFAULT_CARRIER_KEY",
    "carrier_of",
    "extract_context_from_dict",
    "propagate_context_to_dict",
]

DEFAULT_CARRIER_KEY: Final = "trace_context"
"""The carrier's key in a message (the seeds' batch pattern reads ``item["trace_context"]``)."""


def propagate_context_to_dict(
    message: Mapping[str, Any], key: str = DEFAULT_CARRIER_KEY, *, url: str | None = None
) -> dict[str, Any]:
    """A copy of ``message`` with the current trace context under ``key``.

    The carrier is a ``dict[str, str]``, so the message stays JSON-serialisable
    if it was. ``url`` names the destination for the egress policy (baggage
    goes only where it allows); without it the policy's ``baggage_without_url``
    decides. Never raises: a message that is not a mapping gives ``{key: carrier}``.
    """
    # The same never-raising injection as for HTTP headers (warned once on failure).
    carrier = inject_trace_context(url=url)
    result: dict[str, Any] = dict(message) if isinstance(message, Mapping) else {}
    result[key] = carrier
    return result


def carrier_of(message: object, key: str = DEFAULT_CARRIER_KEY) -> object:
    """The carrier in ``message``: ``message[key]`` (a dict or its JSON text), else the message.

    A message without ``key`` is taken as a flat carrier (AMQP or Kafka
    headers, a dict of headers).
    """
    if not isinstance(message, Mapping):
        return message
    try:
        carrier = message.get(key)
    except Exception:
        return None
    if carrier is None:
        return message
    if isinstance(carrier, bytes | bytearray):
        carrier = bytes(carrier).decode("utf-8", "replace")
    return _parsed(carrier) if isinstance(carrier, str) else carrier


def _parsed(text: str) -> object:
    if len(text) > MAX_MESSAGE_CARRIER_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def extract_context_from_dict(
    message: object,
    key: str = DEFAULT_CARRIER_KEY,
    *,
    trust: TrustArg = None,
    trusted: bool = False,
) -> Context:
    """The context carried by ``message`` (see ``carrier_of``); never raises.

    ``trust`` is as for ``extract_trace_context``; ``trusted=True`` is a
    shorthand for ``trust=True`` (a queue inside one trust boundary).
    """
    try:
        carrier = carrier_of(message, key)
    except Exception:
        carrier = None
    return extract_trace_context(carrier, trust=True if trusted and trust is None else trust)
