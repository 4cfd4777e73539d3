"""The producer's receivers: a PRODUCER span around each publish (optional), and the
carrier of the current context and tenant under the message's ``CELERY_HEADER``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
)
from opentelemetry.trace import INVALID_SPAN, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import end_span_with
from tenantrace.propagation._celery_state import (
    CELERY_HEADER,
    SCOPE,
    TASK_NAME,
    Settings,
    State,
    celery_instrumentor_active,
    disconnect_closers_when_idle,
    spans_on,
    task_key,
    warn,
)
from tenantrace.propagation.http import inject_context

__all__ = ["after_publish", "before_publish"]


def before_publish(
    sender: object = None,
    headers: object = None,
    routing_key: object = None,
    **_: object,
) -> None:
    settings = State.settings
    if settings is None or not isinstance(headers, dict) or celery_instrumentor_active():
        return
    try:
        _publish(settings, sender, headers, routing_key)
    except Exception as exc:
        warn("publish", exc)


def _publish(
    settings: Settings, sender: object, headers: dict[Any, Any], routing_key: object
) -> None:
    ctx = otel_context.get_current()
    key = task_key(headers.get("id"))
    if settings.publish_span and key is not None and spans_on():
        _end_abandoned_publishes(key[1])
        name = sender if isinstance(sender, str) and sender else "celery.task"
        attributes: dict[str, AttributeValue] = {
            MESSAGING_OPERATION_TYPE: "send",
            MESSAGING_OPERATION_NAME: "publish",
            MESSAGING_MESSAGE_ID: key[0],
            TASK_NAME: name,
        }
        if isinstance(routing_key, str) and routing_key:
            attributes[MESSAGING_DESTINATION_NAME] = routing_key
        span = get_telemetry_manager().start_span(
            f"{name} publish", attributes=attributes, kind=SpanKind.PRODUCER, scope=SCOPE
        )
        if span is not INVALID_SPAN:
            with State.table_lock:
                State.publishing[key] = span
            ctx = trace_api.set_span_in_context(span, ctx)
    headers[CELERY_HEADER] = inject_context(ctx, settings.url)


def _end_abandoned_publishes(thread: int) -> None:
    """End this thread's PRODUCER spans whose publish raised (no ``after_task_publish`` came).

    A thread publishes one message at a time, so any span it left open is one
    whose publish failed.
    """
    with State.table_lock:
        if not State.publishing:
            return
        stale = [key for key in State.publishing if key[1] == thread]
        spans = [State.publishing.pop(key) for key in stale]
    for span in spans:
        span.set_status(Status(StatusCode.ERROR, "the message was not published"))
        end_span_with(span, None)


def after_publish(headers: object = None, **_: object) -> None:
    try:
        key = task_key(headers.get("id") if isinstance(headers, Mapping) else None)
        if key is None:
            return
        with State.table_lock:
            span = State.publishing.pop(key, None)
        if span is not None:
            end_span_with(span, None)
        if State.settings is None:
            disconnect_closers_when_idle()
    except Exception as exc:
        warn("after_publish", exc)
