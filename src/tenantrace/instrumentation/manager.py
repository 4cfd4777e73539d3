"""``TelemetryManager``: the tenant-aware tracer registry and its process-wide instance.

Data flow of one span: resolve the tenant (explicit > ``tenant_scope()`` /
trusted carrier > default), take that tenant's provider from the LRU (a dict hit
in the common case), start the span on its tracer; on end the span goes to the
one shared export pipeline. Any failure inside telemetry degrades to a no-op
span, is counted, and is logged once.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, _get_from_env_or_default
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from tenantrace.instrumentation.config import TelemetryConfig, TelemetryLevel
from tenantrace.instrumentation.exporters import NullSpanExporter, build_exporter
from tenantrace.instrumentation.providers import TenantRegistry, TenantTracerProvider
from tenantrace.instrumentation.sessions import SessionSpanScope, using_session
from tenantrace.instrumentation.spans import NOOP_SCOPE, NoOpScope, SpanScope, name_tenant
from tenantrace.instrumentation.tenants import current_tenant, with_tenant

if TYPE_CHECKING:
    from tenantrace.export.pipeline import ExportPipeline, SpanTransform

__all__ = [
    "TelemetryManager",
    "get_telemetry_manager",
    "init_telemetry",
    "install_manager",
    "on_install_global",
]

_logger = logging.getLogger(__name__)

INSTRUMENTATION_SCOPE: Final = "tenantrace"
# The keys opentelemetry-instrumentation's suppress_instrumentation() sets.
_SUPPRESS_KEYS: Final = (
    getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation"),
    "suppress_instrumentation",
)


def _with_scrubbing(
    scrubber: SpanTransform | None, transform: SpanTransform | None
) -> SpanTransform | None:
    if scrubber is None or transform is None:
        return scrubber or transform

    def scrub_then_transform(span: ReadableSpan) -> ReadableSpan:
        return transform(scrubber(span))

    return scrub_then_transform


def instrumentation_suppressed(ctx: Context | None = None) -> bool:
    """True inside ``opentelemetry.instrumentation.utils.suppress_instrumentation()``."""
    current = otel_context.get_current() if ctx is None else ctx
    return bool(current.get(_SUPPRESS_KEYS[0]) or current.get(_SUPPRESS_KEYS[1]))


class TelemetryManager:
    """Routes every span to its tenant's provider; one export pipeline for all tenants."""

    def __init__(
        self,
        config: TelemetryConfig | None = None,
        sampler: Sampler | None = None,
        *,
        exporter: SpanExporter | None = None,
        span_transform: SpanTransform | None = None,
    ) -> None:
        self.config = config if config is not None else TelemetryConfig.from_env()
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

        self._span_transform = _with_scrubbing(Scrubber.from_config(self.config), span_transform)
        self._explicit_exporter = exporter
        self._is_shutdown = False
        if self.config.enabled and self.config.level is not TelemetryLevel.DISABLED:
            self._build_pipeline()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)

            def _after_fork() -> None:
                method = ref()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=_after_fork)

    # ------------------------------------------------------------ building

    def _build_pipeline(self) -> None:
        try:
            exporter = self._explicit_exporter or build_exporter(self.config)
            self._exporter = exporter
            # Imported when a manager builds its pipeline: import tenantrace stays light.
            from tenantrace.export.pipeline import ExportPipeline

            self._pipeline = ExportPipeline(
                exporter, self.config.batch_config, transform=self._span_transform
            )
            self._stats_pipeline = self._pipeline
            self._registry = TenantRegistry(
                self.config, self._pipeline, self._sampler, self._base_resource()
            )
        except Exception as exc:
            self.failed_initializations += 1
            self._exporter, self._pipeline, self._registry = None, None, None
            self.warn_once(
                "init",
                "tenantrace: telemetry could not be initialised (%r); spans are no-ops",
                exc,
            )

    def _base_resource(self) -> Resource:
        attributes: dict[str, AttributeValue] = {
            "service.name": self.config.service_name,
            "service.instance.id": str(uuid.uuid4()),
            "deployment.environment": self.config.environment,
            "deployment.environment.name": self.config.environment,
        }
        attributes.update(self.config.resource_attributes)
        # Resource.create adds the SDK attributes and OTEL_RESOURCE_ATTRIBUTES;
        # the explicit config wins over the environment.
        return Resource.create({}).merge(Resource(attributes))

    def _after_fork_in_child(self) -> None:
        # A forked worker is a new process: new service.instance.id, fresh
        # providers (their Resources name the old instance), its own counters.
        if self._registry is not None and self._pipeline is not None:
            self._registry = TenantRegistry(
                self.config, self._pipeline, self._sampler, self._base_resource()
            )
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

    def _span_name(self, name: object) -> str:
        """A span name that is not a string: its ``str()``, counted; never raises."""
        self.count("span_names_converted")
        try:
            text = str(name)
        except Exception:  # a __str__ that raises, an int past the digit limit
            text = f"<unprintable {type(name).__name__}>"
        self.warn_once(
            "span-name",
            "tenantrace: a span name of type %s was converted to a string; "
            "further conversions are only counted (span_names_converted)",
            type(name).__qualname__,
        )
        return text

    def _span_attributes(self, attributes: object) -> None:
        """Attributes that are not a mapping: the span starts without them, counted."""
        self.count("span_attributes_refused")
        self.warn_once(
            "span-attributes",
            "tenantrace: span attributes of type %s are not a mapping and were left out; "
            "further ones are only counted (span_attributes_refused)",
            type(attributes).__qualname__,
        )

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
            name = self._span_name(name)
        if (
            attributes is not None
            and type(attributes) is not dict
            and not isinstance(attributes, Mapping)
        ):
            self._span_attributes(attributes)
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
        """Export everything queued; False if it could not within ``timeout_millis``."""
        pipeline = self._pipeline
        if pipeline is None:
            return True
        try:
            return pipeline.force_flush(timeout_millis)
        except Exception as exc:
            self.warn_once("flush", "tenantrace: force_flush failed (%r)", exc)
            return False

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        """Flush and stop the pipeline; later spans are no-ops."""
        self._is_shutdown = True
        pipeline, self._pipeline, self._registry = self._pipeline, None, None
        if self is _manager:
            _publish_gates(self)  # closes every gate: decorated calls go straight through
        if pipeline is None:
            return True
        try:
            return pipeline.shutdown(timeout_millis)
        except Exception as exc:
            self.warn_once("shutdown", "tenantrace: shutdown failed (%r)", exc)
            return False

    # ---------------------------------------------------------------- stats

    def get_stats(self) -> dict[str, Any]:
        """Counters of the registry and the pipeline (a snapshot, safe to serialise).

        After ``shutdown()`` the pipeline's counters keep their final values
        (``enabled`` is False, ``export_threads`` 0).
        """
        registry = self._registry
        pipeline = self._pipeline if self._pipeline is not None else self._stats_pipeline
        pstats = pipeline.stats if pipeline is not None else None
        stats: dict[str, Any] = {
            "enabled": self.enabled,
            "level": self.config.level.value,
            "exporter": self.exporter_name,
            "sync_export": self.config.batch_config.use_sync_export,
            "cache_hits": registry.hits if registry else 0,
            "cache_misses": registry.misses if registry else 0,
            "cached_tenants": len(registry) if registry else 0,
            "max_cached_tenants": self.config.max_cached_tenants,
            "evictions": registry.evictions if registry else 0,
            "providers_created": registry.providers_created if registry else 0,
            "failed_initializations": self.failed_initializations,
            "rejected_tenants": self.rejected_tenants,
            "spans_started": self.spans_started,
            "spans_ended": pstats.spans_ended if pstats else 0,
            "exported_spans": pstats.exported_spans if pstats else 0,
            "dropped_spans": pstats.dropped_spans if pstats else 0,
            "dropped_spans_by_tenant": dict(pstats.dropped_by_tenant) if pstats else {},
            "export_failures": pstats.export_failures if pstats else 0,
            "failed_export_spans": pstats.failed_spans if pstats else 0,
            "repaired_spans": pstats.repaired_spans if pstats else 0,
            "unexportable_spans": pstats.unexportable_spans if pstats else 0,
            "transform_failures": pstats.transform_failures if pstats else 0,
            "skipped_spans": pstats.skipped_spans if pstats else 0,
            "export_paused": pipeline.breaker.is_open if pipeline else False,
            "queued_spans": pipeline.queued if pipeline else 0,
            "export_threads": 0
            if self._pipeline is None or self.config.batch_config.use_sync_export
            else 1,
        }
        stats.update(_transport_stats(self._exporter))
        with self._stats_lock:
            stats.update(self.extra_counters)
        return stats

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
        base = {
            "otlp_endpoint": self.config.otlp_endpoint,
            "exporter": self.config.effective_exporter,
        }
        if not self.config.enabled or self.config.level is TelemetryLevel.DISABLED:
            return {"status": "disabled", **base, "stats": self.get_stats()}
        pipeline = self._pipeline
        error = None
        if self._is_shutdown:
            error = "telemetry is shut down"
        elif self._registry is None or pipeline is None:
            error = "telemetry could not be initialised"
        elif not pipeline.worker_alive:
            error = "export thread is not running"
        if error is not None or pipeline is None:
            return {"status": "unhealthy", **base, "error": error, "stats": self.get_stats()}
        error = self._check_export(pipeline, timeout_millis)
        report: dict[str, Any] = {"status": "healthy" if error is None else "degraded", **base}
        if error is not None:
            report["error"] = error
        report["stats"] = self.get_stats()
        return report

    def _check_export(self, pipeline: ExportPipeline, timeout_millis: int) -> str | None:
        """Send one test span (tenant ``system``); None if it was exported, else why not."""
        stats = pipeline.stats
        failures, skipped = stats.export_failures, stats.skipped_spans
        dropped = stats.dropped_by_tenant.get("system", 0)
        with self.span("health_check", tenant_id="system"):
            pass
        # Waits for the test span's export without consuming force_flush()'s report
        # (in sync mode the span was exported, or skipped, as it ended).
        in_time = pipeline.drain(timeout_millis)
        if stats.skipped_spans != skipped:
            return (
                "exports are paused after a failed export (circuit breaker, "
                f"{pipeline.breaker.interval_s:g} s); the test span was skipped"
            )
        if stats.export_failures != failures:
            return "the export of the test span failed"
        if stats.dropped_by_tenant.get("system", 0) != dropped:
            return "the test span was dropped"
        if not in_time:
            return f"the test span was not exported within {timeout_millis} ms"
        return None


