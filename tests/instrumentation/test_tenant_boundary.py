"""One trace, one tenant: the boundary rule, whoever starts the span and however it is parented."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from tenantrace import TelemetryConfig, current_tenant, tenant_scope
from tenantrace.instrumentation.manager import TelemetryManager
from tenantrace.propagation import (
    bind_context,
    extract_trace_context,
    inject_trace_context,
)
from tenantrace.testing import CapturedSpan, SpanCapture, capture_spans


def _by_trace(spans: list[CapturedSpan]) -> dict[str, set[str | None]]:
    tenants: dict[str, set[str | None]] = defaultdict(set)
    for span in spans:
        tenants[span.trace_id].add(span.tenant)
    return tenants


def assert_one_tenant_per_trace(spans: list[CapturedSpan]) -> None:
    mixed = {t: ts for t, ts in _by_trace(spans).items() if len(ts) > 1}
    assert not mixed, f"traces holding several tenants: {mixed}"
    by_id = {span.span_id: span for span in spans}
    for span in spans:
        parent = by_id.get(span.parent_id or "")
        if parent is not None:  # a local parent: same tenant, same trace
            assert (parent.tenant, parent.trace_id) == (span.tenant, span.trace_id)


def boundary_links(span: CapturedSpan) -> list[Any]:
    assert span.raw is not None
    return [link for link in span.raw.links if (link.attributes or {}).get("tenantrace.link")]


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    with capture_spans() as capture:
        yield capture


def test_a_child_of_another_tenant_starts_a_linked_trace(spans: SpanCapture) -> None:
    telemetry = spans.manager
    with telemetry.span("root"), tenant_scope("acme"), telemetry.span("acme work"):
        pass
    root, acme = spans.one("root"), spans.one("acme work")
    assert root.tenant == "default" and acme.tenant == "acme"
    assert acme.trace_id != root.trace_id and acme.parent_id is None
    (link,) = boundary_links(acme)
    assert f"{link.context.span_id:016x}" == root.span_id
    assert dict(link.attributes) == {"tenantrace.link": "parent"}  # names no tenant


def test_same_tenant_keeps_one_trace_across_threads_and_tasks(spans: SpanCapture) -> None:
    telemetry = spans.manager

    def work() -> None:
        with telemetry.span("in thread"):
            pass

    with tenant_scope("acme"), telemetry.span("request"), ThreadPoolExecutor(2) as pool:
        pool.submit(bind_context(work)).result()
    request, child = spans.one("request"), spans.one("in thread")
    assert child.trace_id == request.trace_id and child.parent_id == request.span_id
    assert boundary_links(child) == []


@pytest.mark.parametrize("via", ["manager", "third party"])
def test_children_of_a_span_made_current_with_use_span_inherit_its_tenant(
    spans: SpanCapture, via: str
) -> None:
    telemetry = spans.manager
    with tenant_scope("globex"):
        acme = telemetry.start_span("acme job", tenant_id="acme")
        with trace.use_span(acme, end_on_exit=True):
            assert current_tenant() == "acme"
            if via == "manager":
                with telemetry.span("child"):
                    pass
            else:
                with trace.get_tracer("lib").start_as_current_span("child"):
                    pass
        assert current_tenant() == "globex"
    child, job = spans.one("child"), spans.one("acme job")
    assert (child.tenant, child.trace_id, child.parent_id) == ("acme", job.trace_id, job.span_id)


def test_a_tenant_scope_inside_a_span_switches_the_tenant(spans: SpanCapture) -> None:
    telemetry = spans.manager
    with tenant_scope("acme"), telemetry.span("acme"):
        with tenant_scope("globex"):
            assert current_tenant() == "globex"
            with telemetry.span("globex"):
                pass
        assert current_tenant() == "acme"
    assert spans.one("globex").tenant == "globex"
    assert_one_tenant_per_trace(spans.spans())


def test_attach_of_a_context_holding_a_span_brings_its_tenant(spans: SpanCapture) -> None:
    telemetry = spans.manager
    acme = telemetry.start_span("acme job", tenant_id="acme")
    token = otel_context.attach(trace.set_span_in_context(acme))
    try:
        with telemetry.span("child"):
            pass
    finally:
        otel_context.detach(token)
        acme.end()
    assert spans.one("child").tenant == "acme"


def test_a_sampled_out_parent_keeps_its_children_out_too() -> None:
    config = TelemetryConfig(exporter_type="memory")
    with capture_spans(config) as spans:
        # A manager whose root sampler drops everything: children must not
        # become sampled roots of new traces.
        manager = TelemetryManager(
            spans.manager.config, ParentBased(ALWAYS_OFF), exporter=spans.exporter
        )
        with tenant_scope("acme"), manager.span("dropped root") as root:
            assert not root.is_recording()
            assert current_tenant() == "acme"
            with manager.span("child") as child:
                assert not child.is_recording()
                assert child.get_span_context().trace_id == root.get_span_context().trace_id
        manager.shutdown()
        assert spans.names() == []


def test_keep_traces_whole_when_configured() -> None:
    with capture_spans(TelemetryConfig(exporter_type="memory", cross_tenant_traces="keep")) as s:
        with s.manager.span("root"), tenant_scope("acme"), s.manager.span("acme work"):
            pass
        root, acme = s.one("root"), s.one("acme work")
    assert acme.trace_id == root.trace_id and acme.parent_id == root.span_id


# ----------------------------------------------------------------- remote hops


def _remote_call(trust: bool, tenant: str | None) -> None:
    """Inject in the caller's context, extract as a server would (fresh context)."""
    headers = inject_trace_context()
    token = otel_context.attach(otel_context.Context())
    try:
        ctx = extract_trace_context(headers, trust=trust)
        with otel_context_attached(ctx):
            telemetry = _manager()
            with telemetry.span("server", tenant_id=tenant):
                pass
    finally:
        otel_context.detach(token)


