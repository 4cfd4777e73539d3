"""Span links for work that has many parents: batches of messages.

Following the OpenTelemetry messaging conventions, a consumer that processes
a batch starts one span with a link to the creation context of every message
that carried one, and ``messaging.batch.message_count`` set to the size of the
batch; each message may then get its own processing span, a child of the batch
span linked to that message's producer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_BATCH_MESSAGE_COUNT,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import NoOpScope, SpanScope
from tenantrace.instrumentation.tenants import current_tenant
from tenantrace.propagation.http import extract_carried, extract_span_context
from tenantrace.propagation.messages import DEFAULT_CARRIER_KEY, carrier_of
from tenantrace.propagation.trust import TrustArg

__all__ = ["batch_span", "link_spans", "links_from_messages", "message_span"]

_PROCESS: Final = "process"


def _span_context_of(carrier: object) -> SpanContext:
    if isinstance(carrier, SpanContext):
        return carrier
    if isinstance(carrier, Span):
        return carrier.get_span_context()
    if isinstance(carrier, Context):
        return trace_api.get_current_span(carrier).get_span_context()
    return extract_span_context(carrier_of(carrier))


def link_spans(
    carrier: object, attributes: Mapping[str, AttributeValue] | None = None
) -> Link | None:
    """A ``Link`` to the span carried by ``carrier``, or None if it carries none.

    ``carrier`` may be headers / a carrier dict, a whole message holding one
    under ``"trace_context"``, a ``SpanContext``, a ``Span`` or a ``Context``.
    Only the trace context is read: a link never changes the tenant. Never
    raises.
    """
    try:
        span_context = _span_context_of(carrier)
        if not span_context.is_valid:
            return None
        return Link(span_context, dict(attributes) if attributes else None)
    except Exception:
        return None


def links_from_messages(
    messages: Iterable[object], key: str = DEFAULT_CARRIER_KEY
) -> tuple[list[Link], int]:
    """One link per message that carried a trace context, and the number of messages."""
    links: list[Link] = []
    count = 0
    for message in messages:
        count += 1
        link = link_spans(carrier_of(message, key))
        if link is not None:
            links.append(link)
    return links, count


def _messaging_attributes(
    operation: str,
    system: str | None,
    destination: str | None,
    attributes: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    merged: dict[str, AttributeValue] = {
        MESSAGING_OPERATION_TYPE: _PROCESS,
        MESSAGING_OPERATION_NAME: operation,
    }
    if system is not None:
        merged[MESSAGING_SYSTEM] = system
    if destination is not None:
        merged[MESSAGING_DESTINATION_NAME] = destination
    if attributes:
        merged.update(attributes)
    return merged


def _span_name(operation: str, destination: str | None) -> str:
    # Messaging conventions: "{operation name} {destination}".
    return f"{operation} {destination}" if destination else operation


def batch_span(
    messages: Sequence[Any],
    name: str | None = None,
    *,
    key: str = DEFAULT_CARRIER_KEY,
    system: str | None = None,
    destination: str | None = None,
    operation: str = _PROCESS,
    tenant_id: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanScope | NoOpScope:
    """A CONSUMER span over a batch: one link per message carrying a context.

    Sets ``messaging.batch.message_count`` (all messages, linked or not),
    ``messaging.operation.type=process`` and, when given, ``messaging.system``
    and ``messaging.destination.name``. The batch span belongs to the consumer
    (``tenant_id`` or the current tenant): messages of several tenants may
    share a batch, so the messages never choose its tenant. Use as
    ``with batch_span(batch, system="rabbitmq", destination="orders") as span:``.
    """
    links, count = links_from_messages(messages, key)
    merged = _messaging_attributes(operation, system, destination, attributes)
    merged[MESSAGING_BATCH_MESSAGE_COUNT] = count
    return get_telemetry_manager().span(
        name or _span_name(operation, destination),
        tenant_id,
        attributes=merged,
        kind=SpanKind.CONSUMER,
        links=links,
    )


def message_span(
    message: Any,
    name: str | None = None,
    *,
    key: str = DEFAULT_CARRIER_KEY,
    trust: TrustArg = None,
    system: str | None = None,
    destination: str | None = None,
    operation: str = _PROCESS,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> SpanScope | NoOpScope:
    """The processing span of one message: a child of the current (batch) span.

    It takes the tenant the message carried if the trust policy (``trust``)
    accepts it, even inside the consumer's own ``tenant_scope``; otherwise the
    current tenant. In the consumer's tenant it is a child of the current
    (batch) span, linked to the producer span. In another tenant (one trace,
    one tenant) it continues the producer's trace and links to the batch span
    instead. Use inside ``batch_span``: ``with message_span(msg) as span:``.
    """
    carried = extract_carried(carrier_of(message, key), trust, keep_local_tenant=False)
    tenant = current_tenant(carried)
    attributes = _messaging_attributes(operation, system, destination, attributes)
    name = name or _span_name(operation, destination)
    manager = get_telemetry_manager()
    if tenant is None or tenant == current_tenant():
        # The consumer's own tenant: a child of the batch span, linked to the producer.
        link = link_spans(carried)
        return manager.span(
            name,
            tenant,
            attributes=attributes,
            kind=SpanKind.CONSUMER,
            links=[link] if link is not None else None,
        )
    # Another tenant's message (one trace, one tenant): it continues its trusted
    # producer's trace, in its tenant, and links to the batch span.
    batch = link_spans(trace_api.get_current_span())
    return manager.span(
        name,
        tenant,
        attributes=attributes,
        kind=SpanKind.CONSUMER,
        context=carried,
        links=[batch] if batch is not None else None,
    )