def _transport_stats(exporter: SpanExporter | None) -> dict[str, int]:
    """The OTLP transport's counters (requests, retries, bytes...), when it keeps any."""
    inner = getattr(exporter, "wrapped", exporter)  # the per-process wrapper's exporter
    stats = getattr(inner, "stats", None)
    if not callable(stats):
        return {}
    try:
        found = stats()
    except Exception:  # a counter must never break get_stats()
        return {}
    return dict(found) if isinstance(found, dict) else {}


_manager: TelemetryManager | None = None
_manager_lock = threading.Lock()

# One gate per level for the decorators: a list whose length says whether spans
# of that level are on for the process-wide manager. wrapt's ``enabled=`` takes
# the list's C ``__len__`` and decides in C, so a gated-off decorated call costs
# tens of nanoseconds. Gates start open: the first call creates the manager.
_LEVEL_GATES: Final[dict[TelemetryLevel, list[int]]] = {level: [1] for level in TelemetryLevel}
_LEVEL_GATES[TelemetryLevel.DISABLED].clear()


def level_gate(level: TelemetryLevel) -> Callable[[], int]:
    """A C-level callable, truthy while spans of ``level`` are on (for wrapt's ``enabled=``)."""
    return _LEVEL_GATES[level].__len__


def _publish_gates(manager: TelemetryManager | None) -> None:
    for level, gate in _LEVEL_GATES.items():
        if level is TelemetryLevel.DISABLED:
            continue
        gate[:] = [1] if manager is None or manager.is_enabled_for(level) else []


