"""Checks before a span starts: suppressed instrumentation, a name or attributes of the wrong type.

The name and attribute fix-ups are the cold branches of ``TelemetryManager._checked``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from tenantrace.instrumentation.manager import TelemetryManager

__all__ = ["converted_span_name", "instrumentation_suppressed", "refuse_span_attributes"]

# The keys opentelemetry-instrumentation's suppress_instrumentation() sets.
_SUPPRESS_KEYS: Final = (
    getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"),
    "suppress_instrumentation",
)


def instrumentation_suppressed(ctx: Context | None = None) -> bool:
    """True inside ``opentelemetry.instrumentation.utils.suppress_instrumentation()``."""
    current = otel_context.get_current() if ctx is None else ctx
    return bool(current.get(_SUPPRESS_KEYS[0]) or current.get(_SUPPRESS_KEYS[1]))


def converted_span_name(manager: TelemetryManager, name: object) -> str:
    """A span name that is not a string: its ``str()``, counted; never raises."""
    manager.count("span_names_converted")
    try:
        text = str(name)
    except Exception:  # a __str__ that raises, an int past the digit limit
        text = f"<unprintable {type(name).__name__}>"
    manager.warn_once(
        "span-name",
        "tenantrace: a span name of type %s was converted to a string; "
        "further conversions are only counted (span_names_converted)",
        type(name).__qualname__,
    )
    return text


def refuse_span_attributes(manager: TelemetryManager, attributes: object) -> None:
    """Attributes that are not a mapping: the span starts without them, counted."""
    manager.count("span_attributes_refused")
    manager.warn_once(
        "span-attributes",
        "tenantrace: span attributes of type %s are not a mapping and were left out; "
        "further ones are only counted (span_attributes_refused)",
        type(attributes).__qualname__,
    )
