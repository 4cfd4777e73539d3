"""TenantSpan against the SDK's own span: same settings, same operations, same result.

``TenantSpan`` (tenantrace/instrumentation/tracer.py) is the SDK's ``_Span`` with a
faster constructor (event and link lists made on first use, no ``ReadableSpan``
copy at ``end()``, the sampling decision inline for ``DEFAULT_ON`` and
``ALWAYS_ON``); ``TenantTracer`` takes the SDK's own ``start_span`` for any other
sampler or id generator. The claim: apart from speed, a user, a processor or an
exporter cannot tell it from the SDK's span.

The property tests build two tracers with the same sampler, span limits, id
generator type, resource and instrumentation scope: the tracer of an SDK
``TracerProvider`` and a ``TenantTracer`` built as ``TenantTracerProvider._new_tracer``
builds it. Both are driven through one generated sequence of operations (start
under various parents with links and attributes of every kind, mutations, end,
mutations after the end) and everything observable is compared: what the calls
return, what the SDK logs, what a processor gets at ``on_start`` and ``on_end``,
``to_json()``, and the OTLP bytes of the SDK's encoder and of tenantrace's.

Ids are made equal by seeding ``random`` before each start on both sides
(``RandomIdGenerator`` draws from it, so the fast path stays engaged), and the
timestamps the test does not give come from a fixed clock patched into both
modules; so spans compare exactly, JSON and bytes included.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import opentelemetry.sdk.trace as sdk_trace
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider, _Span
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

import tenantrace.instrumentation.tracer as tracer_module
from tenantrace.export.encoder import encode_spans as tenantrace_encode
from tenantrace.export.otel_logs import OTEL_LOGGERS, RateLimitFilter
from tenantrace.instrumentation.providers import TenantResource, TenantTracerProvider
from tenantrace.instrumentation.tenants import TenantNonRecordingSpan, span_tenant
from tenantrace.instrumentation.tracer import BOUNDARY_LINK_ATTRIBUTES, TenantSpan, TenantTracer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# No Hypothesis profile in tests/conftest.py: moderate in CI, more locally.
_SETTINGS = settings(
    max_examples=100 if IN_CI else 250,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

TENANT = "acme"
_RESOURCE = TenantResource(Resource.create({"service.name": "svc"}), TENANT, "proj")
_CLOCK = 1_700_000_000_123_456_789  # every timestamp the test does not give
_RANDOM_FLAG = 0x02  # W3C Level 2 random-trace-id flag


# --------------------------------------------------------------- the two tracers


class _Capture(SpanProcessor):
    """What a processor sees: the span at on_start (and a view of it then), _on_ending, on_end."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.start_views: list[Any] = []
        self.ending: list[Any] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append(span)
        parent = trace_api.get_current_span(parent_context).get_span_context()
        self.start_views.append(
            (
                span.name,
                _context_view(span.get_span_context()),
                _context_view(span.parent),
                span.start_time,
                span.end_time,
                span.is_recording(),
                _attrs(span.attributes),
                len(span.links),
                _context_view(parent),
            )
        )

    def _on_ending(self, span: Any) -> None:
        self.ending.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class _SubclassedIds(RandomIdGenerator):
    """The SDK's generator under another type: TenantTracer takes the SDK's path for it."""


class _RecordOnly(Sampler):
    """A sampler that records without sampling half the traces, adds attributes and trace state."""

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_ONLY if trace_id % 2 else Decision.RECORD_AND_SAMPLE
        added = {**(attributes or {}), "sampler.name": name}
        return SamplingResult(decision, added, TraceState([("smp", "1")]))

    def get_description(self) -> str:
        return "RecordOnly"


# The samplers whose decision TenantTracer takes inline, and the others.
_FAST_SAMPLERS: dict[str, Sampler] = {"DEFAULT_ON": DEFAULT_ON, "ALWAYS_ON": ALWAYS_ON}
_SDK_PATH_SAMPLERS: dict[str, Sampler] = {
    "ParentBased(ALWAYS_ON) (equal to DEFAULT_ON, another object)": ParentBased(ALWAYS_ON),
    "ALWAYS_OFF": ALWAYS_OFF,
    "ParentBased(ALWAYS_OFF)": DEFAULT_OFF,
    "TraceIdRatioBased(0.5)": TraceIdRatioBased(0.5),
    "ParentBased(TraceIdRatioBased(0.5))": ParentBased(TraceIdRatioBased(0.5)),
    "RECORD_ONLY for odd trace ids": _RecordOnly(),
}

Scope = tuple[str, str | None, str | None, Mapping[str, Any] | None]
_DEFAULT_SCOPE: Scope = ("app", None, None, None)


def _sdk_tracer(
    sampler: Sampler,
    limits: SpanLimits | None = None,
    ids: RandomIdGenerator | None = None,
    scope: Scope = _DEFAULT_SCOPE,
) -> tuple[trace_api.Tracer, _Capture]:
    capture = _Capture()
    provider = TracerProvider(
        sampler=sampler,
        resource=_RESOURCE,
        shutdown_on_exit=False,
        id_generator=ids or RandomIdGenerator(),
        span_limits=limits or SpanLimits(),
    )
    provider.add_span_processor(capture)
    return provider.get_tracer(*scope), capture


