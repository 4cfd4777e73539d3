"""An ended span rebuilt with new parts: the one way the export transforms copy a span.

A ``ReadableSpan`` is immutable once ended, so scrubbing (new span, event and
link attributes, a redacted status) and repair's trimming (a shortened name,
fewer events and links) both hand the exporter a new one. What neither
changes (context, parent, resource, kind, times, scope) is taken from the
original here, so the two cannot drift apart on which fields a copy keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes

__all__ = ["rebuilt_span"]


def rebuilt_span(
    span: ReadableSpan,
    *,
    attributes: Attributes,
    events: Sequence[Event],
    links: Sequence[Link],
    status: Status,
    name: str | None = None,
) -> ReadableSpan:
    """``span`` with these parts (and ``name``, if given); every other field as it was."""
    return ReadableSpan(
        name=span.name if name is None else name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
