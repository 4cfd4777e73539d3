"""``@trace_function`` on generators and async generators: one span for the whole iteration.

A decorated generator owns a ``contextvars.Context``, copied from its
caller's when it is called, and every step of its body (next, send, throw,
close; asend, athrow, aclose) runs inside it with ``ctx.run``. What the body
sets (a tenant scope, baggage, a current span) stays in force across its
yields and never reaches the consumer; what the consumer sets between steps
never reaches the body; ``finally`` and the collector's close run in it too.
The span starts in that context at the first step, and is current there
without ever being detached: nothing but the generator sees the context.
The wrapped generator is made at the first step too, after the wrapper: when
the cyclic collector frees both, CPython usually finalises the wrapper first,
which closes the body in its context. Not always: a sync generator freed in a
reference cycle may run its ``finally`` in the collector's context. Async
generators are exact (``_first_step``).
"""

from __future__ import annotations

import contextvars
import sys
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, cast

from opentelemetry import trace as trace_api

from tenantrace.instrumentation.spans import end_span_with
from tenantrace.layers._decor_call import _CallTracer


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
