"""What ``@trace_function`` runs per call of a plain function or a coroutine.

``_CallTracer`` holds what one decorated function needs at call time (computed
once, at decoration) and starts its span; ``_sync_wrapper`` and
``_async_wrapper`` are the wrapt wrappers around it. Generators, whose span
lasts the whole iteration, are in ``_wrap_generators``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from tenantrace.export.scrubbing import redacted_repr
from tenantrace.export.secrets import redact_text
from tenantrace.instrumentation.manager import get_telemetry_manager, instrumentation_suppressed
from tenantrace.instrumentation.spans import record_exception_once
from tenantrace.instrumentation.tenants import current_tenant, with_tenant

SCOPE: Final = "tenantrace.trace_function"
ARGUMENT_PREFIX: Final = "code.function.argument."
_MAX_ARGUMENT_CHARS: Final = 1024


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