def _tenant_tracer(
    sampler: Sampler,
    limits: SpanLimits | None = None,
    ids: RandomIdGenerator | None = None,
    scope: Scope = _DEFAULT_SCOPE,
    *,
    split_traces: bool = False,
) -> tuple[TenantTracer, _Capture]:
    """A TenantTracer as TenantTracerProvider._new_tracer makes it, with a capturing processor."""
    capture = _Capture()
    name, version, schema_url, attributes = scope
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        info = InstrumentationInfo(name, version or "", schema_url)
    tracer = TenantTracer(
        sampler,
        _RESOURCE,
        capture,  # type: ignore[arg-type]  # a processor as the provider's TenantSpanProcessor
        ids or RandomIdGenerator(),
        info,
        limits or SpanLimits(),
        InstrumentationScope(name, version or "", schema_url, attributes),
    )
    tracer.tenant_id = TENANT
    tracer.split_traces = split_traces
    return tracer, capture


@contextmanager
def _fixed_clock() -> Iterator[None]:
    """Both modules read the clock as ``time_ns()`` from their globals: one fixed value."""
    with (
        mock.patch.object(sdk_trace, "time_ns", lambda: _CLOCK),
        mock.patch.object(tracer_module, "time_ns", lambda: _CLOCK),
    ):
        yield


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _otel_logs_not_rate_limited() -> Iterator[None]:
    """A manager built by an earlier test rate-limits OpenTelemetry's loggers (one
    message template a minute): both spans' warnings must reach the comparison."""
    removed: list[tuple[logging.Logger, logging.Filter]] = []
    for name in OTEL_LOGGERS:
        logger = logging.getLogger(name)
        for found in [f for f in logger.filters if isinstance(f, RateLimitFilter)]:
            logger.removeFilter(found)
            removed.append((logger, found))
    yield
    for logger, found in removed:
        logger.addFilter(found)


@contextmanager
def _logged(name: str = "opentelemetry") -> Iterator[list[logging.LogRecord]]:
    """The warnings OpenTelemetry logs (the SDK, attribute cleaning, Status) meanwhile."""
    handler = _Records()
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _log_view(records: list[logging.LogRecord]) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in records]


# ------------------------------------------------------------------ views


def _context_view(context: SpanContext | None) -> Any:
    if context is None:
        return None
    return (
        context.trace_id,
        context.span_id,
        context.is_remote,
        type(context.trace_flags).__name__,
        int(context.trace_flags),
        type(context.trace_state).__name__,
        tuple(context.trace_state.items()),  # in order: W3C trace state is ordered
    )


def _attrs(attributes: Any) -> Any:
    """Attributes in order, values by repr (NaN equals NaN, -0.0 differs from 0.0)."""
    if attributes is None:
        return None
    return repr(list(attributes.items()))


def _immutable(attributes: Any) -> Any:
    # What a processor reaching the SDK's containers (as the SDK's code does) finds.
    return getattr(attributes, "_immutable", "no flag")


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _view(span: Any, *, live: bool) -> Any:
    """Everything observable of a span (``live``: the object start_span returned)."""
    if span is None:
        return None
    if not isinstance(span, ReadableSpan):
        return {
            "non-recording": isinstance(span, NonRecordingSpan),
            "is_recording": span.is_recording(),
            "context": _context_view(span.get_span_context()),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        info = span.instrumentation_info
    scope = span.instrumentation_scope
    view = {
        "name": span.name,
        "context": _context_view(span.context),
        "get_span_context": _context_view(span.get_span_context()),
        "parent": _context_view(span.parent),
        "kind": span.kind,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "attributes": _attrs(span.attributes),
        "attributes immutable": _immutable(span._attributes),
        "dropped_attributes": span.dropped_attributes,
        "events": [
            (
                type(event).__name__,
                event.name,
                event.timestamp,
                _attrs(event.attributes),
                type(event.attributes).__name__,
                _immutable(event.attributes),
                event.dropped_attributes,  # type: ignore[attr-defined]
            )
            for event in span.events
        ],
        "events type": type(span.events).__name__,
        "dropped_events": span.dropped_events,
        "links": [
            (
                _context_view(link.context),
                _attrs(link.attributes),
                type(link.attributes).__name__,
                _immutable(link.attributes),
                link.dropped_attributes,
            )
            for link in span.links
        ],
        "links type": type(span.links).__name__,
        "dropped_links": span.dropped_links,
        "status": (
            span.status.status_code,
            span.status.description,
            span.status.is_ok,
            span.status.is_unset,
        ),
        "resource": (span.resource is _RESOURCE, dict(span.resource.attributes)),
        "scope": (
            scope.name,
            scope.version,
            scope.schema_url,
            None if scope.attributes is None else dict(scope.attributes),
        ),
        "instrumentation_info": (info.name, info.version, info.schema_url),
        "to_json": _outcome(span.to_json),
        "to_json(indent=None)": _outcome(lambda: span.to_json(indent=None)),
    }
    if live:
        view["is_recording"] = span.is_recording()
    return view


# ------------------------------------------------------------ strategies

_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_long_texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=9, max_size=40)
_keys = st.one_of(st.sampled_from(["k", "a", "b", "http.route", "tenant.id", "", 7]), _texts)
_times = st.one_of(
    st.integers(1_600_000_000 * 10**9, 1_800_000_000 * 10**9),
    st.sampled_from([0, 1]),
)
_ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**70]),  # beyond int64 too
)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_scalars = st.one_of(_texts, _long_texts, st.booleans(), _ints, _floats, st.binary(max_size=8))


def _homogeneous(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(element, max_size=4),
        st.lists(element, max_size=4).map(tuple),
        st.lists(st.one_of(element, st.none()), max_size=4),  # None inside
    )