class otel_context_attached:
    def __init__(self, ctx: otel_context.Context) -> None:
        self._ctx = ctx

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._ctx)

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)


def _manager() -> TelemetryManager:
    from tenantrace import get_telemetry_manager

    return get_telemetry_manager()


def test_a_trusted_same_tenant_hop_continues_the_trace(spans: SpanCapture) -> None:
    with tenant_scope("acme"), spans.manager.span("client"):
        _remote_call(trust=True, tenant=None)
    client, server = spans.one("client"), spans.one("server")
    assert server.tenant == "acme"
    assert (server.trace_id, server.parent_id) == (client.trace_id, client.span_id)


def test_an_untrusted_hop_never_joins_the_callers_trace(spans: SpanCapture) -> None:
    with tenant_scope("acme"), spans.manager.span("client"):
        _remote_call(trust=False, tenant="acme")  # even the same tenant, said locally
    client, server = spans.one("client"), spans.one("server")
    assert server.trace_id != client.trace_id
    (link,) = boundary_links(server)
    assert f"{link.context.span_id:016x}" == client.span_id


def test_a_trusted_hop_into_another_tenant_starts_a_new_trace(spans: SpanCapture) -> None:
    with tenant_scope("acme"), spans.manager.span("client"):
        _remote_call(trust=True, tenant="globex")
    client, server = spans.one("client"), spans.one("server")
    assert server.tenant == "globex" and server.trace_id != client.trace_id


def test_a_forged_traceparent_cannot_put_a_span_in_a_victims_trace(spans: SpanCapture) -> None:
    victim = "0af7651916cd43dd8448eb211c80319c"
    forged = {"traceparent": f"00-{victim}-b7ad6b7169203331-01", "baggage": "tenant.id=mallory"}
    with otel_context_attached(extract_trace_context(forged)), spans.manager.span("handler"):
        pass
    assert spans.one("handler").trace_id != victim


# ------------------------------------------------------------ property test

_TENANTS = ("default", "acme", "globex", "initech")


@st.composite
def _programs(draw: st.DrawFn, depth: int = 0) -> list[tuple[Any, ...]]:
    ops = []
    for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
        kind = draw(st.sampled_from(["span", "scope", "use_span", "hop", "thread", "third"]))
        tenant = draw(st.sampled_from((None, *_TENANTS)))
        body = draw(_programs(depth + 1)) if depth < 3 else []
        ops.append((kind, tenant, draw(st.booleans()), body))
    return ops


def _run(program: list[tuple[Any, ...]], telemetry: TelemetryManager) -> None:
    for kind, tenant, flag, body in program:
        if kind == "span":
            with telemetry.span("span", tenant_id=tenant):
                _run(body, telemetry)
        elif kind == "scope":
            with tenant_scope(tenant or "default"):
                _run(body, telemetry)
        elif kind == "use_span":
            span = telemetry.start_span("used", tenant_id=tenant)
            with trace.use_span(span, end_on_exit=True):
                _run(body, telemetry)
        elif kind == "third":
            with trace.get_tracer("lib").start_as_current_span("third"):
                _run(body, telemetry)
        elif kind == "thread":
            with ThreadPoolExecutor(1) as pool:
                pool.submit(bind_context(_run), body, telemetry).result()
        else:  # a hop to "another process": only the carrier crosses
            headers = inject_trace_context()
            token = otel_context.attach(otel_context.Context())
            try:
                carried = extract_trace_context(headers, trust=flag)
                with otel_context_attached(carried), telemetry.span("server", tenant_id=tenant):
                    _run(body, telemetry)
            finally:
                otel_context.detach(token)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs())
def test_no_trace_id_is_ever_exported_under_two_tenants(program: list[tuple[Any, ...]]) -> None:
    with capture_spans() as spans:
        with tenant_scope("acme"), spans.manager.span("entry"):
            _run(program, spans.manager)
        exported = spans.spans()
    assert_one_tenant_per_trace(exported)
    for span in exported:  # the Resource and the span attribute agree
        assert span.attributes.get("tenant.id", span.tenant) == span.tenant


def test_a_trusted_caller_whose_tenant_was_withheld_is_not_continued(spans: SpanCapture) -> None:
    # The caller's egress policy kept the tenant off this hop: nothing vouches for
    # its trace being the callee's tenant's, even though the hop is trusted.
    from tenantrace.propagation import EgressPolicy, set_egress_policy

    set_egress_policy(EgressPolicy(baggage_without_url=False))
    try:
        with tenant_scope("acme"), spans.manager.span("client"):
            headers = inject_trace_context()
        assert "baggage" not in headers
        carried = extract_trace_context(headers, trust=True)
        with otel_context_attached(carried), spans.manager.span("server"):
            pass
    finally:
        set_egress_policy(None)
    client, server = spans.one("client"), spans.one("server")
    assert server.tenant == "default" and server.trace_id != client.trace_id
    assert_one_tenant_per_trace(spans.spans())
