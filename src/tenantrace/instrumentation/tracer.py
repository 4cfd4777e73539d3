"""The tracer of one tenant, and the span it records.

One trace, one tenant. Backends file traces per project (Phoenix stores a
whole trace in the project of its first span), so a trace holding two tenants'
spans shows one tenant's spans in the other's project. A ``TenantTracer``
therefore starts a span whose parent belongs to another tenant (or to no
tenant: a remote parent whose claim was not trusted) as the root of a new
trace, linked to that parent. Every span start goes through it, whoever calls:
the manager, the routing tracer of auto-instrumented libraries, or code holding
a provider's tracer.

Why not the SDK's span as it is: on a service, most of a span's CPU is spent
making it, not in the work it measures. The SDK's ``Tracer.start_span`` asks the
sampler for a result object, and its ``_Span`` builds two locked bounded lists
per span (events, links) that most spans never use, then copies itself into a
``ReadableSpan`` when it ends. ``TenantSpan`` *is* the SDK's ``_Span`` (every
method, limit and check of it stands; processors and exporters see an SDK span)
with three differences: the lists are made on first use, the span hands itself
to the pipeline when it ends (after ``end()`` nothing can change it: every
mutator checks the end time under the span's lock), and, for the samplers whose
decision follows from the parent alone (the default parent-based always-on, and
always-on), the decision is taken without the sampler call. Any other sampler,
id generator or SDK feature in use (tracer configurators, the SDK's own span
metrics) takes the SDK's path unchanged. ``copy.deepcopy`` of an ended span gives
the SDK's ``ReadableSpan`` copy. tests/instrumentation/test_tenant_span.py holds
the two to the same behaviour over generated operations.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from threading import Lock
from time import time_ns
from types import MappingProxyType
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import (
    EventBase,
    ReadableSpan,
    SpanProcessor,
    Tracer,
    _Span,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.util.types import Attributes

from tenantrace.instrumentation.tenants import TenantNonRecordingSpan, span_tenant

__all__ = ["BOUNDARY_LINK_ATTRIBUTES", "TenantSpan", "TenantTracer"]

_logger = logging.getLogger("opentelemetry.sdk.trace")  # the SDK's warnings, as the SDK logs them

BOUNDARY_LINK_ATTRIBUTES: Final = {"tenantrace.link": "parent"}
"""On the link from a new trace's root to the parent across a tenant boundary.

It says why the link exists, and names no tenant: the parent's tenant is
another tenant's business."""

_RANDOM: Final = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C Level 2; SDKs before 1.39 lack it
# Trace flags by (sampled, random trace id): the SDK makes a new TraceFlags per span.
_FLAGS: Final = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else 0) | (_RANDOM if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}

_UNSET: Final = trace_api.Status(trace_api.StatusCode.UNSET)  # immutable: the SDK shares one too