class _Opaque:
    """A value no attribute type accepts (a stable repr, for the SDK's warning)."""

    def __repr__(self) -> str:
        return "<opaque>"


_sequences = st.one_of(*(_homogeneous(e) for e in (_texts, st.booleans(), _ints, _floats)))
_mixed = st.lists(st.one_of(_texts, st.booleans(), _ints, _floats), min_size=2, max_size=4)
_odd_values = st.sampled_from(
    [None, {"nested": {"x": 1}}, {"a": [1, "b"]}, frozenset({1}), _Opaque(), [[1, 2], [3]], ()]
)
_values = st.one_of(_scalars, _sequences, _mixed, _odd_values)
_attribute_dicts = st.dictionaries(_keys, _values, max_size=6)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


_trace_states = st.lists(
    st.sampled_from(
        [
            ("vendor", "v1"),
            ("congo", "t61rcWkgMzE"),
            ("rojo", "00f067aa0ba902b7"),
            ("tenant@sys", "acme"),
            ("tr", "x"),
        ]
    ),
    unique_by=lambda entry: entry[0],
    max_size=3,
)
_flags = st.one_of(st.sampled_from([0x00, 0x01, 0x02, 0x03]), st.integers(0, 255))
_valid_contexts = st.tuples(
    st.just("valid"),
    st.one_of(st.integers(1, 2**128 - 1), st.sampled_from([1, 2**128 - 1])),
    st.one_of(st.integers(1, 2**64 - 1), st.sampled_from([1, 2**64 - 1])),
    st.booleans(),  # is_remote
    _flags,
    _trace_states,
)
# An invalid context makes a link only with attributes or a trace state.
_context_specs = st.one_of(_valid_contexts, st.tuples(st.just("invalid"), _trace_states))
_start_links = _opt(
    st.lists(st.one_of(st.none(), st.tuples(_context_specs, _opt(_attribute_dicts))), max_size=4)
)
_parents = st.one_of(
    st.none(),
    st.just(("local",)),  # a span of the same tracer
    st.tuples(st.just("context"), _valid_contexts),  # a span context (remote or local)
    st.tuples(st.just("context"), _valid_contexts.filter(lambda spec: not spec[4] & 0x01)),
    st.tuples(st.just("context"), st.tuples(st.just("invalid"), _trace_states)),
    st.just(("empty context",)),  # a context holding no span
)

_codes = st.sampled_from(list(StatusCode))
_ops = st.one_of(
    st.tuples(st.just("set_attribute"), _keys, _values),
    st.tuples(st.just("set_attributes"), _attribute_dicts),
    st.tuples(st.just("add_event"), _texts, _opt(_attribute_dicts), _opt(_times)),
    st.tuples(st.just("add_link"), _context_specs, _opt(_attribute_dicts)),
    st.tuples(st.just("set_status"), st.just("Status"), _codes, _opt(_texts), _opt(_texts)),
    st.tuples(st.just("set_status"), st.just("code"), _codes, _opt(_texts), st.none()),
    st.tuples(st.just("set_status"), st.just("OK then ERROR"), _codes, _opt(_texts), st.none()),
    st.tuples(st.just("update_name"), _texts),
    st.tuples(
        st.just("record_exception"), _texts, _opt(_attribute_dicts), _opt(_times), st.booleans()
    ),
    st.tuples(st.just("is_recording")),
    st.tuples(st.just("get_span_context")),
    st.tuples(st.just("start"), _opt(_times)),
)
_after_end_ops = st.one_of(
    _ops,
    st.tuples(st.just("end"), _opt(_times)),  # ending twice
    st.tuples(st.just("exit"), st.booleans()),  # `with span:` (raising or not) once ended
)
_endings = st.one_of(
    st.tuples(st.just("end"), _opt(_times)),
    st.tuples(st.just("with"), _texts, st.sampled_from(["ValueError", "KeyError", "_Boom"])),
    st.tuples(st.just("use_span"), _texts, st.booleans(), st.booleans()),
)
_small = st.one_of(st.none(), st.integers(0, 3))
_limits = st.builds(
    SpanLimits,
    max_span_attributes=_small,
    max_events=_small,
    max_links=_small,
    max_event_attributes=_small,
    max_link_attributes=_small,
    max_attribute_length=st.one_of(st.none(), st.integers(0, 8)),
    max_span_attribute_length=st.one_of(st.none(), st.integers(0, 8)),
)
_scopes = st.tuples(
    st.sampled_from(["app", "db"]),
    st.sampled_from([None, "1.0"]),
    st.sampled_from([None, "https://opentelemetry.io/schemas/1.21.0"]),
    st.sampled_from([None, {"scope.attr": "x"}]),
)


class _Boom(Exception):
    """An exception of a module other than builtins (its type is written in full)."""


_EXCEPTIONS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "KeyError": KeyError,
    "_Boom": _Boom,
}


@dataclass(frozen=True)
class _Scenario:
    sampler: str
    fallback_ids: bool  # _SubclassedIds instead of RandomIdGenerator
    limits: SpanLimits
    scope: Scope
    split_traces: bool
    seed: int
    parent: Any
    name: str
    kind: SpanKind
    attributes: Any
    links: Any
    start_time: int | None
    record_exception: bool
    set_status_on_exception: bool
    ops: list[Any]
    ending: Any
    after_end: list[Any]
    parent_end: int | None


