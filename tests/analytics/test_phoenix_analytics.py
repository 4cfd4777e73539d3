"""PhoenixAnalytics against a real Phoenix: what was sent is what is read back.

Two tenants, two multi-turn sessions and a few routing calls are exported over
OTLP gRPC to the session's Phoenix; the figures read back through
``PhoenixAnalytics`` (counts, statuses, durations, sessions, outcomes) are
compared with what the test measured while sending.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from phoenix_server import PhoenixServer, wait_for_spans
from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, using_session
from tenantrace.analytics import PhoenixAnalytics, PhoenixError, summarize, time_series

pytestmark = pytest.mark.phoenix

TENANTS = ("an_acme", "an_globex")
SESSIONS = {"an_acme": ("sess-acme-1", 3), "an_globex": ("sess-globex-1", 2)}
ROUTING_CALLS = 4  # per tenant; the last one of each tenant fails
# A span's duration in Phoenix and the time measured around its body differ by
# the cost of starting and ending the span, well under this.
TOLERANCE_MS = 15.0


@dataclass
class Sent:
    started: datetime
    ended: datetime = field(default_factory=lambda: datetime.now(UTC))
    routing_ms: dict[str, list[float]] = field(default_factory=dict)
    turns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def _send(manager: TelemetryManager) -> Sent:
    sent = Sent(started=datetime.now(UTC))
    for tenant in TENANTS:
        durations: list[float] = []
        for i in range(ROUTING_CALLS):
            begin = time.perf_counter()
            try:
                with manager.span(
                    "cogniverse.routing",
                    tenant_id=tenant,
                    attributes={"search.profile": f"profile-{i % 2}", "routing.strategy": "fast"},
                ):
                    time.sleep(0.01 * (i + 1))
                    if i == ROUTING_CALLS - 1:
                        raise TimeoutError("backend timed out")
            except TimeoutError:
                pass
            durations.append((time.perf_counter() - begin) * 1000)
        sent.routing_ms[tenant] = durations
        session_id, turns = SESSIONS[tenant]
        sent.turns[tenant] = []
        for turn in range(turns):
            question, answer = f"question {turn} of {tenant}", f"answer {turn}"
            with (
                using_session(session_id, user_id=f"user-{tenant}"),
                manager.span("chat.turn", tenant_id=tenant) as span,
            ):
                span.set_attribute("input.value", question)
                with manager.span("chat.retrieve"):
                    time.sleep(0.002)
                span.set_attribute("output.value", answer)
            sent.turns[tenant].append((question, answer))
            time.sleep(0.005)  # distinct start times: the turns have an order
    assert manager.force_flush(timeout_millis=20_000)
    sent.ended = datetime.now(UTC)
    return sent


@pytest.fixture(scope="module")
def sent(phoenix: PhoenixServer) -> Iterator[Sent]:
    manager = TelemetryManager(
        TelemetryConfig(
            otlp_endpoint=phoenix.grpc_endpoint,
            batch_config=BatchExportConfig(schedule_delay_millis=20),
        )
    )
    try:
        result = _send(manager)
        assert manager.get_stats()["export_failures"] == 0
    finally:
        manager.shutdown(timeout_millis=10_000)
    for tenant in TENANTS:
        turns = SESSIONS[tenant][1]
        wait_for_spans(phoenix.http_url, f"cogniverse-{tenant}", ROUTING_CALLS + 2 * turns)
    yield result


@pytest.fixture
def analytics(phoenix: PhoenixServer) -> Iterator[PhoenixAnalytics]:
    with PhoenixAnalytics(phoenix_url=phoenix.http_url) as reader:
        yield reader


def test_traces_of_a_tenant_match_what_was_sent(sent: Sent, analytics: PhoenixAnalytics) -> None:
    for tenant in TENANTS:
        traces = analytics.get_traces(
            sent.started - timedelta(seconds=1),
            sent.ended + timedelta(seconds=1),
            operation_filter="cogniverse.routing",
            tenant_id=tenant,
        )
        assert [t.operation for t in traces] == ["cogniverse.routing"] * ROUTING_CALLS
        assert {t.tenant_id for t in traces} == {tenant}
        assert {t.project for t in traces} == {f"cogniverse-{tenant}"}
        assert [t.status for t in traces] == ["success"] * (ROUTING_CALLS - 1) + ["error"]
        assert traces[-1].error is not None and "backend timed out" in traces[-1].error
        assert [t.profile for t in traces] == ["profile-0", "profile-1"] * (ROUTING_CALLS // 2)
        assert {t.strategy for t in traces} == {"fast"}
        for trace, measured in zip(traces, sent.routing_ms[tenant], strict=True):
            assert trace.duration_ms <= measured + 1.0
            assert trace.duration_ms >= measured - TOLERANCE_MS
        assert len({t.trace_id for t in traces}) == ROUTING_CALLS


def test_without_a_filter_one_entry_per_trace_across_projects(
    sent: Sent, analytics: PhoenixAnalytics
) -> None:
    traces = analytics.get_traces(sent.started - timedelta(seconds=1), sent.ended)
    ours = [t for t in traces if t.tenant_id in TENANTS]
    turns = sum(count for _, count in SESSIONS.values())
    # Roots only: routing calls and chat turns, never the chat.retrieve children.
    assert len(ours) == len(TENANTS) * ROUTING_CALLS + turns
    assert "chat.retrieve" not in {t.operation for t in ours}
    assert ours == sorted(ours, key=lambda t: t.timestamp)


def test_summaries_per_tenant_and_operation(sent: Sent, analytics: PhoenixAnalytics) -> None:
    traces = [
        t
        for t in analytics.get_traces(sent.started - timedelta(seconds=1), sent.ended)
        if t.tenant_id in TENANTS
    ]
    by_tenant = summarize(traces, by="tenant")
    for tenant in TENANTS:
        turns = SESSIONS[tenant][1]
        assert by_tenant[tenant]["count"] == ROUTING_CALLS + turns
        assert by_tenant[tenant]["error_count"] == 1
    by_operation = summarize(traces, by="operation")
    assert by_operation["cogniverse.routing"]["error_rate"] == pytest.approx(1 / ROUTING_CALLS)
    slowest = max(max(ms) for ms in sent.routing_ms.values())
    assert by_operation["cogniverse.routing"]["max_latency"] == pytest.approx(slowest, abs=5.0)
    by_session = summarize(traces, by="session")
    assert by_session["an_acme:sess-acme-1"]["count"] == 3
    series = time_series(traces, timedelta(seconds=1))
    assert sum(point["count"] for point in series) == len(traces)


def test_a_time_range_with_no_traces_is_empty(analytics: PhoenixAnalytics, sent: Sent) -> None:
    future = sent.ended + timedelta(days=1)
    assert analytics.get_traces(future, future + timedelta(hours=1), tenant_id=TENANTS[0]) == []
    assert analytics.get_traces(tenant_id="never-sent-anything") == []


def test_session_turns_come_back_in_order_and_export_as_jsonl(
    sent: Sent, analytics: PhoenixAnalytics, tmp_path: Path
) -> None:
    for tenant in TENANTS:
        session_id, count = SESSIONS[tenant]
        turns = analytics.get_session_turns(session_id, tenant_id=tenant)
        assert [(t.input, t.output) for t in turns] == sent.turns[tenant]
        assert [t.index for t in turns] == list(range(count))
        assert all(t.operation == "chat.turn" and t.duration_ms >= 2.0 for t in turns)
        assert all(t.attributes["user.id"] == f"user-{tenant}" for t in turns)
    out = tmp_path / "trajectories.jsonl"
    ids = [f"{t}:{SESSIONS[t][0]}" for t in TENANTS] + ["no-such-session"]
    assert analytics.export_session_trajectories(ids, out) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["session_id"] for line in lines] == ids[:2]
    assert [line["tenant_id"] for line in lines] == list(TENANTS)
    first = lines[0]["turns"][0]
    assert first["input"] == sent.turns[TENANTS[0]][0][0]
    assert set(first) >= {"index", "operation", "start_time", "duration_ms", "status", "output"}


def test_a_session_outcome_is_a_phoenix_annotation(sent: Sent, analytics: PhoenixAnalytics) -> None:
    session_id = SESSIONS[TENANTS[0]][0]
    annotation_id = analytics.log_session_outcome(
        session_id,
        "partial",
        score=0.5,
        explanation="found videos, not the dunks",
        tenant_id=TENANTS[0],
    )
    assert annotation_id
    [outcome] = analytics.get_session_outcomes(session_id, tenant_id=TENANTS[0])
    assert outcome["name"] == "outcome"
    assert outcome["result"] == {
        "label": "partial",
        "score": 0.5,
        "explanation": "found videos, not the dunks",
    }
    with pytest.raises(ValueError, match="outcome must be one of"):
        analytics.log_session_outcome(session_id, "great")  # type: ignore[arg-type]
    with pytest.raises(PhoenixError, match="404"):
        analytics.log_session_outcome("no-such-session", "failure", wait_s=0.5)


def test_the_seed_sample_runs_as_written(sent: Sent, phoenix: PhoenixServer) -> None:
    # The Cogniverse seed's PhoenixAnalytics sample; only the import path and URL differ.
    from datetime import datetime, timedelta

    from tenantrace.analytics import PhoenixAnalytics

    analytics = PhoenixAnalytics(phoenix_url=phoenix.http_url)

    # Fetch recent traces
    end_time = datetime.now()
    start_time = end_time - timedelta(hours=1)

    traces = analytics.get_traces(
        start_time=start_time, end_time=end_time, operation_filter="cogniverse.routing", limit=1000
    )

    # Analyze traces
    lines = []
    for trace in traces:
        lines.append(f"Trace {trace.trace_id}:")
        lines.append(f"  Operation: {trace.operation}")
        lines.append(f"  Duration: {trace.duration_ms:.2f}ms")
        lines.append(f"  Status: {trace.status}")
        lines.append(f"  Profile: {trace.profile}")
        lines.append(f"  Strategy: {trace.strategy}")
    assert len(traces) >= len(TENANTS) * ROUTING_CALLS
    assert "  Strategy: fast" in lines


def test_two_tenants_with_the_same_session_id_keep_their_own_sessions(
    phoenix: PhoenixServer, analytics: PhoenixAnalytics
) -> None:
    # Phoenix keeps one session per session.id across projects: without the
    # tenant in the exported id, b's turn would show up in a's session.
    manager = TelemetryManager(TelemetryConfig(otlp_endpoint=phoenix.grpc_endpoint))
    try:
        for tenant in ("iso_a", "iso_b"):
            with (
                using_session("shared-id"),
                manager.span("chat.turn", tenant_id=tenant) as span,
            ):
                span.set_attribute("input.value", f"private to {tenant}")
        assert manager.force_flush(timeout_millis=10_000)
    finally:
        manager.shutdown()
    for tenant in ("iso_a", "iso_b"):
        wait_for_spans(phoenix.http_url, f"cogniverse-{tenant}", 1)
        [turn] = analytics.get_session_turns("shared-id", tenant_id=tenant)
        assert turn.input == f"private to {tenant}"
        assert turn.session_id == f"{tenant}:shared-id"
    assert analytics.get_session_turns("shared-id") == []


def test_a_service_continuing_a_callers_trace_has_its_entry_span_counted(
    phoenix: PhoenixServer, analytics: PhoenixAnalytics
) -> None:
    from tenantrace.propagation import extract_trace_context

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # not in Phoenix
    manager = TelemetryManager(TelemetryConfig(otlp_endpoint=phoenix.grpc_endpoint))
    try:
        # A trusted caller of the same tenant: its trace is continued (one trace, one tenant).
        carrier = {"traceparent": caller, "baggage": "tenant.id=an_remote"}
        ctx = extract_trace_context(carrier, trust=True)
        with (
            manager.span("POST /search", tenant_id="an_remote", context=ctx),
            manager.span("db.query"),
        ):
            pass
        assert manager.force_flush(timeout_millis=10_000)
    finally:
        manager.shutdown()
    wait_for_spans(phoenix.http_url, "cogniverse-an_remote", 2)
    [entry] = analytics.get_traces(tenant_id="an_remote")
    assert entry.operation == "POST /search"
    assert entry.trace_id == "0af7651916cd43dd8448eb211c80319c"


def test_every_span_is_read_with_its_root_marked(
    sent: Sent, analytics: PhoenixAnalytics, phoenix: PhoenixServer
) -> None:
    tenant = TENANTS[0]
    spans = analytics.get_spans(
        sent.started - timedelta(seconds=1), sent.ended + timedelta(seconds=1), tenant_id=tenant
    )
    turns = SESSIONS[tenant][1]
    names = [s.operation for s in spans]
    # The chat.retrieve children are there now, below their chat.turn roots.
    assert sorted(set(names)) == ["chat.retrieve", "chat.turn", "cogniverse.routing"]
    assert names.count("chat.retrieve") == turns
    assert {s.operation for s in spans if s.is_root} == {"chat.turn", "cogniverse.routing"}
    assert {s.operation for s in spans if not s.is_root} == {"chat.retrieve"}
    by_span = {s.span_id: s for s in spans}
    for child in (s for s in spans if not s.is_root):
        parent = by_span[child.parent_id or ""]
        assert parent.operation == "chat.turn" and parent.trace_id == child.trace_id
    # Each span knows its project's id, as Phoenix's API gives it, for links to its UI.
    project = httpx.get(
        f"{phoenix.http_url}/v1/projects/cogniverse-{tenant}", trust_env=False
    ).json()["data"]
    assert {s.project_id for s in spans} == {project["id"]}
    assert all(s.phoenix_id for s in spans)
    root = next(s for s in spans if s.is_root)
    assert analytics.trace_url(root) == (
        f"{phoenix.http_url}/projects/{project['id']}/traces/{root.trace_id}"
    )
    # Filtered by name: spans of that name at any depth, none of them a root.
    retrieves = analytics.get_spans(
        sent.started - timedelta(seconds=1), operation_filter="chat.retrieve", tenant_id=tenant
    )
    assert len(retrieves) == turns and not any(s.is_root for s in retrieves)
    # The limit keeps the oldest.
    assert (
        analytics.get_spans(sent.started - timedelta(seconds=1), tenant_id=tenant, limit=3)
        == (spans[:3])
    )


def test_a_session_is_found_in_its_tenant(sent: Sent, analytics: PhoenixAnalytics) -> None:
    for tenant in TENANTS:
        session_id = SESSIONS[tenant][0]
        assert analytics.find_session(session_id) == [(tenant, f"{tenant}:{session_id}")]
        # The full stored id is found as it is.
        assert analytics.find_session(f"{tenant}:{session_id}") == [
            (tenant, f"{tenant}:{session_id}")
        ]
    assert analytics.find_session("no-such-session") == []
