"""The registry: routing by tenant, span lifecycle, levels, degradation, stats, health."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from tenantrace import (
    BatchExportConfig,
    InvalidTenantError,
    TelemetryConfig,
    TelemetryLevel,
    TelemetryManager,
    TenantRoutingTracerProvider,
    current_tenant,
    tenant_scope,
)
from tenantrace.instrumentation.manager import install_manager
from tenantrace.layers import trace_function
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans


def make_manager(
    exporter: SpanExporter | None = None, **batch: int | bool
) -> tuple[TelemetryManager, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    config = TelemetryConfig(
        batch_config=BatchExportConfig(**{"schedule_delay_millis": 10, **batch})  # type: ignore[arg-type]
    )
    return TelemetryManager(config, exporter=exporter or memory), memory


def test_span_routes_to_the_tenant_project_with_whole_span(spans: SpanCapture) -> None:
    manager = spans.manager
    with manager.span(
        "cogniverse.routing", tenant_id="acme", attributes={"routing.confidence": 0.95}
    ) as span:
        span.set_attribute("routing.strategy", "fast")
    [exported] = spans.spans()
    assert exported == CapturedSpan(
        name="cogniverse.routing",
        tenant="acme",
        project="cogniverse-acme",
        trace_id=exported.trace_id,
        span_id=exported.span_id,
        parent_id=None,
        kind="INTERNAL",
        status="UNSET",
        attributes={"tenant.id": "acme", "routing.confidence": 0.95, "routing.strategy": "fast"},
    )
    resource = exported.raw.resource.attributes if exported.raw else {}
    assert resource["service.name"] == "tenantrace"
    assert resource["deployment.environment"] == "development"
    assert resource["tenant.id"] == "acme"


def test_children_inherit_tenant_and_project_name_selects_service_project(
    spans: SpanCapture,
) -> None:
    manager = spans.manager
    with manager.span("video_agent.search", tenant_id="t1") as root:
        with manager.span("video_agent.encode_query"):
            pass
        with manager.span("cogniverse.routing", project_name="orchestration"):
            pass
    by_name = {s.name: s for s in spans.spans()}
    root_id = f"{root.get_span_context().span_id:016x}"
    assert by_name["video_agent.encode_query"].tenant == "t1"
    assert by_name["video_agent.encode_query"].parent_id == root_id
    assert by_name["cogniverse.routing"].project == "cogniverse-t1-orchestration"
    assert by_name["cogniverse.routing"].tenant == "t1"
    assert len({s.trace_id for s in by_name.values()}) == 1


def test_managed_spans_name_their_tenant_decorated_ones_through_their_resource(
    spans: SpanCapture,
) -> None:
    # manager.span (and the layers on it) put tenant.id on the span, visible while
    # it is open. Decorated and auto-instrumented spans stay free of attributes
    # (each costs the export thread ~10 us of OTLP encoding): their tenant is in
    # their Resource and their project.
    manager = spans.manager

    @trace_function(name="decorated")
    def decorated() -> None:
        pass

    library = TenantRoutingTracerProvider(manager).get_tracer("some.library")
    with tenant_scope("acme"):
        with manager.span("managed") as span:
            assert span.attributes is not None and span.attributes["tenant.id"] == "acme"
        decorated()
        with library.start_as_current_span("auto"):
            pass
    started = manager.start_span("started", tenant_id="globex")
    started.end()
    exported = {s.name: s for s in spans.spans()}
    assert {name: s.attributes.get("tenant.id") for name, s in exported.items()} == {
        "managed": "acme",
        "decorated": None,
        "auto": None,
        "started": "globex",
    }
    assert {name: s.tenant for name, s in exported.items()} == {
        "managed": "acme",
        "decorated": "acme",
        "auto": "acme",
        "started": "globex",
    }


def test_a_tenant_id_the_caller_set_is_kept_and_a_full_span_keeps_its_own(
    spans: SpanCapture,
) -> None:
    manager = spans.manager
    with manager.span("named", tenant_id="acme", attributes={"tenant.id": "acme/eu"}):
        pass
    limit = manager.config.max_span_attributes
    full = {f"k{i}": i for i in range(limit)}
    with manager.span("full", tenant_id="acme", attributes=full):
        pass
    named, at_limit = spans.one("named"), spans.one("full")
    assert named.attributes == {"tenant.id": "acme/eu"}
    assert at_limit.attributes == full  # the Resource (and the project) still name the tenant
    assert at_limit.tenant == "acme"
    assert at_limit.raw is not None and at_limit.raw.dropped_attributes == 1  # as the SDK counts


def test_the_tenant_attribute_keeps_to_the_value_length_limit() -> None:
    config = TelemetryConfig(max_attribute_length=4)
    with capture_spans(config) as spans:
        with spans.manager.span("short", tenant_id="acme-corp", attributes={"x": "abcdefgh"}):
            pass
        assert spans.one("short").attributes == {"x": "abcd", "tenant.id": "acme"}


class _TenantSeenBySampler(Sampler):
    """Records ``current_tenant(parent_context)``, as a per-tenant sampler would read it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def should_sample(  # noqa: PLR0917 - signature fixed by the SDK
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append((name, current_tenant(parent_context)))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "tenant seen by sampler"


def test_a_sampler_reads_the_tenant_of_the_span_it_decides() -> None:
    sampler = _TenantSeenBySampler()
    manager = TelemetryManager(
        TelemetryConfig(batch_config=BatchExportConfig(use_sync_export=True)),
        sampler,
        exporter=InMemorySpanExporter(),
    )
    previous = install_manager(manager)
    try:

        @trace_function(name="decorated", tenant_id="globex")
        def decorated() -> None:
            pass

        with manager.span("explicit", tenant_id="acme"):
            pass
        with tenant_scope("initech"), manager.span("scoped"):
            decorated()
        with manager.span("default"):
            pass
        manager.start_span("started", tenant_id="umbrella").end()
    finally:
        install_manager(previous)
        manager.shutdown()
    assert sampler.seen == [
        ("explicit", "acme"),
        ("scoped", "initech"),
        ("decorated", "globex"),
        ("default", "default"),
        ("started", "umbrella"),
    ]


def test_tenant_scope_and_default_tenant(spans: SpanCapture) -> None:
    manager = spans.manager
    with manager.span("outside"):
        pass
    with tenant_scope("scoped"):
        with manager.span("inside"):
            pass
        with manager.span("explicit", tenant_id="other"):
            pass
    tenants = {s.name: s.tenant for s in spans.spans()}
    assert tenants == {"outside": "default", "inside": "scoped", "explicit": "other"}


def test_exception_recorded_once_status_error_and_reraised(spans: SpanCapture) -> None:
    manager = spans.manager
    error = ValueError("boom")
    with (
        pytest.raises(ValueError) as caught,
        manager.span("outer", tenant_id="t"),
        manager.span("inner"),
    ):
        raise error
    assert caught.value is error
    for span in spans.spans():
        assert span.status == "ERROR"
        assert span.attributes["error.type"] == "ValueError"
    assert spans.one("inner").events == ["exception"]
    assert spans.one("outer").events == []  # recorded once, at the innermost span


def test_session_span_carries_openinference_session_id(spans: SpanCapture) -> None:
    manager = spans.manager
    for query in ("find basketball videos", "show me dunks"):
        with manager.session_span(
            "search", tenant_id="acme", session_id="s-1", user_id="u-9"
        ) as span:
            span.set_attribute("query", query)
    turns = spans.by_name("search")
    # The tenant's session: Phoenix keeps one session per id across projects.
    assert [t.attributes["session.id"] for t in turns] == ["acme:s-1", "acme:s-1"]
    assert all(t.attributes["user.id"] == "u-9" for t in turns)
    assert len({t.trace_id for t in turns}) == 2


def test_invalid_explicit_tenant_raises_before_user_code(spans: SpanCapture) -> None:
    ran = False
    with pytest.raises(InvalidTenantError), spans.manager.span("x", tenant_id="evil\r\nX: 1"):
        ran = True
    assert not ran
    assert spans.spans() == []


def test_level_gating_and_disabled_yield_noop_spans() -> None:
    memory = InMemorySpanExporter()
    manager = TelemetryManager(TelemetryConfig(level=TelemetryLevel.BASIC), exporter=memory)
    with manager.span("verbose", level=TelemetryLevel.VERBOSE) as span:
        assert span is INVALID_SPAN
        assert not trace_api.get_current_span().get_span_context().is_valid
    with manager.span("basic", level=TelemetryLevel.BASIC) as span:
        assert span.is_recording()
    manager.force_flush(2000)
    assert [s.name for s in memory.get_finished_spans()] == ["basic"]
    manager.shutdown()

    off = TelemetryManager(TelemetryConfig(enabled=False), exporter=memory)
    with off.span("nothing", tenant_id="t") as span:
        assert span is INVALID_SPAN
    assert off.health()["status"] == "disabled"
    assert off.get_stats()["export_threads"] == 0


class _Exploding(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("collector on fire")

    def shutdown(self) -> None:
        raise RuntimeError("still on fire")


def test_exporter_that_raises_never_reaches_user_code(caplog: pytest.LogCaptureFixture) -> None:
    exporter = _Exploding()
    manager, _ = make_manager(exporter)
    for _ in range(5):
        with manager.span("work", tenant_id="t"):
            pass
    assert manager.force_flush(5000) is False  # nothing could be exported: says so
    stats = manager.get_stats()
    assert stats["export_failures"] >= 1
    assert stats["dropped_spans"] == 5
    assert stats["dropped_spans_by_tenant"] == {"t": 5}
    assert manager.health()["status"] == "degraded"
    manager.shutdown(timeout_millis=1000)
    raised = [r for r in caplog.records if "span exporter raised" in r.getMessage()]
    assert len(raised) == 1  # logged once, not per export


def test_exporter_that_cannot_be_built_degrades_to_noop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(config: TelemetryConfig) -> SpanExporter:
        raise OSError("no such collector library")

    monkeypatch.setattr("tenantrace.instrumentation._manager_build.build_exporter", broken)
    manager = TelemetryManager(TelemetryConfig())
    for _ in range(3):
        with manager.span("still-works", tenant_id="t") as span:
            result = 2 + 2
        assert result == 4
        assert span is INVALID_SPAN
    assert manager.get_stats()["failed_initializations"] == 1
    assert manager.health()["status"] == "unhealthy"
    assert len([r for r in caplog.records if "could not be initialised" in r.getMessage()]) == 1
    manager.shutdown(timeout_millis=500)


def test_unreachable_endpoint_never_blocks_or_raises() -> None:
    config = TelemetryConfig(
        otlp_endpoint="127.0.0.1:9",  # discard port: connection refused
        batch_config=BatchExportConfig(export_timeout_millis=500, schedule_delay_millis=10),
    )
    manager = TelemetryManager(config)
    for _ in range(20):
        with manager.span("call", tenant_id="t"):
            pass
    started = time.monotonic()
    manager.force_flush(timeout_millis=300)
    assert time.monotonic() - started < 5  # honours its timeout, within a generous margin
    manager.shutdown(timeout_millis=500)


class _Blocking(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_force_flush_honours_its_timeout_with_a_stuck_exporter() -> None:
    exporter = _Blocking()
    manager, _ = make_manager(exporter)
    with manager.span("x", tenant_id="t"):
        pass
    assert manager.force_flush(timeout_millis=100) is False
    exporter.release.set()
    assert manager.force_flush(timeout_millis=5000) is True
    assert exporter.exported == 1
    manager.shutdown()


def test_queue_full_drops_new_spans_and_counts_them_per_tenant() -> None:
    exporter = _Blocking()
    manager, _ = make_manager(exporter, max_queue_size=10, max_export_batch_size=10)
    for i in range(40):
        with manager.span("s", tenant_id=f"t{i % 2}"):
            pass
    stats = manager.get_stats()
    assert stats["dropped_spans"] >= 20
    assert sum(stats["dropped_spans_by_tenant"].values()) == stats["dropped_spans"]
    assert set(stats["dropped_spans_by_tenant"]) <= {"t0", "t1"}
    exporter.release.set()
    manager.shutdown()
    assert exporter.exported + stats["dropped_spans"] == 40


def test_blocking_queue_waits_at_most_the_export_timeout() -> None:
    exporter = _Blocking()
    manager, _ = make_manager(
        exporter,
        max_queue_size=2,
        max_export_batch_size=1,
        drop_on_queue_full=False,
        export_timeout_millis=50,
    )
    for _ in range(6):
        with manager.span("s", tenant_id="t"):
            pass
    assert manager.get_stats()["dropped_spans"] >= 1
    exporter.release.set()
    manager.shutdown()


def test_sync_export_exports_on_span_end(spans: SpanCapture) -> None:
    with spans.manager.span("now", tenant_id="t"):
        pass
    assert [s.name for s in spans.exporter.get_finished_spans()] == ["now"]


def test_stats_and_health() -> None:
    manager, memory = make_manager()
    for tenant in ("a", "b", "a", "a"):
        with manager.span("op", tenant_id=tenant):
            pass
    stats = manager.get_stats()
    assert stats["cache_misses"] == 2
    assert stats["cache_hits"] == 2
    assert stats["cached_tenants"] == 2
    assert stats["spans_started"] == 4
    assert stats["export_threads"] == 1
    health = manager.health()
    assert health["status"] == "healthy"
    assert health["otlp_endpoint"] == "localhost:4317"
    assert any(s.name == "health_check" for s in memory.get_finished_spans())
    assert manager.shutdown()
    with manager.span("after-shutdown", tenant_id="a") as span:
        assert span is INVALID_SPAN


def test_seed_health_check_and_monitoring_sample() -> None:
    manager, _ = make_manager()
    stats = manager.get_stats()
    hits, misses = stats["cache_hits"], stats["cache_misses"]
    assert hits + misses == 0
    with manager.span("health_check", tenant_id="system"):
        pass
    assert manager.force_flush(timeout_millis=5000)
    stats = manager.get_stats()
    rate = stats["cache_hits"] / (stats["cache_hits"] + stats["cache_misses"])
    assert f"{rate:.2%}" == "0.00%"
    assert stats["failed_initializations"] == 0
    assert stats["cached_tenants"] == 1
    manager.shutdown()


def test_a_scope_object_is_one_block_at_a_time(spans: SpanCapture) -> None:
    # One token lives on the scope: a second entry while active would leave the
    # first context (and its tenant) attached for ever, so it is refused.
    scope = tenant_scope("acme")
    with scope:
        with pytest.raises(RuntimeError, match="already active"), scope:
            pass
        assert current_tenant() == "acme"
    assert current_tenant() is None
    with scope:  # one after the other is fine
        pass
    span_scope = spans.manager.span("once", tenant_id="acme")
    with span_scope, pytest.raises(RuntimeError, match="already active"), span_scope:
        pass
    with span_scope:
        pass
    assert [s.name for s in spans.spans()] == ["once", "once"]
    assert trace_api.get_current_span() is trace_api.INVALID_SPAN
