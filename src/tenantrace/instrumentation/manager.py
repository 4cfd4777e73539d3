"""``TelemetryManager``: the tenant-aware tracer registry and its process-wide instance.

The process-wide instance lives in ``_global_manager`` (re-exported here), the
stats and health check in ``_manager_stats``, the cold parts of building and of
starting a span in ``_manager_build`` and ``_span_checks``.

Data flow of one span: resolve the tenant (explicit > ``tenant_scope()`` /
trusted carrier > default), take that tenant's provider from the LRU (a dict hit
in the common case), start the span on its tracer; on end the span goes to the
one shared export pipeline. Any failure inside telemetry degrades to a no-op
span, is counted, and is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, _get_from_env_or_default
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation import _global_manager
from tenantrace.instrumentation._global_manager import (
    _reset_for_tests,  # noqa: F401 - re-exported: the pytest plugin's reset, as before
    get_telemetry_manager,
    init_telemetry,
    install_manager,
    on_install_global,
)
from tenantrace.instrumentation._global_manager import (
    level_gate as level_gate,  # noqa: PLC0414 - re-exported for tenantrace.layers.decorators
)
from tenantrace.instrumentation._manager_build import (
    build_pipeline,
    new_registry,
    register_fork_hook,
    with_scrubbing,
)
from tenantrace.instrumentation._manager_stats import manager_health, manager_stats
from tenantrace.instrumentation._span_checks import (
    converted_span_name,
    refuse_span_attributes,
)
from tenantrace.instrumentation._span_checks import (
    instrumentation_suppressed as instrumentation_suppressed,  # noqa: PLC0414 - re-exported for the layers
)
from tenantrace.instrumentation.config import TelemetryConfig, TelemetryLevel
from tenantrace.instrumentation.exporters import NullSpanExporter
from tenantrace.instrumentation.providers import TenantRegistry, TenantTracerProvider
from tenantrace.instrumentation.sessions import SessionSpanScope, using_session
from tenantrace.instrumentation.spans import NOOP_SCOPE, NoOpScope, SpanScope, name_tenant
from tenantrace.instrumentation.tenants import current_tenant, with_tenant

if TYPE_CHECKING:
    from tenantrace.export.pipeline import ExportPipeline, SpanObserver, SpanTransform

__all__ = [
    "TelemetryManager",
    "get_telemetry_manager",
    "init_telemetry",
    "install_manager",
    "on_install_global",
]

_logger = logging.getLogger(__name__)

INSTRUMENTATION_SCOPE: Final = "tenantrace"


class TelemetryManager:
    """Routes every span to its tenant's provider; one export pipeline for all tenants."""

    def __init__(
        self,
        config: TelemetryConfig | None = None,
        sampler: Sampler | None = None,
        *,
        exporter: SpanExporter | None = None,
        span_transform: SpanTransform | None = None,
        metrics: SpanObserver | None = None,
    ) -> None:
        """``metrics`` (a ``RedMetrics``, say) sees every batch the pipeline exports,
        scrubbed, once per span, on the export thread; ``force_flush`` flushes it too."""
        self.config = config if config is not None else TelemetryConfig.from_env()
        if metrics is not None and not callable(getattr(metrics, "observe_batch", None)):
            raise TypeError(f"metrics must have an observe_batch(spans) method: {metrics!r}")
        self.metrics = metrics
        self.config.validate()
        self._sampler = sampler if sampler is not None else _get_from_env_or_default()
        self._level_rank = self.config.level.rank if self.config.enabled else 0
        self._default_tenant = self.config.default_tenant_id
        self._log_seen: set[str] = set()
        self._stats_lock = threading.Lock()
        self.spans_started = 0
        self.failed_initializations = 0
        self.rejected_tenants = 0
        self.extra_counters: dict[str, int] = {}
        self._exporter: SpanExporter | None = None
        self._pipeline: ExportPipeline | None = None
        # The pipeline's counters stay readable after shutdown(): the final figures.
        self._stats_pipeline: ExportPipeline | None = None
        self._registry: TenantRegistry | None = None
        # Secrets are redacted on the export thread by default; a transform the
        # caller gives runs after the scrubber, on the redacted span.
        # Imported here: the scrubber's patterns (SQL dialects, secret shapes) cost
        # milliseconds to compile, paid when a manager is made, not at import.
        from tenantrace.export.scrubbing import Scrubber

        self._span_transform = with_scrubbing(Scrubber.from_config(self.config), span_transform)
        self._explicit_exporter = exporter
        self._is_shutdown = False
        if self.config.enabled and self.config.level is not TelemetryLevel.DISABLED:
            build_pipeline(self)
        register_fork_hook(self._after_fork_in_child)

    # ------------------------------------------------------------ building

    def _after_fork_in_child(self) -> None:
        # A forked worker is a new process: new service.instance.id, fresh
        # providers (their Resources name the old instance), its own counters.
        if self._registry is not None and self._pipeline is not None:
            self._registry = new_registry(self, self._pipeline)
        self._stats_lock = threading.Lock()

    # ------------------------------------------------------------- helpers

    def warn_once(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` the first time ``kind`` happens in this manager, never again."""
        if kind in self._log_seen:
            return
        self._log_seen.add(kind)
        _logger.warning(message, *args)

    def count(self, counter: str, amount: int = 1) -> None:
        """Add to a named counter shown in ``get_stats()`` (used by the layers)."""
        with self._stats_lock:
            self.extra_counters[counter] = self.extra_counters.get(counter, 0) + amount

    def record_rejected_tenant(self) -> None:
        """Count a tenant claim from a carrier that was invalid or not trusted."""
        with self._stats_lock:
            self.rejected_tenants += 1

    @property
    def enabled(self) -> bool:
        return self._registry is not None and not self._is_shutdown

    def is_enabled_for(self, level: TelemetryLevel) -> bool:
        """True when a span of ``level`` would be recorded."""
        return self._registry is not None and 0 < level.rank <= self._level_rank

    @property
    def exporter_name(self) -> str:
        if self._explicit_exporter is not None:
            return type(self._explicit_exporter).__name__
        return self.config.effective_exporter

    @property
    def exporter(self) -> SpanExporter:
        return self._exporter or NullSpanExporter()

    def resolve_tenant(self, tenant_id: str | None = None, context: Context | None = None) -> str:
        """explicit > the context's (scope, trusted carrier or parent span) > the default."""
        if tenant_id is not None:
            return tenant_id
        value = current_tenant(context)
        return self._default_tenant if value is None else value

    def provider_for(
        self, tenant_id: str | None = None, project_name: str | None = None
    ) -> TenantTracerProvider | None:
        """The provider of a tenant (created on first use), or None when disabled."""
        registry = self._registry
        if registry is None:
            return None
        tenant = self.resolve_tenant(tenant_id)
        return registry.get(tenant, project_name)

    def tracer_for(
        self,
        tenant_id: str | None,
        project_name: str | None = None,
        scope: str = INSTRUMENTATION_SCOPE,
        context: Context | None = None,
    ) -> Tracer | None:
        """The SDK tracer of the resolved tenant; None if telemetry is off or broken.

        Raises ``InvalidTenantError`` only for an explicit, invalid ``tenant_id``.
        """
        registry = self._registry
        if registry is None:
            return None
        if tenant_id is None:
            tenant_id = current_tenant(context) or self._default_tenant
        try:
            return registry.get(tenant_id, project_name).get_tracer(scope)
        except ValueError:
            raise
        except Exception as exc:
            self.failed_initializations += 1
            self.warn_once("provider", "tenantrace: tenant provider failed (%r); no-op spans", exc)
            return None

    # ---------------------------------------------------------------- spans

    def start_span(
        self,
        name: str,
        tenant_id: str | None = None,
        project_name: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        context: Context | None = None,
        links: Sequence[Link] | None = None,
        scope: str = INSTRUMENTATION_SCOPE,
    ) -> Span:
        """Start (not activate) a span for the tenant; ``INVALID_SPAN`` when off or failing."""
        name, attributes = self._checked(name, attributes)
        parent = otel_context.get_current() if context is None else context
        tenant, parent = self._tenant_and_parent(tenant_id, parent)
        tracer = self.tracer_for(tenant, project_name, scope, parent)
        if tracer is None:
            return INVALID_SPAN
        try:
            span = tracer.start_span(
                name, context=parent, kind=kind, attributes=attributes, links=links
            )
        except Exception as exc:
            self.warn_once("start", "tenantrace: could not start span (%r)", exc)
            return INVALID_SPAN
        name_tenant(span, tenant)
        self.spans_started += 1
        return span

    def _checked(
        self, name: object, attributes: object
    ) -> tuple[str, Mapping[str, AttributeValue] | None]:
        """Never raise into user code over a name or attributes of the wrong type: a
        name becomes its ``str()``, attributes that are not a mapping are left out."""
        if not isinstance(name, str):
            name = converted_span_name(self, name)
        if (
            attributes is not None
            and type(attributes) is not dict
            and not isinstance(attributes, Mapping)
        ):
            refuse_span_attributes(self, attributes)
            attributes = None
        return name, attributes

    def _tenant_and_parent(self, tenant_id: str | None, parent: Context) -> tuple[str, Context]:
        """The tenant of a span starting under ``parent``, and the context to start it in.

        An explicit tenant other than the parent's goes into the context before
        the span starts: a sampler reads it with ``current_tenant(parent_context)``.
        """
        found = current_tenant(parent)
        if tenant_id is None:
            if found is not None:
                return found, parent
            tenant_id = self._default_tenant
        if found != tenant_id:
            parent = with_tenant(tenant_id, parent)
        return tenant_id, parent

    def span(
        self,
        name: str,
        tenant_id: str | None = None,
        project_name: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        level: TelemetryLevel = TelemetryLevel.BASIC,
        record_exception: bool = True,
        context: Context | None = None,
        links: Sequence[Link] | None = None,
    ) -> SpanScope | NoOpScope:
        """A context manager (sync or async) yielding a current span of the tenant.

        Sets ``tenant.id`` on the span (unless ``attributes`` name one), records
        an exception once, sets ERROR status and re-raises. A level above the
        configured one, disabled telemetry or an internal failure yield a no-op
        span instead.
        """
        if not 0 < level.rank <= self._level_rank or self._registry is None:
            return NOOP_SCOPE
        name, attributes = self._checked(name, attributes)
        # An explicit tenant does not depend on the context: resolve (and so
        # validate) it now, so a bad id raises where the caller passed it.
        tracer = None
        if tenant_id is not None:
            tracer = self.tracer_for(tenant_id, project_name, INSTRUMENTATION_SCOPE, context)
            if tracer is None:
                return NOOP_SCOPE

        return SpanScope(
            TelemetryManager._begin,  # the function: a bound method would be one more object
            (self, name, tenant_id, project_name, attributes, kind, context, links, tracer),
            record_exception=record_exception,
        )

    def _begin(  # noqa: PLR0917 - span()'s arguments, as SpanScope holds them
        self,
        name: str,
        tenant_id: str | None,
        project_name: str | None,
        attributes: Mapping[str, AttributeValue] | None,
        kind: SpanKind,
        context: Context | None,
        links: Sequence[Link] | None,
        tracer: Tracer | None,
    ) -> tuple[Span, Context] | None:
        """Start the span of a ``span()`` scope being entered; None for a no-op."""
        current = otel_context.get_current()
        tenant, parent = self._tenant_and_parent(tenant_id, current if context is None else context)
        active = tracer or self.tracer_for(tenant, project_name, INSTRUMENTATION_SCOPE, parent)
        if active is None:
            return None
        try:
            span = active.start_span(name, parent, kind, attributes, links)
        except Exception as exc:
            self.warn_once("start", "tenantrace: could not start span (%r)", exc)
            return None
        name_tenant(span, tenant)
        self.spans_started += 1  # counted once started, so started - ended = open
        if context is None:
            return span, parent
        # As start_as_current_span(context=...): the span becomes current in the
        # caller's context (with the span's tenant), not in the one it was given.
        if current_tenant(current) != tenant:
            current = with_tenant(tenant, current)
        return span, current

    def session_span(
        self,
        name: str,
        tenant_id: str | None = None,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        project_name: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        level: TelemetryLevel = TelemetryLevel.BASIC,
    ) -> SpanScope | NoOpScope | SessionSpanScope:
        """``span()`` inside ``using_session(session_id, user_id)``.

        The span and its children carry OpenInference ``session.id`` (the
        tenant's, ``"<tenant>:<session_id>"``) and ``user.id``; spans sharing a
        session are grouped in Phoenix's Sessions view.
        """
        scope = self.span(name, tenant_id, project_name, attributes, level=level)
        if session_id is None or scope is NOOP_SCOPE:
            return scope
        return SessionSpanScope(using_session(session_id, user_id), scope)

    def get_tracer(self, name: str, version: str | None = None) -> trace_api.Tracer:
        """A tracer that routes each span to the current tenant's provider."""
        from tenantrace.instrumentation.routing import RoutingTracer

        return RoutingTracer(lambda: self, name, version)

    # ------------------------------------------------------------ lifecycle

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued (and the ``metrics``' points); False if it could
        not within ``timeout_millis``."""
        pipeline = self._pipeline
        if pipeline is None:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        try:
            flushed = pipeline.force_flush(timeout_millis)
            return self._flush_metrics(deadline) and flushed
        except Exception as exc:
            self.warn_once("flush", "tenantrace: force_flush failed (%r)", exc)
            return False

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        """Flush and stop the pipeline (and push the ``metrics``' last points); later
        spans are no-ops. The ``metrics`` object itself is yours to shut down."""
        self._is_shutdown = True
        pipeline, self._pipeline, self._registry = self._pipeline, None, None
        if self is _global_manager._manager:
            # Closes every gate: decorated calls go straight through.
            _global_manager._publish_gates(self)
        if pipeline is None:
            return True
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        try:
            done = pipeline.shutdown(timeout_millis)
            # The spans drained at shutdown were observed: their points go out too.
            return self._flush_metrics(deadline) and done
        except Exception as exc:
            self.warn_once("shutdown", "tenantrace: shutdown failed (%r)", exc)
            return False

    def _flush_metrics(self, deadline: float) -> bool:
        """Push the ``metrics``' points within what is left of the caller's timeout."""
        flush = getattr(self.metrics, "force_flush", None)
        if flush is None:
            return True
        left_millis = int((deadline - time.monotonic()) * 1000)
        return left_millis > 0 and bool(flush(left_millis))

    # ---------------------------------------------------------------- stats

    def get_stats(self) -> dict[str, Any]:
        """Counters of the registry and the pipeline (a snapshot, safe to serialise).

        After ``shutdown()`` the pipeline's counters keep their final values
        (``enabled`` is False, ``export_threads`` 0).
        """
        return manager_stats(self)

    def health(self, timeout_millis: int = 5000) -> dict[str, Any]:
        """The seed's health check: a test span flushed through the real pipeline.

        ``status`` is ``disabled``, ``healthy``, ``degraded`` (the test span
        was not exported: its export failed, the circuit breaker skipped it, or
        it was not exported within ``timeout_millis``) or ``unhealthy``
        (telemetry could not be initialised, is shut down, or the export thread
        is dead). ``error`` says which; ``stats`` is ``get_stats()`` taken
        after the check, so it counts the test span's outcome (except an export
        still under way when the timeout ran out: it is counted when it ends).
        """
        return manager_health(self, timeout_millis)