@st.composite
def _scenarios(draw: st.DrawFn, *, fast: bool) -> _Scenario:
    samplers = _FAST_SAMPLERS if fast else {**_FAST_SAMPLERS, **_SDK_PATH_SAMPLERS}
    sampler = draw(st.sampled_from(sorted(samplers)))
    # The SDK's path: another sampler, or the fast samplers with another id generator type.
    fallback_ids = False if fast else (sampler in _FAST_SAMPLERS or draw(st.booleans()))
    return _Scenario(
        sampler=sampler,
        fallback_ids=fallback_ids,
        limits=draw(_limits),
        scope=draw(_scopes),
        split_traces=draw(st.booleans()),  # every parent here is the tenant's own
        seed=draw(st.integers(0, 2**32)),
        parent=draw(_parents),
        name=draw(_texts),
        kind=draw(st.sampled_from(list(SpanKind))),
        attributes=draw(_opt(_attribute_dicts)),
        links=draw(_start_links),
        start_time=draw(_opt(_times)),
        record_exception=draw(st.booleans()),
        set_status_on_exception=draw(st.booleans()),
        ops=draw(st.lists(_ops, max_size=12)),
        ending=draw(_endings),
        after_end=draw(st.lists(_after_end_ops, max_size=6)),
        parent_end=draw(_opt(_times)),
    )


# ------------------------------------------------ applying a scenario


def _span_context(spec: Any) -> SpanContext:
    if spec[0] == "valid":
        _, trace_id, span_id, remote, flags, state = spec
        return SpanContext(trace_id, span_id, remote, TraceFlags(flags), TraceState(list(state)))
    return SpanContext(0, 0, False, TraceFlags(0), TraceState(list(spec[1])))


def _links(specs: Any) -> Any:
    """Fresh Link objects for each side: the SDK replaces a link's attributes in place."""
    if specs is None:
        return None
    return [
        None if spec is None else Link(_span_context(spec[0]), copy.deepcopy(spec[1]))
        for spec in specs
    ]


def _set_status(span: Any, how: str, code: StatusCode, description: Any, extra: Any) -> Any:
    if how == "Status":  # a Status, and a description the SDK ignores (and warns about)
        return span.set_status(Status(code, description), extra)
    if how == "OK then ERROR":  # OK is final
        span.set_status(StatusCode.OK)
    return span.set_status(code, description)


def _record_exception(
    span: Any, message: str, attributes: Any, timestamp: Any, escaped: bool
) -> Any:
    return span.record_exception(ValueError(message), copy.deepcopy(attributes), timestamp, escaped)


def _exit(span: Any, raising: bool) -> Any:
    try:
        with span:
            if raising:
                raise _Boom("after the end")
    except _Boom:
        return "raised"
    return None


_OPERATIONS: dict[str, Callable[..., Any]] = {
    "set_attribute": lambda span, key, value: span.set_attribute(key, copy.deepcopy(value)),
    "set_attributes": lambda span, attributes: span.set_attributes(copy.deepcopy(attributes)),
    "add_event": lambda span, name, attributes, timestamp: span.add_event(
        name, copy.deepcopy(attributes), timestamp
    ),
    "add_link": lambda span, spec, attributes: span.add_link(
        _span_context(spec), copy.deepcopy(attributes)
    ),
    "set_status": _set_status,
    "update_name": lambda span, name: span.update_name(name),
    "record_exception": _record_exception,
    "is_recording": lambda span: span.is_recording(),
    "get_span_context": lambda span: _context_view(span.get_span_context()),
    "start": lambda span, start_time: (
        span.start(start_time) if hasattr(span, "start") else "no start()"
    ),
    "end": lambda span, end_time: span.end(end_time),
    "exit": _exit,  # `with span:` once more
}


def _apply(span: Any, op: Any) -> Any:
    return _OPERATIONS[op[0]](span, *op[1:])


def _finish(span: Any, ending: Any) -> Any:
    what = ending[0]
    if what == "end":
        return span.end(ending[1])
    error = _EXCEPTIONS[ending[2]] if what == "with" else ValueError
    try:
        if what == "with":  # the span's own __exit__: records the exception, sets the status
            with span:
                raise error(ending[1])
        else:  # the API's use_span, ending the span
            _, message, record, set_status = ending
            with trace_api.use_span(
                span, end_on_exit=True, record_exception=record, set_status_on_exception=set_status
            ):
                raise error(message)
    except error:
        return "raised"
    return "not raised"


def _drive(tracer: trace_api.Tracer, capture: _Capture, sc: _Scenario) -> dict[str, Any]:
    """Run a scenario on one tracer; everything observable, and the spans made."""
    parent_span = None
    with _fixed_clock(), _logged() as records:
        context = None
        kind = sc.parent[0] if sc.parent else None
        if kind == "local":
            random.seed(sc.seed)
            parent_span = tracer.start_span("parent", kind=SpanKind.SERVER)
            context = trace_api.set_span_in_context(parent_span)
        elif kind == "context":  # a span context of the tenant (from a trusted carrier)
            parent = TenantNonRecordingSpan(_span_context(sc.parent[1]), TENANT)
            context = trace_api.set_span_in_context(parent)
        elif kind == "empty context":
            context = Context()
        random.seed(sc.seed + 1)
        span = tracer.start_span(
            sc.name,
            context,
            sc.kind,
            copy.deepcopy(sc.attributes),
            _links(sc.links),
            sc.start_time,
            sc.record_exception,
            sc.set_status_on_exception,
        )
        results = [_outcome(lambda op=op: _apply(span, op)) for op in sc.ops]
        results.append(_outcome(lambda: _finish(span, sc.ending)))
        results += [_outcome(lambda op=op: _apply(span, op)) for op in sc.after_end]
        if parent_span is not None:
            parent_span.end(sc.parent_end)
        logs = _log_view(records)
    observed = {
        "returned span": _view(span, live=True),
        "returned parent": _view(parent_span, live=True),
        "results": results,
        "logs": logs,
        "on_start": capture.start_views,
        "on_end": [_view(ended, live=False) for ended in capture.ended],
        "OTLP, SDK encoder": _outcome(lambda: sdk_encode(capture.ended).SerializeToString()),
        "OTLP, tenantrace encoder": _outcome(lambda: tenantrace_encode(capture.ended)),
    }
    return {"observed": observed, "span": span, "parent": parent_span}


