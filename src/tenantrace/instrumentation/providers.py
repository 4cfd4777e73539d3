"""One lazily created provider per (tenant, project), held in an LRU.

A ``TenantTracerProvider`` is deliberately light: a Resource, SDK ``Tracer``
objects that share the sampler, id generator and span limits, and a
``TenantSpanProcessor`` (one for all) that forwards ended spans to the shared pipeline. The
SDK's own ``TracerProvider`` registers an ``atexit`` and an ``at_fork`` hook per
instance that can never be removed, which would grow without bound as tenants
churn through the LRU; this provider registers nothing.

Every provider's tracer is a ``TenantTracer`` (see ``tracer.py``): one trace, one
tenant, and the span that costs less than the SDK's.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.util.types import Attributes

from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.sessions import SESSION_ID, session_attributes, tenant_session_id
from tenantrace.instrumentation.tenants import TENANT_ID_ATTRIBUTE, span_tenant
from tenantrace.instrumentation.tracer import BOUNDARY_LINK_ATTRIBUTES, TenantTracer

if TYPE_CHECKING:
    from tenantrace.export.pipeline import ExportPipeline

__all__ = [
    "BOUNDARY_LINK_ATTRIBUTES",
    "ProviderKey",
    "TenantRegistry",
    "TenantResource",
    "TenantTracer",
    "TenantTracerProvider",
]

_logger = logging.getLogger(__name__)

PROJECT_NAME_ATTRIBUTE: Final = "openinference.project.name"
# Instrumentation scopes per provider are bounded: auto-instrumentation uses a
# handful, and a caller minting scope names per request must not grow memory.
MAX_SCOPES_PER_PROVIDER: Final = 256
# Evicted providers kept beyond the live ones, with their Resources and tracers
# (about 2 KB each: 34 MB at most).
MAX_EVICTED_PROVIDERS: Final = 16_384

ProviderKey = tuple[str, str | None]


class TenantSpanProcessor(SpanProcessor):
    """The span processor of every tenant's provider: hands ended spans to the pipeline.

    One for all tenants: a span knows its tenant (``TenantSpan.tenant_id``, or
    its provider's ``TenantResource`` for a span the SDK made), so nothing is
    kept per tenant here. Every object a cached tenant holds is one more for the
    garbage collector to walk on each full collection.
    """

    __slots__ = ("_submit",)

    def __init__(self, pipeline: ExportPipeline) -> None:
        self._submit = pipeline.submit

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        session = session_attributes(parent_context)
        if session is None:
            return
        tenant_id = span_tenant(span) or ""
        for key, value in session.items():
            # Phoenix's sessions are global: the tenant's own id keeps them apart.
            exported = tenant_session_id(tenant_id, value) if key == SESSION_ID else value
            span.set_attribute(key, exported)

    def on_end(self, span: ReadableSpan) -> None:
        # Every span of a tenant's tracer has one (TenantSpan, or its TenantResource).
        self._submit(span, span_tenant(span) or "")

    def shutdown(self) -> None:
        # The pipeline is shared: a provider going away must not stop it.
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class TenantResource(Resource):
    """A provider's Resource that knows its tenant without a lookup (see ``span_tenant``).

    It also keeps what the export path derives from it once (its encoded OTLP
    fields, its size), so no cache of the export side has to hold every tenant.
    """

    otlp_entry: object = None
    otlp_size: int | None = None
    otlp_tenant_field: bytes | None = None

    def __init__(self, resource: Resource, tenant_id: str, project_name: str) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        # Validated by the SDK's constructor above; kept read-only without the bounded
        # mapping's lock, one object fewer per cached tenant for the garbage collector.
        self._attributes = MappingProxyType(dict(self._attributes))  # type: ignore[assignment]
        self.tenant_id = tenant_id
        self.project_name = project_name

    def __deepcopy__(self, memo: dict[int, object]) -> TenantResource:
        return self  # immutable, as a Resource is: a deep copy is itself


# The scopes of tracers without scope attributes, shared by every tenant's
# provider: a tenant's provider is rebuilt after LRU eviction, and the export
# path caches a scope's encoded bytes by identity. Bounded like a provider's scopes.
_SCOPES: dict[tuple[str, str, str | None], tuple[InstrumentationInfo, InstrumentationScope]] = {}
_SCOPES_LOCK = threading.Lock()
# Tracers are made once per provider and scope: one lock for all providers
# (a lock per provider is one more object per cached tenant).
_TRACERS_LOCK = threading.Lock()


def _scope(
    name: str, version: str, schema_url: str | None, attributes: Attributes | None
) -> tuple[InstrumentationInfo, InstrumentationScope]:
    key = (name, version, schema_url)
    found = _SCOPES.get(key) if not attributes else None
    if found is not None:
        return found
    with warnings.catch_warnings():
        # The SDK's Tracer still takes the deprecated InstrumentationInfo.
        warnings.simplefilter("ignore", DeprecationWarning)
        made = (
            InstrumentationInfo(name, version, schema_url),
            InstrumentationScope(name, version, schema_url, attributes),
        )
    if not attributes:
        with _SCOPES_LOCK:
            if len(_SCOPES) >= MAX_SCOPES_PER_PROVIDER:
                _SCOPES.clear()  # scope names minted per request: start over, stay bounded
            made = _SCOPES.setdefault(key, made)
    return made


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
        split_traces: bool = True,
    ) -> None:
        self.tenant_id = tenant_id
        self._split_traces = split_traces
        self.project_name = project_name
        self.resource = resource
        self._processor = processor
        self._sampler = sampler
        self._span_limits = span_limits
        self._id_generator = id_generator
        # The first scope's tracer apart, the others in a dict made when needed: most
        # tenants use one scope, and a dict per cached tenant is one more object
        # for each full collection of the garbage collector.
        self._first_name: str | None = None
        self._first: TenantTracer | None = None
        self._tracers: dict[str, TenantTracer] | None = None

    def _cached(self, name: str) -> TenantTracer | None:
        if name == self._first_name:
            return self._first
        return self._tracers.get(name) if self._tracers is not None else None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> TenantTracer:
        if not instrumenting_library_version and not schema_url and not attributes:
            tracer = self._cached(instrumenting_module_name)
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
    ) -> TenantTracer:
        with _TRACERS_LOCK:
            found = self._cached(name) if cache else None
            if found is not None:
                return found
            info, scope = _scope(name, version, schema_url, attributes)
            tracer = TenantTracer(
                self._sampler,
                self.resource,
                self._processor,
                self._id_generator,
                info,
                self._span_limits,
                scope,
            )
            tracer.tenant_id = self.tenant_id
            tracer.split_traces = self._split_traces
            if not cache:
                return tracer
            if self._first is None:
                self._first_name, self._first = name, tracer
            elif self._tracers is None:
                self._tracers = {name: tracer}
            elif len(self._tracers) < MAX_SCOPES_PER_PROVIDER:
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
        self._processor = TenantSpanProcessor(pipeline)
        self._capacity = config.max_cached_tenants
        self._providers: OrderedDict[ProviderKey, TenantTracerProvider] = OrderedDict()
        # Providers evicted from the LRU, kept (bounded, far more than the live ones)
        # with all they need: the Resource, merged and validated, and their tracers. A
        # tenant's return after eviction then costs about a hit, and allocates nothing
        # (a rebuild per span would cost as much again, half of it in the garbage
        # collector walking what the rebuilds allocate).
        self._evicted: OrderedDict[ProviderKey, TenantTracerProvider] = OrderedDict()
        self._max_evicted = max(MAX_EVICTED_PROVIDERS, self._capacity)
        self._split_traces = config.cross_tenant_traces == "split"
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
        with self._lock:
            found = self._take_back(key)
        if found is not None:
            return found
        # A new tenant. Validated here, when the key is new (every cached key is valid),
        # outside the lock: a bad id raises ValueError.
        project_name = self._config.get_project_name(*key)
        with self._lock:
            found = self._take_back(key)  # another thread built it while we waited
            if found is not None:
                return found
            self.misses += 1
            provider = self._build(key[0], project_name)
            self._providers[key] = provider
            self._evict_past_capacity()
            return provider

    def _take_back(self, key: ProviderKey) -> TenantTracerProvider | None:
        """Lock held: the provider of ``key`` if it is live (a hit) or evicted (brought
        back: a miss, one pop and one insert; 10,000 tenants round-robin take this path
        every span). Under the lock a provider is never in neither dict, for another
        thread to build anew."""
        provider = self._providers.get(key)
        if provider is not None:
            self.hits += 1
            return provider
        provider = self._evicted.pop(key, None)
        if provider is not None:
            self.misses += 1
            self._providers[key] = provider
            self._evict_past_capacity()
        return provider

    def _evict_past_capacity(self) -> None:
        """Lock held: the least recently used providers past capacity to ``_evicted``.

        Nothing is queued inside a provider, so eviction loses no span; spans still
        open on an evicted provider end into the pipeline (see ``_evicted``)."""
        providers, evicted = self._providers, self._evicted
        while len(providers) > self._capacity:
            evicted_key, provider = providers.popitem(last=False)
            self.evictions += 1
            evicted[evicted_key] = provider
            if len(evicted) > self._max_evicted:
                evicted.popitem(last=False)

    def _build(self, tenant_id: str, project_name: str) -> TenantTracerProvider:
        self.providers_created += 1
        return TenantTracerProvider(
            tenant_id=tenant_id,
            project_name=project_name,
            resource=self._resource_for(tenant_id, project_name),
            processor=self._processor,
            sampler=self._sampler,
            span_limits=self._span_limits,
            id_generator=self._id_generator,
            split_traces=self._split_traces,
        )

    def _resource_for(self, tenant_id: str, project_name: str) -> TenantResource:
        merged = self._base_resource.merge(
            Resource(
                {
                    PROJECT_NAME_ATTRIBUTE: project_name,
                    TENANT_ID_ATTRIBUTE: tenant_id,
                }
            )
        )
        return TenantResource(merged, tenant_id, project_name)

    def tenants(self) -> list[ProviderKey]:
        return list(self._providers)
