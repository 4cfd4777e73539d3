"""Baggage: key/value pairs that travel with the trace to downstream services.

``set_baggage`` changes the current context (as the seeds use it: set at the
entry point, read anywhere below). ``baggage_scope`` is the scoped form: the
pairs exist inside the block and are gone after it, so baggage set for one
request never outlives it, even on a reused worker thread. Pairs that could
not be propagated within the W3C limits are refused (counted, logged once),
never raised: telemetry does not throw into the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote_plus

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from tenantrace.instrumentation._attached import AttachedContext
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.propagation.limits import (
    MAX_BAGGAGE_MEMBER_BYTES,
    MAX_BAGGAGE_MEMBERS,
    is_token,
)

__all__ = [
    "TENANT_BAGGAGE_KEY",
    "baggage_scope",
    "get_all_baggage",
    "get_baggage",
    "remove_baggage",
    "set_baggage",
]

TENANT_BAGGAGE_KEY: Final = "tenant.id"
"""The baggage member the tenant travels in on the wire."""


def _refuse(reason: str, key: object) -> None:
    try:
        name = str(key)[:64]
    except Exception:  # a key whose __str__ raises
        name = f"<{type(key).__qualname__}>"
    manager = get_telemetry_manager()
    manager.count("propagation.baggage_refused")
    manager.warn_once(
        "baggage.refused",
        "tenantrace: baggage %r refused (%s); further refusals are only counted",
        name,
        reason,
    )


def _with_pair(key: object, value: object, context: Context) -> Context | None:
    if not isinstance(key, str) or not is_token(key):
        _refuse("the key is not a token", key)
        return None
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a __str__ that raises, an int past the digit limit
        _refuse("the value cannot be converted to a string", key)
        return None
    try:
        encoded = quote_plus(text)
    except UnicodeEncodeError:  # a lone surrogate (e.g. "\ud800" from JSON): not UTF-8
        _refuse("the value is not valid Unicode", key)
        return None
    if len(key) + 1 + len(encoded) > MAX_BAGGAGE_MEMBER_BYTES:
        _refuse(f"over {MAX_BAGGAGE_MEMBER_BYTES} bytes once encoded", key)
        return None
    current = otel_baggage.get_all(context)
    if key not in current and len(current) >= MAX_BAGGAGE_MEMBERS:
        _refuse(f"more than {MAX_BAGGAGE_MEMBERS} members", key)
        return None
    return otel_baggage.set_baggage(key, text, context)


def set_baggage(key: str, value: object) -> None:
    """Add ``key=value`` to the baggage of the current context (and everything below it).

    Prefer ``baggage_scope`` where the context outlives the unit of work (a
    worker thread serving many requests).
    """
    ctx = _with_pair(key, value, otel_context.get_current())
    if ctx is not None:
        otel_context.attach(ctx)


def get_baggage(key: str, context: Context | None = None) -> str | None:
    """The baggage value of ``key`` in ``context`` (default: the current one), or None."""
    value = otel_baggage.get_baggage(key, context)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def get_all_baggage(context: Context | None = None) -> dict[str, str]:
    """A copy of all baggage pairs of ``context`` (default: the current one)."""
    pairs = otel_baggage.get_all(context)
    return {k: v if isinstance(v, str) else str(v) for k, v in pairs.items()}


def remove_baggage(key: str) -> None:
    """Remove ``key`` from the baggage of the current context."""
    if otel_baggage.get_baggage(key) is not None:
        otel_context.attach(otel_baggage.remove_baggage(key))


class baggage_scope(AttachedContext[Context]):
    """Baggage pairs present inside the block only (sync ``with`` and ``async with``).

    ``baggage_scope({"user.tier": "gold"})`` or ``baggage_scope(request_id="r-1")``;
    yields the context in force inside the block.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, object] | None = None, /, **pairs: object) -> None:
        super().__init__()
        merged: dict[str, object] = dict(items or {})
        merged.update(pairs)
        self._items = merged

    def _attach(self) -> tuple[Context, Context]:
        ctx = otel_context.get_current()
        for key, value in self._items.items():
            ctx = _with_pair(key, value, ctx) or ctx
        return ctx, ctx