def _pair(sc: _Scenario) -> tuple[Any, Any, _Capture]:
    sampler = {**_FAST_SAMPLERS, **_SDK_PATH_SAMPLERS}[sc.sampler]
    ids = _SubclassedIds if sc.fallback_ids else RandomIdGenerator
    sdk_tracer, sdk_capture = _sdk_tracer(sampler, sc.limits, ids(), sc.scope)
    tenant_tracer, tenant_capture = _tenant_tracer(
        sampler, sc.limits, ids(), sc.scope, split_traces=sc.split_traces
    )
    sdk = _drive(sdk_tracer, sdk_capture, sc)
    tenant = _drive(tenant_tracer, tenant_capture, sc)
    assert tenant["observed"] == sdk["observed"]
    _tally(sc, tenant)
    return sdk, tenant, tenant_capture


def _tally(sc: _Scenario, tenant: dict[str, Any]) -> None:
    """What the examples exercised (pytest --hypothesis-show-statistics)."""
    span = tenant["span"]
    event(f"sampler {sc.sampler}, {'subclassed' if sc.fallback_ids else 'random'} ids")
    event(f"span: {type(span).__name__}, parent: {sc.parent[0] if sc.parent else None}")
    event(f"ending: {sc.ending[0]}")
    if isinstance(span, ReadableSpan):
        for what in ("attributes", "events", "links"):
            if getattr(span, f"dropped_{what}"):
                event(f"dropped {what}")
        if any(event_.dropped_attributes for event_ in span.events):  # type: ignore[attr-defined]
            event("dropped event attributes")
        if any(link.dropped_attributes for link in span.links):
            event("dropped link attributes")
    if any(message for _, _, message in tenant["observed"]["logs"] if "ended span" in message):
        event("refused after the end")


@_SETTINGS
@given(_scenarios(fast=True))
def test_fast_path_span_is_indistinguishable_from_the_sdk_span(sc: _Scenario) -> None:
    _, tenant, capture = _pair(sc)
    # The fast path was taken, and the span a processor gets is the span itself.
    for made in (tenant["span"], tenant["parent"]):
        if made is not None:
            assert type(made) in (TenantSpan, TenantNonRecordingSpan)
            assert getattr(made, "tenant_id", None) == TENANT
    recording = [s for s in (tenant["span"], tenant["parent"]) if isinstance(s, TenantSpan)]
    assert {id(s) for s in capture.started} == {id(s) for s in recording}
    assert {id(s) for s in capture.ended} == {id(s) for s in recording}


@_SETTINGS
@given(_scenarios(fast=False))
def test_sdk_path_span_is_indistinguishable_from_the_sdk_span(sc: _Scenario) -> None:
    _, tenant, _ = _pair(sc)
    for made in (tenant["span"], tenant["parent"]):
        if made is not None:
            # The SDK's own span, or a sampled-out span that knows its tenant.
            assert type(made) in (_Span, TenantNonRecordingSpan)
            if type(made) is TenantNonRecordingSpan:
                assert made.tenant_id == TENANT


# ------------------------------------------------ the ended span itself


def _mutate_after_end(span: Any) -> None:
    span.set_attribute("late", 1)
    span.set_attributes({"late2": 2})
    span.add_event("late event", {"a": 1})
    span.add_link(SpanContext(5, 6, False), {"a": 1})
    span.set_status(Status(StatusCode.ERROR, "late"))
    span.set_status(StatusCode.OK)
    span.update_name("renamed")
    span.record_exception(ValueError("late"))
    span.end()


def _start_full(tracer: trace_api.Tracer) -> Any:
    random.seed(11)
    span = tracer.start_span(
        "op",
        attributes={"a": 1, "b": "x"},
        links=[Link(SpanContext(1, 2, True), {"l": 1})],
        start_time=1_000,
    )
    span.add_event("e", {"k": "v"}, timestamp=2_000)
    span.set_status(StatusCode.ERROR, "boom")
    span.end(3_000)
    return span


