"""The one way a layer wrapper opens its span: gated, suppressible, never failing on attributes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager, instrumentation_suppressed
from tenantrace.instrumentation.spans import NOOP_SCOPE, NoOpScope, SpanScope

__all__ = ["layer_span", "short_text"]

# Returns the span name and attributes; called only when the span is recorded.
Describe = Callable[[], tuple[str, Mapping[str, AttributeValue]]]


def short_text(value: object, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks a cut)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def layer_span(
    name: str,
    tenant_id: str | None,
    describe: Describe,
    *,
    level: TelemetryLevel,
    kind: SpanKind = SpanKind.INTERNAL,
    project_name: str | None = None,
    context: Context | None = None,
    links: Sequence[Link] | None = None,
) -> SpanScope | NoOpScope:
    """A ``with`` / ``async with`` scope yielding the layer's span (or a no-op span).

    ``describe()`` gives the span's name and attributes; it is called only when
    the span is recorded, so sanitising a query or hashing a key costs nothing
    when the level is gated off (``name`` is the fallback if it fails). An
    explicit invalid ``tenant_id`` raises ``InvalidTenantError`` like
    ``TelemetryManager.span``; nothing else raises.
    """
    manager = get_telemetry_manager()
    if not manager.is_enabled_for(level) or instrumentation_suppressed():
        return NOOP_SCOPE
    try:
        name, values = describe()
    except Exception as exc:
        # Better a span without its attributes than an exception in user code.
        manager.warn_once(f"layer.{name}", "tenantrace: %s attributes failed (%r)", name, exc)
        values = {}
    return manager.span(
        name,
        tenant_id,
        project_name,
        values,
        kind=kind,
        level=level,
        context=context,
        links=links,
    )
