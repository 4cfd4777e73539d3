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

from collections.abc import Callable
from typing import Any

from tenantrace.propagation._celery_producer import after_publish, before_publish
from tenantrace.propagation._celery_state import (
    CELERY_HEADER,
    Settings,
    State,
    celery_instrumentor_active,
    disconnect_closers_when_idle,
    uid,
)
from tenantrace.propagation._celery_worker import failure, postrun, prerun, retry
from tenantrace.propagation.trust import TrustArg, resolve_trust

__all__ = [
    "CELERY_HEADER",
    "celery_instrumentor_active",
    "instrument_celery",
    "is_celery_instrumented",
    "uninstrument_celery",
]

# The receivers that close what the others open: connected on install, disconnected
# only once nothing they must close is open (``disconnect_closers_when_idle``).
_CLOSERS: tuple[tuple[str, Callable[..., None], str], ...] = (
    ("after_task_publish", after_publish, uid("after_publish")),
    ("task_postrun", postrun, uid("postrun")),
    ("task_failure", failure, uid("failure")),
    ("task_retry", retry, uid("retry")),
)


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

    settings = Settings(app, trust, bool(publish_span), url)
    if trust is not None:
        resolve_trust(trust)  # a wrong type raises here, not in the worker
    with State.install_lock:
        already = State.settings is not None
        State.settings = settings
        signals.before_task_publish.connect(
            before_publish, weak=False, dispatch_uid=uid("before_publish")
        )
        signals.task_prerun.connect(prerun, weak=False, dispatch_uid=uid("prerun"))
        _connect_closers(signals)
    return not already


def uninstrument_celery() -> bool:
    """Stop carrying contexts; tasks already running still end their spans. True if installed."""
    from celery import signals

    with State.install_lock:
        was = State.settings is not None
        State.settings = None
        signals.before_task_publish.disconnect(before_publish, dispatch_uid=uid("before_publish"))
        signals.task_prerun.disconnect(prerun, dispatch_uid=uid("prerun"))
    disconnect_closers_when_idle()
    return was


def is_celery_instrumented() -> bool:
    """True between ``instrument_celery()`` and ``uninstrument_celery()``."""
    return State.settings is not None


def _connect_closers(signals: Any) -> None:
    for signal, receiver, dispatch_uid in _CLOSERS:
        getattr(signals, signal).connect(receiver, weak=False, dispatch_uid=dispatch_uid)
    State.closers = _CLOSERS
