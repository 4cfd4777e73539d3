"""The five correlation fields, and how a context's values are found and put in place.

Shared by the three ways a record gets its fields (``Logger.makeRecord``
replaced: ``_make_record``; the factory's records: ``_log_records``; the filter
and the structlog processor: ``logs``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from tenantrace.observe._context import EMPTY, SPAN_KEY, TENANT_KEY, correlation, get_context

CORRELATION_FIELDS: Final = ("trace_id", "span_id", "tenant_id", "service_name", "project_name")
# opentelemetry-instrumentation-logging's service field: empty under a routing
# provider (it reads the global provider's Resource, which has no tenant).
OTEL_SERVICE: Final = "otelServiceName"
FIELD_SET: Final = frozenset(CORRELATION_FIELDS)
EMPTY_VALUES: Final = dict.fromkeys(CORRELATION_FIELDS, "")

Fields = tuple[str, str, str, str, str]

# The context keys of the current span and of tenantrace's tenant: a context
# with neither correlates to five empty strings. "" when a release moved one
# (then the makeRecord replacement is not installed).
SPAN_KEY_OR_EMPTY: Final = SPAN_KEY or ""
TENANT_KEY_OR_EMPTY: Final = TENANT_KEY or ""

# The last context fields were computed for, with its fields: a request logs
# many records under one span, all in the same (immutable) Context object. One
# tuple, swapped whole, so a reader on another thread never pairs one context
# with another's fields. The Context is referenced here until fields are
# computed for another, so its id is not reused meanwhile.
_last_context: tuple[object, Fields] = (None, EMPTY)


def _remember_context(ctx: Mapping[str, object]) -> Fields:
    global _last_context  # noqa: PLW0603 - read for every record made in a span: a global
    fields = correlation(ctx)
    _last_context = (ctx, fields)
    return fields


def context_fields(ctx: Mapping[str, object]) -> Fields:
    """``correlation(ctx)``, from the one-entry cache when ``ctx`` is the last context."""
    last = _last_context
    return last[1] if last[0] is ctx else _remember_context(ctx)


def current_fields() -> Fields:
    """The fields of the current context (``EMPTY`` outside everything)."""
    ctx = get_context()
    return context_fields(ctx) if ctx else EMPTY


def fill(values: MutableMapping[str, Any], fields: Fields) -> None:
    """Put the five fields into ``values`` where it has none of that name."""
    # The common case: one C-level update. Tested from the view (5 lookups), not
    # from the set, which would iterate over every key of a record.
    if values.keys().isdisjoint(FIELD_SET):
        if fields is EMPTY:
            values.update(EMPTY_VALUES)
        else:
            values.update(zip(CORRELATION_FIELDS, fields, strict=True))
    else:
        for key, value in zip(CORRELATION_FIELDS, fields, strict=True):
            if key not in values:
                values[key] = value
    if fields[3] and values.get(OTEL_SERVICE) == "":
        values[OTEL_SERVICE] = fields[3]


def correlation_fields(context: Mapping[str, object] | None = None) -> dict[str, str]:
    """The five correlation fields of ``context`` (default: the current one), as a dict."""
    ctx = get_context() if context is None else context
    return dict(zip(CORRELATION_FIELDS, correlation(ctx) if ctx else EMPTY, strict=True))
