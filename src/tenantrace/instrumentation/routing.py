"""Route spans of any OpenTelemetry user (auto-instrumentation too) to the tenant's provider.

``TenantRoutingTracerProvider`` can be the global provider. The tracers it hands
out decide the tenant at span start, from the span's parent context, by the same
rule as the manager (``tenant_scope()`` / trusted carrier > default). A tracer
obtained once at import time therefore still routes per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from tenantrace.instrumentation.spans import record_exception_event, record_exception_once
from tenantrace.instrumentation.tenants import TENANT_CONTEXT_KEY, current_tenant, with_tenant

if TYPE_CHECKING:
    from tenantrace.instrumentation.manager import TelemetryManager

__all__ = ["RoutingTracer", "TenantRoutingTracerProvider", "install_routing_provider"]

_logger = logging.getLogger(__name__)

ManagerGetter = Callable[[], "TelemetryManager"]


def _global_manager() -> TelemetryManager:
    from tenantrace.instrumentation.manager import get_telemetry_manager

    return get_telemetry_manager()


class RoutingTracer(trace_api.Tracer):
    """A tracer whose spans go to the provider of the tenant current at span start."""

    def __init__(self, manager: ManagerGetter, name: str, version: str | None = None) -> None:
        self._manager = manager
        self._name = name or "unknown"
        self._version = version

    def start_span(  # noqa: PLR0917 - signature fixed by opentelemetry.trace.Tracer
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        try:
            manager = self._manager()
            tracer = manager.tracer_for(None, None, self._name, context)
        except Exception as exc:  # routing must never break an instrumented library
            _logger.debug("tenantrace: routing failed: %r", exc)
            return INVALID_SPAN
        if tracer is None:
            return INVALID_SPAN
        try:
            span = tracer.start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
        except Exception as exc:  # e.g. attributes that are not a mapping: a no-op span
            manager.warn_once("routing-start", "tenantrace: could not start a span (%r)", exc)
            return INVALID_SPAN
        manager.spans_started += 1
        return span

    @_agnosticcontextmanager
    def start_as_current_span(  # noqa: PLR0917 - signature fixed by opentelemetry.trace.Tracer
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        # The span's tenant came from ``context``: make it current for the
        # children too, or they would fall back to the ambient tenant.
        tenant = current_tenant(context) if context is not None else None
        token = None
        if tenant is not None and otel_context.get_value(TENANT_CONTEXT_KEY) != tenant:
            token = otel_context.attach(with_tenant(tenant))
        # The user's exception is recorded here, not by use_span: the SDK formats
        # it with str(exc), and an exception whose str() raises (or that holds an
        # int past the digit limit) would come out replaced by that error.
        try:
            with trace_api.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ) as current:
                yield current
        except Exception as exc:
            _record_escaped(span, exc, record_exception, set_status_on_exception)
            raise
        finally:
            try:
                if end_on_exit:
                    span.end()
            finally:
                if token is not None:
                    otel_context.detach(token)


def _record_escaped(span: Span, exc: Exception, record: bool, set_status: bool) -> None:
    """What ``use_span`` does with an exception leaving its block, never raising:
    the exception event, then ERROR status (a description the user set stands)."""
    try:
        if not span.is_recording():
            return
        if record:
            record_exception_event(span, exc)
        if set_status:
            record_exception_once(span, exc, record=False)
    except Exception:  # telemetry must never replace the user's exception
        _logger.debug("tenantrace: could not record exception on span", exc_info=True)


class TenantRoutingTracerProvider(trace_api.TracerProvider):
    """A global-capable provider that routes every span to its tenant's provider.

    By default it follows the process-wide manager (``init_telemetry()``), so a
    re-initialised manager is picked up without re-installing the provider.
    """

    def __init__(self, manager: TelemetryManager | None = None) -> None:
        if manager is None:
            self._get_manager: ManagerGetter = _global_manager
        else:
            bound = manager
            self._get_manager = lambda: bound

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace_api.Tracer:
        return RoutingTracer(
            self._get_manager, instrumenting_module_name, instrumenting_library_version
        )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._get_manager().force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._get_manager().shutdown()


_install_lock = threading.Lock()


def install_routing_provider() -> bool:
    """Make a ``TenantRoutingTracerProvider`` the global provider, once.

    Returns False (and changes nothing) if another real provider is already
    global: OpenTelemetry allows the global provider to be set only once.
    """
    with _install_lock:
        current = trace_api.get_tracer_provider()
        if isinstance(current, TenantRoutingTracerProvider):
            return True
        if not isinstance(current, trace_api.ProxyTracerProvider):
            _logger.warning(
                "tenantrace: a global tracer provider (%s) is already set; "
                "auto-instrumented spans will not be routed by tenant",
                type(current).__name__,
            )
            return False
        trace_api.set_tracer_provider(TenantRoutingTracerProvider())
        return True