def test_the_span_on_end_is_the_span_itself_and_cannot_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant_tracer, tenant_capture = _tenant_tracer(DEFAULT_ON)
    sdk_tracer, sdk_capture = _sdk_tracer(DEFAULT_ON)
    tenant_span = _start_full(tenant_tracer)
    sdk_span = _start_full(sdk_tracer)
    assert type(tenant_span) is TenantSpan
    assert tenant_capture.started == [tenant_span]
    assert len(tenant_capture.ended) == 1
    assert tenant_capture.ended[0] is tenant_span  # no copy: the span itself
    before = _view(tenant_span, live=False)
    assert before == _view(sdk_capture.ended[0], live=False)
    assert not tenant_span.is_recording()

    caplog.set_level(logging.WARNING, "opentelemetry")
    caplog.clear()
    _mutate_after_end(tenant_span)
    tenant_logs = _log_view(caplog.records)
    caplog.clear()
    _mutate_after_end(sdk_span)
    assert tenant_logs == _log_view(caplog.records)
    assert [message for _, _, message in tenant_logs] == [
        "Setting attribute on ended span.",
        "Setting attribute on ended span.",
        "Tried calling _add_event on an ended span.",
        "Tried calling _add_link on an ended span.",
        "Tried calling set_status on an ended span.",
        "Tried calling set_status on an ended span.",
        "Tried calling update_name on an ended span.",
        "Tried calling _add_event on an ended span.",
        "Calling end() on an ended span.",
    ]
    # Nothing changed, for the processor holding the span or anyone else.
    assert _view(tenant_span, live=False) == before
    assert len(tenant_capture.ended) == 1
    assert not tenant_span.is_recording()
    # The containers a processor holds refuse changes, as the SDK's do.
    for span in (tenant_span, sdk_capture.ended[0]):
        with pytest.raises(TypeError):
            span.attributes["x"] = 1  # type: ignore[index]
        with pytest.raises(TypeError):
            span._attributes["x"] = 1  # type: ignore[index]
        with pytest.raises(TypeError):
            span.events[0].attributes["x"] = 1  # type: ignore[index]
        with pytest.raises(TypeError):
            span.links[0].attributes["x"] = 1  # type: ignore[index]
        assert isinstance(span.events, tuple)
        assert isinstance(span.links, tuple)


def test_the_tenant_span_has_every_field_of_the_sdk_span() -> None:
    """A processor or exporter reading the SDK's private fields finds them all."""
    tenant_tracer, _ = _tenant_tracer(DEFAULT_ON)
    sdk_tracer, _ = _sdk_tracer(DEFAULT_ON)
    for start in (lambda tracer: tracer.start_span("bare"), _start_full):
        tenant_span, sdk_span = start(tenant_tracer), start(sdk_tracer)
        assert type(tenant_span) is TenantSpan
        assert set(vars(tenant_span)) - set(vars(sdk_span)) == {"tenant_id", "_on_ending"}
        assert set(vars(sdk_span)) <= set(vars(tenant_span))
        for span in (tenant_span, sdk_span):
            if span.is_recording():
                span.end()


@pytest.mark.parametrize("sampler", [DEFAULT_ON, TraceIdRatioBased(1.0)], ids=["fast", "sdk"])
def test_timestamps_from_the_clock_as_the_sdk_takes_them(sampler: Sampler) -> None:
    tenant_tracer, tenant_capture = _tenant_tracer(sampler)
    before = time.time_ns()
    span = tenant_tracer.start_span("timed")
    span.add_event("e")
    span.record_exception(ValueError("x"))
    span.end()
    after = time.time_ns()
    ended = tenant_capture.ended[0]
    assert before <= ended.start_time <= ended.events[0].timestamp  # type: ignore[operator]
    assert ended.events[0].timestamp <= ended.events[1].timestamp <= ended.end_time  # type: ignore[operator]
    assert ended.end_time <= after  # type: ignore[operator]


# ------------------------------------------------ sampling and tenants


def _remote(trace_id: int, span_id: int, flags: int, tenant: str | None = TENANT) -> Context:
    context = SpanContext(trace_id, span_id, True, TraceFlags(flags), TraceState([("v", "1")]))
    parent = (
        TenantNonRecordingSpan(context, tenant) if tenant is not None else NonRecordingSpan(context)
    )
    return trace_api.set_span_in_context(parent)


@pytest.mark.parametrize(
    ("sampler", "parent"),
    [
        (DEFAULT_ON, _remote(0xAB, 0xCD, 0x02)),  # fast path, unsampled parent
        (ParentBased(ALWAYS_ON), _remote(0xAB, 0xCD, 0x00)),  # the SDK's path
        (DEFAULT_OFF, None),  # a root the SDK's path drops
        (ALWAYS_OFF, None),
    ],
    ids=["DEFAULT_ON under unsampled", "ParentBased(ALWAYS_ON)", "DEFAULT_OFF root", "ALWAYS_OFF"],
)
def test_sampled_out_spans_know_their_tenant_and_keep_their_children_in_the_trace(
    sampler: Sampler, parent: Context | None
) -> None:
    tracer, capture = _tenant_tracer(sampler, split_traces=True)
    sdk_tracer, _ = _sdk_tracer(sampler)
    random.seed(3)
    span = tracer.start_span("dropped", context=parent)
    random.seed(3)
    sdk_span = sdk_tracer.start_span("dropped", context=parent)
    assert type(span) is TenantNonRecordingSpan
    assert span.tenant_id == TENANT
    assert span_tenant(span) == TENANT
    assert not span.is_recording()
    assert _context_view(span.get_span_context()) == _context_view(sdk_span.get_span_context())
    context = span.get_span_context()
    assert not context.trace_flags.sampled
    if parent is not None:
        parent_context = trace_api.get_current_span(parent).get_span_context()
        assert context.trace_id == parent_context.trace_id
        assert context.trace_flags & _RANDOM_FLAG == parent_context.trace_flags & _RANDOM_FLAG
        assert context.trace_state == parent_context.trace_state
    # Its children (and theirs) stay in its trace, dropped too, with the tenant.
    child = tracer.start_span("child", context=trace_api.set_span_in_context(span))
    grandchild = tracer.start_span("grandchild", context=trace_api.set_span_in_context(child))
    for descendant in (child, grandchild):
        assert type(descendant) is TenantNonRecordingSpan
        assert descendant.tenant_id == TENANT
        assert descendant.get_span_context().trace_id == context.trace_id
        assert not descendant.get_span_context().trace_flags.sampled
        assert descendant.get_span_context().span_id != context.span_id
    for made in (span, child, grandchild):
        made.end()
    assert capture.started == [] and capture.ended == []


