"""``@trace_function``: one span per call of a function, coroutine or generator.

Built on wrapt so the decorated object keeps its name, docstring, signature
(FastAPI dependency injection and OpenAPI keep working) and descriptor
behaviour (methods, classmethods, staticmethods). Whether a call is traced is
decided in C by wrapt's ``enabled=`` gate: a disabled or level-gated decorator
costs tens of nanoseconds. Generators and async generators get one span for the
whole iteration, and run every step in a context of their own (see the
generators section below): what the body sets never reaches the consumer, and
an abandoned or early-closed generator never leaves a context behind.
"""

from __future__ import annotations

import contextvars
import inspect
import sys
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, Final, ParamSpec, TypeVar, cast, overload

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from tenantrace.export.scrubbing import redacted_repr
from tenantrace.export.secrets import redact_text
from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import (
    get_telemetry_manager,
    instrumentation_suppressed,
    level_gate,
)
from tenantrace.instrumentation.spans import end_span_with, record_exception_once
from tenantrace.instrumentation.tenants import current_tenant, validate_tenant_id, with_tenant

__all__ = ["get_current_span", "get_tracer", "trace_function"]

P = ParamSpec("P")
R = TypeVar("R")

SCOPE: Final = "tenantrace.trace_function"
ARGUMENT_PREFIX: Final = "code.function.argument."
_MAX_ARGUMENT_CHARS: Final = 1024


def get_tracer(name: str, version: str | None = None) -> trace_api.Tracer:
    """A tracer for module ``name`` whose spans are routed to the current tenant."""
    from tenantrace.instrumentation.routing import RoutingTracer

    return RoutingTracer(get_telemetry_manager, name, version)


def get_current_span() -> trace_api.Span:
    """The span current in this context (``INVALID_SPAN`` outside any span)."""
    return trace_api.get_current_span()


