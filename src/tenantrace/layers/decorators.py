"""``@trace_function``: one span per call of a function, coroutine or generator.

Built on wrapt so the decorated object keeps its name, docstring, signature
(FastAPI dependency injection and OpenAPI keep working) and descriptor
behaviour (methods, classmethods, staticmethods). Whether a call is traced is
decided in C by wrapt's ``enabled=`` gate: a disabled or level-gated decorator
costs tens of nanoseconds. Generators and async generators get one span for the
whole iteration, and run every step in a context of their own (see
``_wrap_generators``): what the body sets never reaches the consumer, and
an abandoned or early-closed generator never leaves a context behind.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

import wrapt
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryLevel
from tenantrace.instrumentation.manager import get_telemetry_manager, level_gate
from tenantrace.instrumentation.tenants import validate_tenant_id

# The per-call machinery lives in _decor_call (functions, coroutines) and
# _wrap_generators (generators); every name this module had before that split
# is imported back here, so existing imports keep working.
from tenantrace.layers._decor_call import (  # noqa: F401 - re-exported, as before the split
    _MAX_ARGUMENT_CHARS,
    ARGUMENT_PREFIX,
    SCOPE,
    _argument_value,
    _async_wrapper,
    _CallTracer,
    _sync_wrapper,
)
from tenantrace.layers._wrap_generators import (  # noqa: F401 - re-exported, as before the split
    _async_generator_wrapper,
    _first_step,
    _generator_wrapper,
    _in_context,
    _owned_by_its_wrapper,
    _start_in,
    _traced_async_generator,
    _traced_generator,
)

__all__ = ["get_current_span", "get_tracer", "trace_function"]

P = ParamSpec("P")
R = TypeVar("R")


def get_tracer(name: str, version: str | None = None) -> trace_api.Tracer:
    """A tracer for module ``name`` whose spans are routed to the current tenant."""
    from tenantrace.instrumentation.routing import RoutingTracer

    return RoutingTracer(get_telemetry_manager, name, version)


def get_current_span() -> trace_api.Span:
    """The span current in this context (``INVALID_SPAN`` outside any span)."""
    return trace_api.get_current_span()


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
