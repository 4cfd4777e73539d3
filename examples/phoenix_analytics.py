"""Sessions and analytics end to end: send a conversation, read it back, write a report.

With a Phoenix server (``phoenix serve``) set ``PHOENIX_URL`` (its HTTP address,
e.g. http://localhost:6006) and ``PHOENIX_GRPC_ENDPOINT`` (e.g. localhost:4317):

    PHOENIX_URL=http://localhost:6006 PHOENIX_GRPC_ENDPOINT=localhost:4317 \
        python examples/phoenix_analytics.py

Without them it shows the session attributes on spans captured in memory.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta

from tenantrace import BatchExportConfig, TelemetryConfig, TelemetryManager, using_session
from tenantrace.testing import capture_spans

SESSION = f"example-session-{int(time.time())}"
QUESTIONS = ("find basketball videos", "show me dunks", "only from 2023")


def converse(manager: TelemetryManager, tenant: str) -> None:
    """Three turns of one conversation; each turn is one trace in the session."""
    for question in QUESTIONS:
        with (
            using_session(SESSION, user_id="user-42"),
            manager.span("agent.turn", tenant_id=tenant) as span,
        ):
            span.set_attribute("input.value", question)
            with manager.span("video_agent.search", attributes={"search.profile": "fast"}):
                time.sleep(0.01)
            span.set_attribute("output.value", f"3 videos for {question!r}")


def offline() -> None:
    with capture_spans() as spans:
        converse(spans.manager, "acme")
    for span in spans.spans():
        print(f"{span.name:20} tenant={span.tenant} session={span.attributes['session.id']}")
    print("set PHOENIX_URL and PHOENIX_GRPC_ENDPOINT to send them to Phoenix and read them back")


def with_phoenix(url: str, grpc_endpoint: str) -> None:
    from tenantrace.analytics import PhoenixAnalytics, summarize, write_report

    manager = TelemetryManager(
        TelemetryConfig(otlp_endpoint=grpc_endpoint, batch_config=BatchExportConfig())
    )
    started = datetime.now()
    converse(manager, "acme")
    manager.force_flush(timeout_millis=10_000)
    manager.shutdown()

    print(f"session {SESSION} of tenant acme sent; reading it back from {url}")
    with PhoenixAnalytics(phoenix_url=url) as phoenix:
        turns = phoenix.get_session_turns(SESSION, tenant_id="acme")
        deadline = time.monotonic() + 30
        while len(turns) < len(QUESTIONS) and time.monotonic() < deadline:
            time.sleep(0.5)  # Phoenix stores spans shortly after it acknowledges them
            turns = phoenix.get_session_turns(SESSION, tenant_id="acme")
        for turn in turns:
            print(f"turn {turn.index}: {turn.input!r} -> {turn.output!r}", end=" ")
            print(f"({turn.duration_ms:.1f} ms)")
        phoenix.log_session_outcome(
            SESSION, "success", score=1.0, explanation="all answered", tenant_id="acme"
        )
        phoenix.export_session_trajectories([SESSION], "trajectories.jsonl", tenant_id="acme")
        traces = phoenix.get_traces(started - timedelta(seconds=5), tenant_id="acme")
        for operation, stats in summarize(traces).items():
            print(f"{operation}: {stats['count']} traces, p95 {stats['p95_latency']:.1f} ms")
        print("report:", write_report(traces, "report.html", title="acme"))
    if len(turns) != len(QUESTIONS):
        sys.exit(f"expected {len(QUESTIONS)} turns in Phoenix, found {len(turns)}")


if __name__ == "__main__":
    url, grpc_endpoint = os.environ.get("PHOENIX_URL"), os.environ.get("PHOENIX_GRPC_ENDPOINT")
    if url and grpc_endpoint:
        with_phoenix(url, grpc_endpoint)
    else:
        offline()