class TenantSpan(_Span):
    """The SDK's span, with its event and link lists made on first use and no copy at the end."""

    tenant_id: str

    def __init__(  # noqa: PLR0917 - the fields of a span, set once
        self,
        tracer: TenantTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> None:
        # The fields of ReadableSpan and Span, as their constructors set them
        # (without the events list, and without building a links list for no links).
        limits = tracer._span_limits
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time = start_time if start_time is not None else time_ns()
        self._end_time = None
        self._resource = tracer.resource
        self._status = _UNSET
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = tracer.span_processor
        self._limits = limits
        self._lock = Lock()
        self._attributes = BoundedAttributes(
            limits.max_span_attributes,
            attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
        self._events = ()  # a BoundedList from the first event
        self._links = self._new_links(links) if links else ()
        self._record_end_metrics = None
        self._on_ending = tracer.on_ending
        self.tenant_id = tracer.tenant_id

    def _add_event(self, event: EventBase) -> None:
        with self._lock:
            if self._end_time is None:
                if type(self._events) is not BoundedList:
                    self._events = BoundedList(self._limits.max_events)
                self._events.append(event)  # type: ignore[arg-type]  # as the SDK's
                return
        _logger.warning("Tried calling %s on an ended span.", "_add_event")

    def _add_link(self, link: Link) -> None:
        with self._lock:
            if self._end_time is None:
                if type(self._links) is not BoundedList:
                    self._links = BoundedList(self._limits.max_links)
                self._links.append(link)
                return
        _logger.warning("Tried calling %s on an ended span.", "_add_link")

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                _logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._attributes._immutable = True  # type: ignore[union-attr]
        on_ending = self._on_ending
        if on_ending is not None:
            on_ending(self)
        # Ended, the span cannot change any more: it is its own readable copy.
        self._span_processor.on_end(self)

    def __deepcopy__(self, memo: dict[int, object]) -> ReadableSpan:
        # What the SDK hands a processor is a ReadableSpan, which deep-copies; this
        # span holds a lock (and its processor): its copy is the SDK's readable one.
        return copy.deepcopy(self._readable_span(), memo)


_SHARED: dict[str, Any] = {}


def _shared(kind: str, made: object) -> Any:
    """The first object of a kind the SDK's ``Tracer`` makes for every tracer (stateless)."""
    return _SHARED.setdefault(kind, made)


class TenantTracer(Tracer):
    """An SDK tracer of one tenant that keeps that tenant's spans out of other tenants' traces."""

    tenant_id: str = ""
    split_traces: bool = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the SDK makes anew for each tracer, shared when it is the default:
        # every object a cached tenant holds is one more for each full collection.
        # (SDKs before 1.40 have neither.)
        config = getattr(self, "_tracer_config", None)
        if type(config).__name__ == "_TracerConfig" and config.is_enabled:  # type: ignore[union-attr]
            self._tracer_config = _shared("config", config)
        metrics = getattr(self, "_tracer_metrics", None)
        if type(metrics).__name__ == "NoOpTracerMetrics":
            self._tracer_metrics = _shared("metrics", metrics)
        # The SDK's Span.end() calls the processor's _on_ending (SDK >= 1.39) before
        # on_end: called here too when the processor has its own.
        ending = getattr(type(self.span_processor), "_on_ending", None)
        self.on_ending: Callable[[Any], None] | None = (
            getattr(self.span_processor, "_on_ending", None)
            if ending is not None and ending is not getattr(SpanProcessor, "_on_ending", None)
            else None
        )
        # The span-making fast path reproduces the SDK's start_span for these
        # settings only; anything else takes the SDK's own path.
        self._fast = (
            (self.sampler is DEFAULT_ON or self.sampler is ALWAYS_ON)
            and type(self.id_generator) is RandomIdGenerator
            and (config is None or config.is_enabled)
            and (metrics is None or type(metrics).__name__ == "NoOpTracerMetrics")
        )
        self._always_on = self.sampler is ALWAYS_ON
        self._random_roots = bool(getattr(self.id_generator, "is_trace_id_random", bool)())

    def start_span(  # noqa: PLR0917 - signature fixed by opentelemetry.trace.Tracer
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        parent = trace_api.get_current_span(context)
        parent_context = parent.get_span_context()
        if parent_context is None:  # the SDK's reading of a span without a context: no parent
            parent_context = INVALID_SPAN_CONTEXT
        if parent_context.is_valid and self.split_traces and span_tenant(parent) != self.tenant_id:
            context = trace_api.set_span_in_context(INVALID_SPAN, context)
            # Last: past the link limit, the SDK keeps the last links.
            links = [*(links or ()), Link(parent_context, BOUNDARY_LINK_ATTRIBUTES)]
            parent_context = INVALID_SPAN_CONTEXT
        if not self._fast:
            span = super().start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
            if type(span) is NonRecordingSpan:  # sampled out: its children stay in its trace
                return TenantNonRecordingSpan(span.get_span_context(), self.tenant_id)
            return span
        # The SDK's start_span for a parent-based always-on (or always-on) sampler.
        if attributes is not None and type(attributes) is not dict:
            MappingProxyType(attributes)  # the SDK's TypeError for a non-mapping
        if parent_context.is_valid:
            flags = parent_context.trace_flags
            sampled = self._always_on or flags.sampled
            span_context = SpanContext(
                parent_context.trace_id,
                self.id_generator.generate_span_id(),
                False,
                _FLAGS[sampled, bool(flags & _RANDOM)],
                parent_context.trace_state,
            )
            parent_or_none: SpanContext | None = parent_context
        else:
            sampled = True
            span_context = SpanContext(
                self.id_generator.generate_trace_id(),
                self.id_generator.generate_span_id(),
                False,
                _FLAGS[True, self._random_roots],
            )
            parent_or_none = None
        if not sampled:  # its children stay in its trace, and so are dropped too
            return TenantNonRecordingSpan(span_context, self.tenant_id)
        span = TenantSpan(
            self,
            name,
            span_context,
            parent_or_none,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        self.span_processor.on_start(span, parent_context=context)
        return span