def get_telemetry_manager() -> TelemetryManager:
    """The process-wide manager, created on first use from the environment."""
    manager = _manager
    if manager is not None:
        return manager
    return _create_manager(None, None)


def _create_manager(config: TelemetryConfig | None, sampler: Sampler | None) -> TelemetryManager:
    global _manager  # noqa: PLW0603 - the one process-wide manager, swapped under a lock
    with _manager_lock:
        if _manager is not None and config is None and sampler is None:
            return _manager
        old = _manager
        _manager = TelemetryManager(config, sampler)
        _publish_gates(_manager)
    if old is not None:
        old.shutdown(timeout_millis=5000)
    return _manager


def install_manager(manager: TelemetryManager | None) -> TelemetryManager | None:
    """Make ``manager`` the process-wide one (no shutdown of the old); return the old one.

    For test harnesses (``tenantrace.testing``) and applications that build
    their own ``TelemetryManager`` and want decorators to use it.
    """
    global _manager
    with _manager_lock:
        old, _manager = _manager, manager
        _publish_gates(manager)
    return old


# What init_telemetry(install_global=True) installs besides the routing provider,
# as "module:function" names: the tenant-aware global propagator lives in
# tenantrace.propagation, a layer above this one, which the package registers.
_GLOBAL_INSTALLERS: list[str] = []


def on_install_global(installer: str) -> None:
    """Call ``"module:function"`` whenever ``init_telemetry(install_global=True)`` runs."""
    if installer not in _GLOBAL_INSTALLERS:
        _GLOBAL_INSTALLERS.append(installer)


def _run_global_installers() -> None:
    for installer in tuple(_GLOBAL_INSTALLERS):
        module, _, function = installer.partition(":")
        try:
            getattr(importlib.import_module(module), function)()
        except Exception as exc:
            _logger.warning("tenantrace: %s failed (%r)", installer, exc)


def init_telemetry(
    config: TelemetryConfig | None = None,
    sampler: Sampler | None = None,
    *,
    install_global: bool = True,
) -> TelemetryManager:
    """(Re)create the process-wide manager and route global tracers through it.

    The previous manager, if any, is flushed and shut down. With
    ``install_global`` a ``TenantRoutingTracerProvider`` becomes the global
    OpenTelemetry provider (unless another SDK provider is already set), so
    auto-instrumented libraries are routed by tenant too, and the tenant-aware
    propagator becomes the global propagator (their extract and inject apply
    the trust and egress policies).
    """
    manager = _create_manager(config or TelemetryConfig.from_env(), sampler)
    if install_global:
        from tenantrace.instrumentation.routing import install_routing_provider

        install_routing_provider()
        _run_global_installers()
    return manager


def _reset_for_tests() -> None:
    """Shut down and forget the process-wide manager (used by the pytest plugin)."""
    global _manager
    with _manager_lock:
        old, _manager = _manager, None
        _publish_gates(None)
    if old is not None:
        old.shutdown(timeout_millis=2000)
