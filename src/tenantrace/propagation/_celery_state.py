"""What the Celery receivers share: the installed settings, the tables of open work
(PRODUCER spans being published, tasks running) and small helpers.

Per-task state lives in tables keyed by task id and thread, never in one
"current task" slot, so a worker running tasks of many tenants at once (threads
pool, prefork, eventlet or gevent greenlets) never mixes them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.trace import Span

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.propagation.trust import TrustArg

__all__ = [
    "CELERY_HEADER",
    "RETRY_REASON",
    "SCOPE",
    "TASK_NAME",
    "TASK_RETRIES",
    "TASK_STATE",
    "Run",
    "Settings",
    "State",
    "TaskKey",
    "celery_instrumentor_active",
    "disconnect_closers_when_idle",
    "handles",
    "spans_on",
    "task_key",
    "task_name",
    "uid",
    "warn",
]

CELERY_HEADER: Final = "tenantrace"
"""The message header holding the carrier (``traceparent``, ``tracestate``, ``baggage``)."""

SCOPE: Final = "tenantrace.celery"
TASK_NAME: Final = "celery.task_name"
TASK_RETRIES: Final = "celery.retries"
TASK_STATE: Final = "celery.state"
RETRY_REASON: Final = "celery.retry.reason"
_INSTRUMENTOR_MODULE: Final = "opentelemetry.instrumentation.celery"


@dataclass(frozen=True)
class Settings:
    app: Any
    trust: TrustArg
    publish_span: bool
    url: str | None


@dataclass
class Run:
    """One execution of a task in one thread: its span, its context token."""

    span: Span
    token: object
    failed: bool = False


TaskKey = tuple[str, int]


class State:
    """The installed settings (replaced whole: readers need no lock) and the open work."""

    settings: Settings | None = None
    install_lock = threading.Lock()
    table_lock = threading.Lock()
    # The closing receivers connected: (signal name, receiver, dispatch uid).
    closers: tuple[tuple[str, Callable[..., None], str], ...] = ()
    # A list per key: the same task id run again inside itself (eager apply) nests.
    running: dict[TaskKey, list[Run]] = {}  # noqa: RUF012 - class-level tables on purpose
    publishing: dict[TaskKey, Span] = {}  # noqa: RUF012

    @classmethod
    def after_fork_in_child(cls) -> None:
        # A prefork child starts with no open work, and with locks no other
        # thread of the parent can be holding at the moment of fork().
        cls.install_lock = threading.Lock()
        cls.table_lock = threading.Lock()
        cls.running = {}
        cls.publishing = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=State.after_fork_in_child)


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


def uid(name: str) -> str:
    return f"tenantrace.celery.{name}"


def disconnect_closers_when_idle() -> None:
    """Disconnect the closing receivers once nothing they must close is open."""
    if not State.closers or State.settings is not None:
        return
    with State.table_lock:
        busy = bool(State.running or State.publishing)
    if busy:
        return  # the last postrun / after_publish disconnects them
    from celery import signals

    with State.install_lock:
        if State.settings is not None or not State.closers:
            return
        for signal, receiver, dispatch_uid in State.closers:
            getattr(signals, signal).disconnect(receiver, dispatch_uid=dispatch_uid)
        State.closers = ()


def warn(kind: str, exc: BaseException) -> None:
    manager = get_telemetry_manager()
    manager.count("celery.hook_errors")
    manager.warn_once(
        "celery." + kind,
        "tenantrace: Celery %s hook failed (%r); the task is unaffected",
        kind,
        exc,
    )


def spans_on() -> bool:
    return get_telemetry_manager().is_enabled_for(TelemetryLevel.BASIC)


def task_key(task_id: object) -> TaskKey | None:
    if not isinstance(task_id, str) or not task_id:
        return None
    return task_id, threading.get_ident()


def task_name(task: Any) -> str:
    name = getattr(task, "name", None)
    return name if isinstance(name, str) and name else "celery.task"


def handles(task: Any, settings: Settings) -> bool:
    return settings.app is None or getattr(task, "app", None) is settings.app
