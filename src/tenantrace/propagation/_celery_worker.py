"""The worker's receivers: a CONSUMER span per task run under the message's context
and accepted tenant, its failures and retries recorded, ended in ``task_postrun``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
)
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import end_span_with, record_exception_once
from tenantrace.instrumentation.tenants import current_tenant, set_tenant_in_context
from tenantrace.propagation._celery_state import (
    CELERY_HEADER,
    RETRY_REASON,
    SCOPE,
    TASK_NAME,
    TASK_RETRIES,
    TASK_STATE,
    Run,
    Settings,
    State,
    celery_instrumentor_active,
    disconnect_closers_when_idle,
    handles,
    spans_on,
    task_key,
    task_name,
    warn,
)
from tenantrace.propagation.http import extract_carried
from tenantrace.propagation.messages import carrier_of

__all__ = ["failure", "postrun", "prerun", "retry"]

_FAILED_STATES: Final = frozenset({"FAILURE", "RETRY"})


def _carrier(task: Any) -> object:
    request = getattr(task, "request", None)
    carrier = getattr(request, CELERY_HEADER, None)
    if carrier is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            carrier = headers.get(CELERY_HEADER)
    return carrier


def _task_context(task: Any, settings: Settings) -> Context:
    """The context the task runs in: the message's, with the tenant the policy accepted."""
    carrier = _carrier(task)
    if carrier is None:
        # Not sent through an instrumented producer, or run eagerly in the
        # caller's thread: continue the current context (the caller's, eagerly).
        return otel_context.get_current()
    # The wrapper keeps the carrier a carrier, even one that happens to hold a
    # "trace_context" key: carrier_of reads a string as its JSON text.
    ctx = extract_carried(
        carrier_of({CELERY_HEADER: carrier}, CELERY_HEADER),
        settings.trust,
        keep_local_tenant=False,  # the message's accepted tenant outranks a worker-wide scope
    )
    if current_tenant(ctx) is None:
        ambient = current_tenant()  # no accepted claim: the worker's own scope, if any
        if ambient is not None:
            ctx = set_tenant_in_context(ambient, ctx)
    return ctx


def _consumer_attributes(task: Any, task_id: str) -> dict[str, AttributeValue]:
    request = getattr(task, "request", None)
    attributes: dict[str, AttributeValue] = {
        MESSAGING_OPERATION_TYPE: "process",
        MESSAGING_OPERATION_NAME: "process",
        MESSAGING_MESSAGE_ID: task_id,
        TASK_NAME: task_name(task),
    }
    delivery = getattr(request, "delivery_info", None)
    routing_key = delivery.get("routing_key") if isinstance(delivery, Mapping) else None
    if isinstance(routing_key, str) and routing_key:
        attributes[MESSAGING_DESTINATION_NAME] = routing_key
    retries = getattr(request, "retries", None)
    if isinstance(retries, int) and retries > 0:
        attributes[TASK_RETRIES] = retries
    return attributes


def prerun(sender: object = None, task_id: object = None, task: Any = None, **_: object) -> None:
    settings = State.settings
    if settings is None or celery_instrumentor_active():
        return
    task = task if task is not None else sender
    key = task_key(task_id)
    if task is None or key is None or not handles(task, settings):
        return
    try:
        ctx = _task_context(task, settings)
        span: Span = INVALID_SPAN
        if spans_on():
            span = get_telemetry_manager().start_span(
                f"{task_name(task)} process",
                attributes=_consumer_attributes(task, key[0]),
                kind=SpanKind.CONSUMER,
                context=ctx,
                scope=SCOPE,
            )
        if span is not INVALID_SPAN:
            ctx = trace_api.set_span_in_context(span, ctx)
        # Spans off: the message's context is still current (other spans, the tenant).
        run = Run(span, otel_context.attach(ctx))
    except Exception as exc:
        warn("prerun", exc)
        return
    with State.table_lock:
        State.running.setdefault(key, []).append(run)


def _current_run(task_id: object) -> Run | None:
    key = task_key(task_id)
    if key is None:
        return None
    with State.table_lock:
        runs = State.running.get(key)
        return runs[-1] if runs else None


def failure(task_id: object = None, exception: object = None, **_: object) -> None:
    try:
        run = _current_run(task_id)
        if run is not None and isinstance(exception, BaseException):
            run.failed = True
            record_exception_once(run.span, exception)
    except Exception as exc:
        warn("failure", exc)


def retry(request: Any = None, reason: object = None, **_: object) -> None:
    try:
        run = _current_run(getattr(request, "id", None))
        if run is None:
            return
        run.failed = True
        cause = getattr(reason, "exc", None)
        if run.span.is_recording() and reason is not None:
            run.span.set_attribute(RETRY_REASON, str(reason)[:1024])
        if isinstance(cause, BaseException):
            record_exception_once(run.span, cause)
        elif isinstance(reason, BaseException):
            record_exception_once(run.span, reason)
    except Exception as exc:
        warn("retry", exc)


def postrun(task_id: object = None, state: object = None, **_: object) -> None:
    key = task_key(task_id)
    if key is None:
        return
    with State.table_lock:
        runs = State.running.get(key)
        run = runs.pop() if runs else None
        if runs == []:
            del State.running[key]
    if run is None:
        return
    try:
        if run.span.is_recording() and isinstance(state, str):
            run.span.set_attribute(TASK_STATE, state)
            if state in _FAILED_STATES and not run.failed:
                run.span.set_status(Status(StatusCode.ERROR, f"task state {state}"))
    except Exception as exc:
        warn("postrun", exc)
    finally:
        try:
            otel_context.detach(run.token)  # type: ignore[arg-type]
        finally:
            end_span_with(run.span, None)
            if State.settings is None:
                disconnect_closers_when_idle()