def _argument_value(value: object) -> AttributeValue:
    """A captured argument as an attribute value, secrets redacted at any depth."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value[:_MAX_ARGUMENT_CHARS])
    return redacted_repr(value, _MAX_ARGUMENT_CHARS)


class _CallTracer:
    """What one decorated function needs at call time, computed once at decoration."""

    __slots__ = (
        "attributes",
        "capture",
        "kind",
        "name",
        "project_name",
        "record_exception",
        "signature",
        "static",
        "tenant_id",
    )

    def __init__(
        self,
        *,
        name: str,
        attributes: Mapping[str, AttributeValue] | None,
        record_exception: bool,
        tenant_id: str | None,
        project_name: str | None,
        kind: SpanKind,
        capture: Sequence[str],
        signature: inspect.Signature | None,
    ) -> None:
        self.name = name
        self.attributes = dict(attributes) if attributes else None
        self.record_exception = record_exception
        self.tenant_id = tenant_id
        self.project_name = project_name
        self.kind = kind
        self.capture = tuple(capture)
        self.signature = signature
        # A staticmethod's instance (the class wrapt passes) is not an argument.
        self.static = False

    def start(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], instance: Any = None
    ) -> tuple[Any, object] | None:
        """Start the span and attach it; None when this call is not traced."""
        ctx = otel_context.get_current()
        if instrumentation_suppressed(ctx):
            return None
        manager = get_telemetry_manager()
        tracer: Tracer | None = manager.tracer_for(self.tenant_id, self.project_name, SCOPE, ctx)
        if tracer is None:
            return None
        attributes = self.attributes
        if self.capture:
            # wrapt passes a method's self / cls as ``instance``, not in ``args``.
            if instance is not None and not self.static:
                args = (instance, *args)
            attributes = self._with_arguments(args, kwargs)
        # An explicit tenant is in the context before the span starts: a sampler
        # reads it with current_tenant(parent_context), and the children inherit it.
        if self.tenant_id is not None and current_tenant(ctx) != self.tenant_id:
            ctx = with_tenant(self.tenant_id, ctx)
        span = tracer.start_span(self.name, ctx, self.kind, attributes)
        manager.spans_started += 1
        token = otel_context.attach(trace_api.set_span_in_context(span, ctx))
        return span, token

    def _with_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, AttributeValue] | None:
        attributes: dict[str, AttributeValue] = dict(self.attributes or {})
        if self.signature is None:
            return attributes
        try:
            binding = self.signature.bind_partial(*args, **kwargs)
        except TypeError:
            return attributes
        # The value the call ran with, defaults included.
        binding.apply_defaults()
        bound = binding.arguments
        for name in self.capture:
            if name in bound:
                attributes[ARGUMENT_PREFIX + name] = _argument_value(bound[name])
        return attributes


def _sync_wrapper(call: _CallTracer) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            started = call.start(args, kwargs, instance)
        except Exception:
            started = None
        if started is None:
            return wrapped(*args, **kwargs)
        span, token = started
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            record_exception_once(span, exc, record=call.record_exception)
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()

    return wrapper


def _async_wrapper(call: _CallTracer) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            started = call.start(args, kwargs, instance)
        except Exception:
            started = None
        if started is None:
            return await wrapped(*args, **kwargs)
        span, token = started
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            record_exception_once(span, exc, record=call.record_exception)
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()

    return wrapper


# ------------------------------------------------------------- generators
#
# A decorated generator owns a ``contextvars.Context``, copied from its
# caller's when it is called, and every step of its body (next, send, throw,
# close; asend, athrow, aclose) runs inside it with ``ctx.run``. What the body
# sets (a tenant scope, baggage, a current span) stays in force across its
# yields and never reaches the consumer; what the consumer sets between steps
# never reaches the body; ``finally`` and the collector's close run in it too.
# The span starts in that context at the first step, and is current there
# without ever being detached: nothing but the generator sees the context.
# The wrapped generator is made at the first step too, after the wrapper: when
# the cyclic collector frees both, CPython usually finalises the wrapper first,
# which closes the body in its context. Not always: a sync generator freed in a
# reference cycle may run its ``finally`` in the collector's context. Async
# generators are exact (``_first_step``).


@types.coroutine
def _in_context(ctx: contextvars.Context, steps: Any) -> Generator[Any, Any, Any]:
    """Delegate to ``steps`` (``yield from``) with each of its steps run in ``ctx``.

    ``steps`` is a generator, or the iterator behind an awaitable (an async
    generator's ``asend()``): awaited, this runs each resumption of the
    awaitable in ``ctx``, since an ``await`` has no context of its own.
    """
    run = ctx.run
    send = steps.send
    try:
        value = run(send, None)
        while True:
            try:
                received = yield value
            except GeneratorExit:
                run(steps.close)
                raise
            except BaseException as thrown:
                value = run(steps.throw, thrown)
            else:
                value = run(send, received)
    except StopIteration as stop:
        return stop.value


def _start_in(
    ctx: contextvars.Context, call: _CallTracer, instance: Any, args: Any, kwargs: Any
) -> trace_api.Span | None:
    """Start the span and make it current in ``ctx`` for good; None when not traced."""
    try:
        started = ctx.run(call.start, args, kwargs, instance)
    except Exception:
        return None
    return None if started is None else cast("trace_api.Span", started[0])


def _generator_wrapper(call: _CallTracer) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        return _traced_generator(call, ctx, wrapped, instance=instance, args=args, kwargs=kwargs)

    return wrapper


def _traced_generator(
    call: _CallTracer,
    ctx: contextvars.Context,
    wrapped: Callable[..., Generator[Any, Any, Any]],
    *,
    instance: Any,
    args: Any,
    kwargs: Any,
) -> Generator[Any, Any, Any]:
    span = _start_in(ctx, call, instance, args, kwargs)
    error: BaseException | None = None
    try:
        gen = ctx.run(wrapped, *args, **kwargs)
        return (yield from _in_context(ctx, gen))
    except GeneratorExit:
        raise  # closed early by the consumer: not an error
    except BaseException as exc:
        error = exc
        raise
    finally:
        if span is not None:
            end_span_with(span, error, record=call.record_exception)


def _async_generator_wrapper(call: _CallTracer) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        return _traced_async_generator(
            call, ctx, wrapped, instance=instance, args=args, kwargs=kwargs
        )

    return wrapper


def _owned_by_its_wrapper(agen: object) -> None:
    """The asyncgen finaliser of a wrapped async generator: nothing to do.

    Its wrapper closes it, in its context. Were the event loop to finalise it
    too (a reference cycle holding both, the loop's shutdown), it would close
    it concurrently with its wrapper, in the loop's context.
    """


def _first_step(agen: AsyncGenerator[Any, Any]) -> Awaitable[Any]:
    """``agen.asend(None)``, made under asyncgen hooks of ours (no body code runs here).

    An async generator takes the thread's hooks when its first ``asend()`` is
    made: the wrapped one is thus neither tracked nor finalised by the event
    loop; only its wrapper is.
    """
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(None, _owned_by_its_wrapper)
    try:
        return agen.asend(None)
    finally:
        sys.set_asyncgen_hooks(*hooks)


async def _traced_async_generator(
    call: _CallTracer,
    ctx: contextvars.Context,
    wrapped: Callable[..., AsyncGenerator[Any, Any]],
    *,
    instance: Any,
    args: Any,
    kwargs: Any,
) -> AsyncGenerator[Any, Any]:
    span = _start_in(ctx, call, instance, args, kwargs)
    error: BaseException | None = None
    try:
        agen = ctx.run(wrapped, *args, **kwargs)
        step: Awaitable[Any] = _first_step(agen)
        while True:
            try:
                value = await _in_context(ctx, step)
            except StopAsyncIteration:
                return
            try:
                received = yield value
            except GeneratorExit:
                await _in_context(ctx, agen.aclose())
                raise
            except BaseException as thrown:
                step = agen.athrow(thrown)
            else:
                step = agen.asend(received)
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        if span is not None:
            end_span_with(span, error, record=call.record_exception)


def _wrapper_for(target: Callable[..., Any], call: _CallTracer) -> Callable[..., Any]:
    func = inspect.unwrap(target) if callable(target) else target
    if isinstance(func, staticmethod | classmethod):
        func = func.__func__
    if inspect.isasyncgenfunction(func):
        return _async_generator_wrapper(call)
    if inspect.isgeneratorfunction(func):
        return _generator_wrapper(call)
    if inspect.iscoroutinefunction(func):
        return _async_wrapper(call)
    return _sync_wrapper(call)


def _default_name(target: Any) -> str:
    func = target.__func__ if isinstance(target, staticmethod | classmethod) else target
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return str(name or repr(func))


@overload
def trace_function(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def trace_function(
    func: None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    record_exception: bool = True,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    tenant_id: str | None = None,
    project_name: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    capture_args: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def trace_function(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    record_exception: bool = True,
    level: TelemetryLevel = TelemetryLevel.DETAILED,
    tenant_id: str | None = None,
    project_name: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    capture_args: Sequence[str] = (),
) -> Any:
    """Trace every call of the decorated function in one span.

    Use bare (``@trace_function``) or with options (``@trace_function(name=...)``).
    The span is named after the function's qualified name unless ``name`` is
    given, goes to the current tenant's project (or ``tenant_id``'s), records
    the user's exception once with ``error.type`` and ERROR status, and
    re-raises it unchanged. ``capture_args`` names arguments to record as
    ``code.function.argument.<name>`` attributes (secrets are redacted on
    export). A ``level`` above the configured one makes the decorator a
    pass-through.
    """
    if tenant_id is not None:
        validate_tenant_id(tenant_id)
    level = TelemetryLevel.parse(level)

    def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
        signature: inspect.Signature | None = None
        if capture_args:
            try:
                signature = inspect.signature(
                    target.__func__ if isinstance(target, staticmethod | classmethod) else target
                )
            except (TypeError, ValueError):
                signature = None
        call = _CallTracer(
            name=name or _default_name(target),
            attributes=attributes,
            record_exception=record_exception,
            tenant_id=tenant_id,
            project_name=project_name,
            kind=kind,
            capture=capture_args,
            signature=signature,
        )
        call.static = isinstance(target, staticmethod)
        # The gate is a list's C __len__ (truthy int): wrapt decides in C, typed as a bool.
        gate = cast("Callable[[], bool]", level_gate(level))
        return wrapt.FunctionWrapper(target, _wrapper_for(target, call), enabled=gate)

    if func is not None:
        return decorate(func)
    return decorate
