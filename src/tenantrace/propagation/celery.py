"""Celery: the trace, and the tenant, from the code that sends a task to the worker that runs it.

``instrument_celery()`` connects tenantrace's own receivers to Celery's signals,
in the producer and in the worker (the same call in both; signals connected
before a prefork worker forks hold in its children):

- ``before_task_publish``: a PRODUCER span ``{task} publish`` (optional) and,
  under one message header (``CELERY_HEADER``), the carrier of the current
  trace context and tenant, written by tenantrace's own inject, so the egress
  policy and the header limits apply as for any other carrier;
- ``task_prerun``: the carrier read back under the trust policy, a CONSUMER
  span ``{task} process`` started under it and made current with the accepted
  tenant, so ``current_tenant()`` in the task is the producer's and every span
  of the task goes to that tenant's project;
- ``task_failure`` / ``task_retry``: the exception recorded once, ERROR status;
- ``task_postrun`` (Celery sends it in a ``finally``): the span ended and the
  context detached, whatever happened in the task;
- ``after_task_publish``: the PRODUCER span ended.

The broker is a hop inside the application's own boundary (only code holding
the broker credentials can enqueue a task), so the worker trusts the tenant a
message carries by default (``trust=True``); pass a ``TenantTrustPolicy`` when
the broker is shared with code you do not trust.

With opentelemetry-instrumentation-celery active (``CeleryInstrumentor``) these
receivers stand aside, on every signal, whatever the installation order: the
instrumentor's spans (``apply_async/{task}``, ``run/{task}``) are the task's
spans and the tenant travels through the global propagator
(``tenantrace.propagation.propagator.TenantPropagator``, installed by
``init_telemetry()``). Running both would give every task two CONSUMER spans.

Per-task state lives in tables keyed by task id and thread, never in one
"current task" slot, so a worker running tasks of many tenants at once (threads
pool, prefork, eventlet or gevent greenlets) never mixes them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
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

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import end_span_with, record_exception_once
from tenantrace.instrumentation.tenants import current_tenant, set_tenant_in_context
from tenantrace.propagation.http import extract_carried, inject_context
from tenantrace.propagation.messages import carrier_of
from tenantrace.propagation.trust import TrustArg, resolve_trust

__all__ = [
    "CELERY_HEADER",
    "celery_instrumentor_active",
    "instrument_celery",
    "is_celery_instrumented",
    "uninstrument_celery",
]

CELERY_HEADER: Final = "tenantrace"
"""The message header holding the carrier (``traceparent``, ``tracestate``, ``baggage``)."""

SCOPE: Final = "tenantrace.celery"
TASK_NAME: Final = "celery.task_name"
TASK_RETRIES: Final = "celery.retries"
TASK_STATE: Final = "celery.state"
RETRY_REASON: Final = "celery.retry.reason"
_FAILED_STATES: Final = frozenset({"FAILURE", "RETRY"})
_INSTRUMENTOR_MODULE: Final = "opentelemetry.instrumentation.celery"


@dataclass(frozen=True)
class _Settings:
    app: Any
    trust: TrustArg
    publish_span: bool
    url: str | None


@dataclass
class _Run:
    """One execution of a task in one thread: its span, its context token."""

    span: Span
    token: object
    failed: bool = False


_Key = tuple[str, int]


class _State:
    """The installed settings (replaced whole: readers need no lock) and the open work."""

    settings: _Settings | None = None
    closers_connected = False
    install_lock = threading.Lock()
    table_lock = threading.Lock()
    # A list per key: the same task id run again inside itself (eager apply) nests.
    running: dict[_Key, list[_Run]] = {}  # noqa: RUF012 - class-level tables on purpose
    publishing: dict[_Key, Span] = {}  # noqa: RUF012

    @classmethod
    def after_fork_in_child(cls) -> None:
        # A prefork child starts with no open work, and with locks no other
        # thread of the parent can be holding at the moment of fork().
        cls.install_lock = threading.Lock()
        cls.table_lock = threading.Lock()
        cls.running = {}
        cls.publishing = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_State.after_fork_in_child)


# ------------------------------------------------------------------ installing


def instrument_celery(
    app: Any = None,
    *,
    trust: TrustArg = True,
    publish_span: bool = True,
    url: str | None = None,
) -> bool:
    """Carry the trace and the tenant through Celery task messages; call it in producer and worker.

    - ``app``: when given, the worker-side hooks handle only this app's tasks
      (Celery's publish signal does not say which app sends, so every publish
      in the process carries the context).
    - ``trust``: who may choose the tenant of a task from its message (see
      ``TenantTrustPolicy``); ``True`` by default, the broker being an internal
      hop; ``None`` uses the process policy (``set_default_trust_policy``, else
      the config's ``trust_tenant_claims`` / ``trusted_tenants``).
    - ``publish_span``: start a PRODUCER span ``{task} publish`` around each publish.
    - ``url``: the destination named to the egress policy; None (default) treats
      the message like any queue message (``EgressPolicy.baggage_without_url``).

    Idempotent: a second call only replaces the settings. Returns True when this
    call connected the receivers, False when they already were.
    """
    from celery import signals

    settings = _Settings(app, trust, bool(publish_span), url)
    if trust is not None:
        resolve_trust(trust)  # a wrong type raises here, not in the worker
    with _State.install_lock:
        already = _State.settings is not None
        _State.settings = settings
        signals.before_task_publish.connect(
            _before_publish, weak=False, dispatch_uid=_uid("before_publish")
        )
        signals.task_prerun.connect(_prerun, weak=False, dispatch_uid=_uid("prerun"))
        _connect_closers(signals)
    return not already


def uninstrument_celery() -> bool:
    """Stop carrying contexts; tasks already running still end their spans. True if installed."""
    from celery import signals

    with _State.install_lock:
        was = _State.settings is not None
        _State.settings = None
        signals.before_task_publish.disconnect(_before_publish, dispatch_uid=_uid("before_publish"))
        signals.task_prerun.disconnect(_prerun, dispatch_uid=_uid("prerun"))
    _disconnect_closers_when_idle()
    return was


def is_celery_instrumented() -> bool:
    """True between ``instrument_celery()`` and ``uninstrument_celery()``."""
    return _State.settings is not None


def celery_instrumentor_active() -> bool:
    """True while opentelemetry-instrumentation-celery's ``CeleryInstrumentor`` is instrumenting.

    Read on every signal (it is a module lookup and an attribute), so it does
    not matter whether the instrumentor was installed before or after us.
    """
    module = sys.modules.get(_INSTRUMENTOR_MODULE)
    if module is None:
        return False
    # BaseInstrumentor is a singleton: its one instance, if any was made, says.
    instrumentor = getattr(getattr(module, "CeleryInstrumentor", None), "_instance", None)
    return getattr(instrumentor, "is_instrumented_by_opentelemetry", False) is True


def _uid(name: str) -> str:
    return f"tenantrace.celery.{name}"


def _connect_closers(signals: Any) -> None:
    signals.after_task_publish.connect(
        _after_publish, weak=False, dispatch_uid=_uid("after_publish")
    )
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=_uid("postrun"))
    signals.task_failure.connect(_failure, weak=False, dispatch_uid=_uid("failure"))
    signals.task_retry.connect(_retry, weak=False, dispatch_uid=_uid("retry"))
    _State.closers_connected = True


def _disconnect_closers_when_idle() -> None:
    """Disconnect the closing receivers once nothing they must close is open."""
    if not _State.closers_connected or _State.settings is not None:
        return
    with _State.table_lock:
        busy = bool(_State.running or _State.publishing)
    if busy:
        return  # the last postrun / after_publish disconnects them
    from celery import signals

    with _State.install_lock:
        if _State.settings is not None or not _State.closers_connected:
            return
        signals.after_task_publish.disconnect(_after_publish, dispatch_uid=_uid("after_publish"))
        signals.task_postrun.disconnect(_postrun, dispatch_uid=_uid("postrun"))
        signals.task_failure.disconnect(_failure, dispatch_uid=_uid("failure"))
        signals.task_retry.disconnect(_retry, dispatch_uid=_uid("retry"))
        _State.closers_connected = False


# ------------------------------------------------------------------ helpers


def _warn(kind: str, exc: BaseException) -> None:
    manager = get_telemetry_manager()
    manager.count("celery.hook_errors")
    manager.warn_once(
        "celery." + kind,
        "tenantrace: Celery %s hook failed (%r); the task is unaffected",
        kind,
        exc,
    )


def _spans_on() -> bool:
    return get_telemetry_manager().is_enabled_for(TelemetryLevel.BASIC)


def _key(task_id: object) -> _Key | None:
    if not isinstance(task_id, str) or not task_id:
        return None
    return task_id, threading.get_ident()


def _task_name(task: Any) -> str:
    name = getattr(task, "name", None)
    return name if isinstance(name, str) and name else "celery.task"


def _handles(task: Any, settings: _Settings) -> bool:
    return settings.app is None or getattr(task, "app", None) is settings.app


# ------------------------------------------------------------------ producer


def _before_publish(
    sender: object = None,
    headers: object = None,
    routing_key: object = None,
    **_: object,
) -> None:
    settings = _State.settings
    if settings is None or not isinstance(headers, dict) or celery_instrumentor_active():
        return
    try:
        _publish(settings, sender, headers, routing_key)
    except Exception as exc:
        _warn("publish", exc)


def _publish(
    settings: _Settings, sender: object, headers: dict[Any, Any], routing_key: object
) -> None:
    ctx = otel_context.get_current()
    key = _key(headers.get("id"))
    if settings.publish_span and key is not None and _spans_on():
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
            with _State.table_lock:
                _State.publishing[key] = span
            ctx = trace_api.set_span_in_context(span, ctx)
    headers[CELERY_HEADER] = inject_context(ctx, settings.url)


def _end_abandoned_publishes(thread: int) -> None:
    """End this thread's PRODUCER spans whose publish raised (no ``after_task_publish`` came).

    A thread publishes one message at a time, so any span it left open is one
    whose publish failed.
    """
    with _State.table_lock:
        if not _State.publishing:
            return
        stale = [key for key in _State.publishing if key[1] == thread]
        spans = [_State.publishing.pop(key) for key in stale]
    for span in spans:
        span.set_status(Status(StatusCode.ERROR, "the message was not published"))
        end_span_with(span, None)


def _after_publish(headers: object = None, **_: object) -> None:
    try:
        key = _key(headers.get("id") if isinstance(headers, Mapping) else None)
        if key is None:
            return
        with _State.table_lock:
            span = _State.publishing.pop(key, None)
        if span is not None:
            end_span_with(span, None)
        if _State.settings is None:
            _disconnect_closers_when_idle()
    except Exception as exc:
        _warn("after_publish", exc)


# ------------------------------------------------------------------ worker


def _carrier(task: Any) -> object:
    request = getattr(task, "request", None)
    carrier = getattr(request, CELERY_HEADER, None)
    if carrier is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            carrier = headers.get(CELERY_HEADER)
    return carrier


def _task_context(task: Any, settings: _Settings) -> Context:
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
        TASK_NAME: _task_name(task),
    }
    delivery = getattr(request, "delivery_info", None)
    routing_key = delivery.get("routing_key") if isinstance(delivery, Mapping) else None
    if isinstance(routing_key, str) and routing_key:
        attributes[MESSAGING_DESTINATION_NAME] = routing_key
    retries = getattr(request, "retries", None)
    if isinstance(retries, int) and retries > 0:
        attributes[TASK_RETRIES] = retries
    return attributes


def _prerun(sender: object = None, task_id: object = None, task: Any = None, **_: object) -> None:
    settings = _State.settings
    if settings is None or celery_instrumentor_active():
        return
    task = task if task is not None else sender
    key = _key(task_id)
    if task is None or key is None or not _handles(task, settings):
        return
    try:
        ctx = _task_context(task, settings)
        span: Span = INVALID_SPAN
        if _spans_on():
            span = get_telemetry_manager().start_span(
                f"{_task_name(task)} process",
                attributes=_consumer_attributes(task, key[0]),
                kind=SpanKind.CONSUMER,
                context=ctx,
                scope=SCOPE,
            )
        if span is not INVALID_SPAN:
            ctx = trace_api.set_span_in_context(span, ctx)
        # Spans off: the message's context is still current (other spans, the tenant).
        run = _Run(span, otel_context.attach(ctx))
    except Exception as exc:
        _warn("prerun", exc)
        return
    with _State.table_lock:
        _State.running.setdefault(key, []).append(run)


def _current_run(task_id: object) -> _Run | None:
    key = _key(task_id)
    if key is None:
        return None
    with _State.table_lock:
        runs = _State.running.get(key)
        return runs[-1] if runs else None


def _failure(task_id: object = None, exception: object = None, **_: object) -> None:
    try:
        run = _current_run(task_id)
        if run is not None and isinstance(exception, BaseException):
            run.failed = True
            record_exception_once(run.span, exception)
    except Exception as exc:
        _warn("failure", exc)


def _retry(request: Any = None, reason: object = None, **_: object) -> None:
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
        _warn("retry", exc)


def _postrun(task_id: object = None, state: object = None, **_: object) -> None:
    key = _key(task_id)
    if key is None:
        return
    with _State.table_lock:
        runs = _State.running.get(key)
        run = runs.pop() if runs else None
        if runs == []:
            del _State.running[key]
    if run is None:
        return
    try:
        if run.span.is_recording() and isinstance(state, str):
            run.span.set_attribute(TASK_STATE, state)
            if state in _FAILED_STATES and not run.failed:
                run.span.set_status(Status(StatusCode.ERROR, f"task state {state}"))
    except Exception as exc:
        _warn("postrun", exc)
    finally:
        try:
            otel_context.detach(run.token)  # type: ignore[arg-type]
        finally:
            end_span_with(run.span, None)
            if _State.settings is None:
                _disconnect_closers_when_idle()
