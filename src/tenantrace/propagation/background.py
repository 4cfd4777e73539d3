"""Background work that keeps the trace and the tenant: carriers, tasks, thread pools.

``asyncio`` tasks copy the context when created, so they keep the trace and
tenant already; a ``ThreadPoolExecutor`` does not, so a job submitted to it
would lose both. ``submit_in_context`` and ``create_task_in_context`` run the
work in the context captured at submission, and optionally start a span for
it, either as a *child* of the current span (the request waits for, or owns,
the work) or as the root of a *linked* new trace (fire-and-forget work that
outlives the request: it keeps the tenant and links back to the request).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from typing import Any, Literal, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from tenantrace.instrumentation.manager import get_telemetry_manager
from tenantrace.instrumentation.spans import NOOP_SCOPE, NoOpScope, SpanScope
from tenantrace.instrumentation.tenants import current_tenant, span_tenant, with_tenant
from tenantrace.propagation.carriers import SpanCarrier
from tenantrace.propagation.http import inject_context
from tenantrace.propagation.links import link_spans

__all__ = [
    "BackgroundMode",
    "bind_context",
    "create_carrier_from_span",
    "create_task_in_context",
    "get_span_id",
    "get_trace_id",
    "submit_in_context",
]

P = ParamSpec("P")
R = TypeVar("R")

BackgroundMode = Literal["child", "linked"]
"""``child``: a child of the current span; ``linked``: a new trace linked to the current span."""


def _tenant_of(span: Span) -> str | None:
    return span_tenant(span) or current_tenant()


def create_carrier_from_span(span: Span | None = None) -> dict[str, str]:
    """Headers carrying ``span`` (default: the current span), for a background hand-off.

    The result is a JSON-serialisable ``dict``; passed as-is to
    ``extract_trace_context`` in this process it also restores the span's
    tenant without consulting the trust policy (see ``SpanCarrier``).
    """
    try:
        target = span if span is not None else trace_api.get_current_span()
        tenant = _tenant_of(target)
        ctx = trace_api.set_span_in_context(target)
        if tenant is not None and current_tenant(ctx) != tenant:
            ctx = with_tenant(tenant, ctx)
        return SpanCarrier(inject_context(ctx), tenant)
    except Exception as exc:
        get_telemetry_manager().warn_once(
            "propagation.carrier", "tenantrace: could not build a carrier (%r)", exc
        )
        return {}


def get_trace_id(span: Span | None = None) -> str | None:
    """The 32-hex-digit trace id of ``span`` (default: the current span); None outside a trace."""
    ctx = (span if span is not None else trace_api.get_current_span()).get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def get_span_id(span: Span | None = None) -> str | None:
    """The 16-hex-digit span id of ``span`` (default: the current span); None outside a trace."""
    ctx = (span if span is not None else trace_api.get_current_span()).get_span_context()
    return f"{ctx.span_id:016x}" if ctx.is_valid else None


def _scope_for(
    captured: Context, span_name: str | None, mode: BackgroundMode
) -> tuple[Context, SpanScope | NoOpScope]:
    """The context to run the work in, and the span scope to run it under."""
    manager = get_telemetry_manager()
    if mode == "child":
        if span_name is None:
            return captured, NOOP_SCOPE
        return captured, manager.span(span_name, context=captured)
    # A new trace: the captured context without its span, tenant and baggage
    # kept, the request's span linked rather than parented.
    link = link_spans(captured)
    root = trace_api.set_span_in_context(trace_api.INVALID_SPAN, captured)
    scope = manager.span(
        span_name or "background",
        context=root,
        kind=SpanKind.INTERNAL,
        links=[link] if link is not None else None,
    )
    return root, scope


def _check_mode(mode: object) -> None:
    if mode not in ("child", "linked"):
        raise ValueError(f"mode must be 'child' or 'linked', got {mode!r}")


def bind_context(
    fn: Callable[P, R],
    *,
    span_name: str | None = None,
    mode: BackgroundMode = "child",
) -> Callable[P, R]:
    """``fn`` bound to the current context (trace, tenant, baggage), for another thread.

    With ``span_name`` (always in ``linked`` mode) each call runs under its own
    span. The context is attached around the call and detached after it, so a
    pooled thread carries nothing over to its next job.
    """
    _check_mode(mode)
    captured = otel_context.get_current()
    name = span_name if span_name is not None or mode == "child" else _name_of(fn)

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        ctx, scope = _scope_for(captured, name, mode)
        token = otel_context.attach(ctx)
        try:
            with scope:
                return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run


def _name_of(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "background")


def submit_in_context(
    executor: Executor,
    fn: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Future[R]:
    """``executor.submit(fn, ...)`` running ``fn`` in the current context (trace and tenant).

    For a span around the job use ``bind_context(fn, span_name=..., mode=...)``
    and submit that; this is the plain, span-less form.
    """
    return executor.submit(bind_context(fn), *args, **kwargs)


def create_task_in_context(
    coro: Coroutine[Any, Any, R],
    *,
    span_name: str | None = None,
    mode: BackgroundMode = "child",
    name: str | None = None,
) -> asyncio.Task[R]:
    """``asyncio.create_task(coro)`` with a span for the task, as a child or a linked new trace.

    The task keeps the current trace and tenant (tasks copy the context). In
    ``linked`` mode it runs as the root of a new trace that keeps the tenant
    and links to the current span, so a request's trace ends with the request
    while the task's own trace records the work.
    """
    try:
        _check_mode(mode)
    except ValueError:
        coro.close()  # never awaited: close it rather than leave a warning behind
        raise
    captured = otel_context.get_current()
    span = span_name if span_name is not None or mode == "child" else _name_of(coro)

    async def run() -> R:
        ctx, scope = _scope_for(captured, span, mode)
        token = otel_context.attach(ctx)
        try:
            async with scope:
                return await coro
        finally:
            otel_context.detach(token)

    return asyncio.get_running_loop().create_task(run(), name=name)
