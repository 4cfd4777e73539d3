"""One lazily created provider per (tenant, project), held in an LRU.

A ``TenantTracerProvider`` is deliberately light: a Resource, SDK ``Tracer``
objects that share the sampler, id generator and span limits, and a
``TenantSpanProcessor`` that forwards ended spans to the shared pipeline. The
SDK's own ``TracerProvider`` registers an ``atexit`` and an ``at_fork`` hook per
instance that can never be removed, which would grow without bound as tenants
churn through the LRU; this provider registers nothing.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from typing import Final

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, Tracer
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.util.types import Attributes

from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.pipeline import ExportPipeline, TenantSpanProcessor
from tenantrace.instrumentation.tenants import TENANT_ID_ATTRIBUTE

__all__ = ["ProviderKey", "TenantRegistry", "TenantTracerProvider"]

_logger = logging.getLogger(__name__)

PROJECT_NAME_ATTRIBUTE: Final = "openinference.project.name"
# Instrumentation scopes per provider are bounded: auto-instrumentation uses a
# handful, and a caller minting scope names per request must not grow memory.
MAX_SCOPES_PER_PROVIDER: Final = 256

ProviderKey = tuple[str, str | None]


class TenantTracerProvider(trace_api.TracerProvider):
    """The tracer provider of one tenant (and optional project/service)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        project_name: str,
        resource: Resource,
        processor: TenantSpanProcessor,
        sampler: Sampler,
        span_limits: SpanLimits,
        id_generator: IdGenerator,
    ) -> None:
        self.tenant_id = tenant_id
        self.project_name = project_name
        self.resource = resource
        self._processor = processor
        self._sampler = sampler
        self._span_limits = span_limits
        self._id_generator = id_generator
        self._tracers: dict[str, Tracer] = {}
        self._lock = threading.Lock()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> Tracer:
        if not instrumenting_library_version and not schema_url and not attributes:
            tracer = self._tracers.get(instrumenting_module_name)
            if tracer is not None:
                return tracer
            return self._new_tracer(instrumenting_module_name, "", None, None, cache=True)
        return self._new_tracer(
            instrumenting_module_name,
            instrumenting_library_version or "",
            schema_url,
            attributes,
            cache=False,
        )

    def _new_tracer(
        self,
        name: str,
        version: str,
        schema_url: str | None,
        attributes: Attributes | None,
        *,
        cache: bool,
    ) -> Tracer:
        with self._lock:
            if cache and name in self._tracers:
                return self._tracers[name]
            with warnings.catch_warnings():
                # The SDK's Tracer still takes the deprecated InstrumentationInfo.
                warnings.simplefilter("ignore", DeprecationWarning)
                info = InstrumentationInfo(name, version, schema_url)
            tracer = Tracer(
                self._sampler,
                self.resource,
                self._processor,  # type: ignore[arg-type]  # any SpanProcessor works here
                self._id_generator,
                info,
                self._span_limits,
                InstrumentationScope(name, version, schema_url, attributes),
            )
            if cache and len(self._tracers) < MAX_SCOPES_PER_PROVIDER:
                self._tracers[name] = tracer
            return tracer


class TenantRegistry:
    """The LRU of tenant providers. Hits are lock-free dict reads; misses build once."""

    def __init__(
        self,
        config: TelemetryConfig,
        pipeline: ExportPipeline,
        sampler: Sampler,
        base_resource: Resource,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        self._sampler = sampler
        self._base_resource = base_resource
        self._span_limits = SpanLimits(
            max_span_attributes=config.max_span_attributes,
            max_events=config.max_span_events,
            max_links=config.max_span_links,
            max_event_attributes=config.max_span_attributes,
            max_link_attributes=config.max_span_attributes,
            max_attribute_length=config.max_attribute_length,
        )
        self._id_generator = RandomIdGenerator()
        self._capacity = config.max_cached_tenants
        self._providers: OrderedDict[ProviderKey, TenantTracerProvider] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.providers_created = 0

    def __len__(self) -> int:
        return len(self._providers)

    def get(self, tenant_id: str, project: str | None) -> TenantTracerProvider:
        """The provider of ``(tenant_id, project)``; raises ``ValueError`` on a bad id."""
        key = (tenant_id, project)
        provider = self._providers.get(key)
        if provider is not None:
            self.hits += 1
            try:  # noqa: SIM105 - a hot path: try costs nothing, suppress() ~300 ns
                self._providers.move_to_end(key)
            except KeyError:
                pass  # evicted by another thread between the two calls
            return provider
        return self._create(key)

    def _create(self, key: ProviderKey) -> TenantTracerProvider:
        tenant_id, project = key
        # Validation happens only here, on a miss: every cached key is valid.
        project_name = self._config.get_project_name(tenant_id, project)
        with self._lock:
            provider = self._providers.get(key)
            if provider is not None:  # another thread built it while we waited
                self.hits += 1
                return provider
            self.misses += 1
            provider = TenantTracerProvider(
                tenant_id=tenant_id,
                project_name=project_name,
                resource=self._resource_for(tenant_id, project_name),
                processor=self._pipeline.processor_for(tenant_id),
                sampler=self._sampler,
                span_limits=self._span_limits,
                id_generator=self._id_generator,
            )
            self._providers[key] = provider
            self.providers_created += 1
            while len(self._providers) > self._capacity:
                # Nothing is queued inside a provider, so eviction loses no span;
                # spans still open on an evicted provider end into the pipeline.
                self._providers.popitem(last=False)
                self.evictions += 1
            return provider

    def _resource_for(self, tenant_id: str, project_name: str) -> Resource:
        return self._base_resource.merge(
            Resource(
                {
                    PROJECT_NAME_ATTRIBUTE: project_name,
                    TENANT_ID_ATTRIBUTE: tenant_id,
                }
            )
        )

    def tenants(self) -> list[ProviderKey]:
        return list(self._providers)