def _provider(tenant: str, sampler: Sampler, capture: _Capture, **limits: Any) -> Any:
    return TenantTracerProvider(
        tenant_id=tenant,
        project_name="proj",
        resource=TenantResource(Resource.create({}), tenant, "proj"),
        processor=capture,  # type: ignore[arg-type]
        sampler=sampler,
        span_limits=SpanLimits(**limits),
        id_generator=RandomIdGenerator(),
        split_traces=True,
    )


@pytest.mark.parametrize("sampler", [DEFAULT_ON, TraceIdRatioBased(1.0)], ids=["fast", "sdk"])
@pytest.mark.parametrize("parent_of", ["other tenant", "no tenant (untrusted remote)"])
def test_a_parent_of_another_tenant_starts_a_new_trace_linked_to_it(
    sampler: Sampler, parent_of: str
) -> None:
    capture = _Capture()
    tracer = _provider(TENANT, sampler, capture).get_tracer("app")
    if parent_of == "other tenant":
        other = _provider("other", sampler, _Capture()).get_tracer("app")
        parent: Any = other.start_span("other's")
        context = trace_api.set_span_in_context(parent)
    else:
        parent = None
        context = _remote(0xABC, 0xDEF, 0x03, tenant=None)
    parent_context = trace_api.get_current_span(context).get_span_context()
    user_link = SpanContext(7, 8, False)
    span = tracer.start_span("mine", context=context, links=[Link(user_link, {"u": 1})])
    child = tracer.start_span("my child", context=trace_api.set_span_in_context(span))
    child.end()
    span.end()
    if parent is not None:
        parent.end()
    assert span_tenant(span) == TENANT
    assert span.parent is None  # type: ignore[attr-defined]
    assert span.get_span_context().trace_id != parent_context.trace_id
    assert span.get_span_context().trace_flags.sampled
    links = span.links  # type: ignore[attr-defined]
    # The boundary link last: past the link limit, the SDK keeps the last links.
    assert [link.context for link in links] == [user_link, parent_context]
    assert dict(links[1].attributes) == BOUNDARY_LINK_ATTRIBUTES == {"tenantrace.link": "parent"}
    assert dict(links[0].attributes) == {"u": 1}
    # The tenant's own spans under it stay in the new trace, without a link.
    assert child.get_span_context().trace_id == span.get_span_context().trace_id
    assert child.parent == span.get_span_context()  # type: ignore[attr-defined]
    assert child.links == ()  # type: ignore[attr-defined]
    assert [s.name for s in capture.ended] == ["my child", "mine"]


@pytest.mark.parametrize("sampler", [DEFAULT_ON, TraceIdRatioBased(1.0)], ids=["fast", "sdk"])
def test_a_parent_of_the_same_tenant_keeps_the_trace(sampler: Sampler) -> None:
    capture = _Capture()
    provider = _provider(TENANT, sampler, capture)
    parent = provider.get_tracer("app").start_span("parent")
    # Another scope of the same tenant, and a remote parent the tenant's trust accepted.
    child = provider.get_tracer("db").start_span(
        "child", context=trace_api.set_span_in_context(parent)
    )
    remote_child = provider.get_tracer("db").start_span("remote", context=_remote(0x5, 0x6, 0x01))
    remote = trace_api.get_current_span(_remote(0x5, 0x6, 0x01)).get_span_context()
    for span, expected in ((child, parent.get_span_context()), (remote_child, remote)):
        assert span.parent == expected
        assert span.get_span_context().trace_id == expected.trace_id
        assert span.links == ()
        span.end()
    parent.end()


# ------------------------------------------------ threads


@contextmanager
def _switching_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    with _switching_often():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


_THREADS = 8
_PER_THREAD = 150


def _add_many(span: Any, index: int) -> None:
    for j in range(_PER_THREAD):
        span.set_attribute(f"t{index}.{j}", j)
        span.set_attributes({f"u{index}.{j}": j})
        span.add_event(f"e{index}.{j}", {"j": j})
        span.add_link(SpanContext(index + 1, j + 1, False), {"j": j})


@pytest.mark.parametrize(
    "limit",
    [None, 100],
    ids=["within the limits", "beyond the limits"],
)
def test_threads_adding_to_one_span_lose_nothing(limit: int | None) -> None:
    total = _THREADS * _PER_THREAD
    cap = limit if limit is not None else 4 * total
    limits = SpanLimits(max_span_attributes=cap, max_events=cap, max_links=cap)
    tracer, capture = _tenant_tracer(DEFAULT_ON, limits)
    span = tracer.start_span("shared")
    assert type(span) is TenantSpan
    assert not _run_threads(_THREADS, lambda index: _add_many(span, index))
    span.end()
    assert capture.ended == [span]
    expected_attributes = min(2 * total, cap)
    assert len(span.attributes) == expected_attributes
    assert span.dropped_attributes == 2 * total - expected_attributes
    for got, dropped in ((span.events, span.dropped_events), (span.links, span.dropped_links)):
        assert len(got) == min(total, cap)
        assert dropped == total - min(total, cap)
    if limit is None:  # every update is there
        assert {e.name for e in span.events} == {
            f"e{i}.{j}" for i in range(_THREADS) for j in range(_PER_THREAD)
        }
        assert {(link.context.trace_id, link.context.span_id) for link in span.links} == {
            (i + 1, j + 1) for i in range(_THREADS) for j in range(_PER_THREAD)
        }
        assert set(span.attributes) == {
            f"{p}{i}.{j}" for p in "tu" for i in range(_THREADS) for j in range(_PER_THREAD)
        }
        # Each thread's own updates keep their order.
        for i in range(_THREADS):
            mine = [e.name for e in span.events if e.name.startswith(f"e{i}.")]
            assert mine == [f"e{i}.{j}" for j in range(_PER_THREAD)]


def test_threads_racing_for_the_first_event_and_link_lose_none() -> None:
    """The lists made on first use are made once: a fresh span, every thread adding at once."""
    tracer, _ = _tenant_tracer(DEFAULT_ON)
    lost = []
    for round_ in range(150):
        span = tracer.start_span("fresh")

        def work(index: int, span: Any = span) -> None:
            span.add_event(f"e{index}")
            span.add_link(SpanContext(index + 1, 1, False))

        assert not _run_threads(_THREADS, work)
        span.end()
        if len(span.events) != _THREADS or len(span.links) != _THREADS:
            lost.append((round_, len(span.events), len(span.links)))
    assert lost == []


def test_threads_adding_while_the_span_ends_see_it_recorded_or_refused() -> None:
    tracer, capture = _tenant_tracer(DEFAULT_ON, SpanLimits(max_events=100))
    span = tracer.start_span("shared")
    attempts = [0] * _THREADS
    after_end = 5  # each adder goes on a little once it has seen the span ended

    def work(index: int) -> None:
        if index == 0:  # ends the span while the others are adding
            while len(span.events) < 50:
                time.sleep(0)
            span.end()
            return
        left = after_end
        while left and attempts[index] < 100_000:
            if not span.is_recording():
                left -= 1
            span.add_event(f"e{index}")
            attempts[index] += 1

    with _logged("opentelemetry.sdk.trace") as records:
        errors = _run_threads(_THREADS, work)
    assert not errors
    assert capture.ended == [span]
    refused = [r for r in records if r.getMessage() == "Tried calling _add_event on an ended span."]
    assert len(refused) >= (_THREADS - 1) * after_end
    # Every attempt was recorded (kept or counted as dropped by the limit) or refused.
    assert len(span.events) + span.dropped_events + len(refused) == sum(attempts)
    ended_view = _view(span, live=False)
    span.add_event("later")
    assert _view(span, live=False) == ended_view


# ------------------------- differences found by these tests, now mended


def test_the_processor_hears_the_span_ending_as_from_the_sdk() -> None:
    tenant_tracer, tenant_capture = _tenant_tracer(DEFAULT_ON)
    sdk_tracer, sdk_capture = _sdk_tracer(DEFAULT_ON)
    tenant_span = tenant_tracer.start_span("x")
    sdk_tracer.start_span("x").end()
    tenant_span.end()
    assert len(sdk_capture.ending) == 1
    assert tenant_capture.ending == [tenant_span]


def test_a_processor_can_deep_copy_the_ended_span() -> None:
    copies = []
    for tracer, capture in (_sdk_tracer(DEFAULT_ON), _tenant_tracer(DEFAULT_ON)):
        _start_full(tracer)
        copied = copy.deepcopy(capture.ended[0])
        copies.append(_view(copied, live=False) | {"resource": None})
    assert copies[1] == copies[0]


def test_the_ended_span_warnings_are_the_sdk_log_records() -> None:
    records = {}
    for name, (tracer, _) in (
        ("sdk", _sdk_tracer(DEFAULT_ON)),
        ("tenant", _tenant_tracer(DEFAULT_ON)),
    ):
        span = tracer.start_span("x")
        span.end()
        with _logged() as logged:
            span.add_event("late")
            span.add_link(SpanContext(1, 2, False))
        records[name] = [(r.name, r.levelno, r.msg, r.args) for r in logged]
    assert records["tenant"] == records["sdk"]


@pytest.mark.parametrize("attributes", [[], (), [("a", 1)]], ids=["[]", "()", "[(a, 1)]"])
def test_non_mapping_attributes_fail_as_in_the_sdk(attributes: Any) -> None:
    outcomes = []
    for tracer, _ in (_sdk_tracer(DEFAULT_ON), _tenant_tracer(DEFAULT_ON)):
        try:
            span = tracer.start_span("x", attributes=attributes)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        else:
            span.end()
            outcomes.append("started")
    assert outcomes[1] == outcomes[0]


class _ContextlessSpan(NonRecordingSpan):
    """A span whose get_span_context() is None (the SDK's start_span takes it as no parent)."""

    def get_span_context(self) -> Any:
        return None


@pytest.mark.parametrize("sampler", [DEFAULT_ON, TraceIdRatioBased(1.0)], ids=["fast", "sdk"])
def test_a_current_span_without_context_is_no_parent(sampler: Sampler) -> None:
    context = trace_api.set_span_in_context(_ContextlessSpan(None))  # type: ignore[arg-type]
    sdk_tracer, _ = _sdk_tracer(sampler)
    sdk_span = sdk_tracer.start_span("x", context=context)
    assert sdk_span.parent is None  # type: ignore[attr-defined]
    sdk_span.end()
    tracer, _ = _tenant_tracer(sampler)
    span = tracer.start_span("x", context=context)
    assert span.parent is None  # type: ignore[attr-defined]
    span.end()
