"""The command line as a user runs it, and the HTML report as a browser shows it.

``tenantrace report`` and ``tenantrace sessions export`` read the session's real
Phoenix. Failures sit below the roots (a ``rerank`` child that fails while its
``agent.turn`` succeeds), as in the report that hid them. The report is opened
in headless Chromium with the network off, one screenshot per section (kept in
``test-artifacts/report-phoenix/``), and its links open the traces in Phoenix's UI.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from report_browser import dump_dom, pixel_stats, plotly_figures, screenshot_sections

from phoenix_server import PhoenixServer, wait_for_spans
from tenantrace import TelemetryConfig, TelemetryManager, using_session
from tenantrace.analytics.report import SECTIONS
from tenantrace.cli import main, parse_duration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TENANT = "cli_acme"
OTHER_TENANT = "cli_globex"
SESSION = "cli-session-1"
SHARED_SESSION = "cli-shared"  # recorded by both tenants
TURNS = 3  # agent.turn roots of TENANT, each with a rerank child; the second rerank fails
SECRET = "sk-live-0123456789abcdef"


def tenantrace(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed console script, in a new process, as a user would call it."""
    script = Path(sys.executable).with_name("tenantrace")
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def traced(phoenix: PhoenixServer) -> Iterator[PhoenixServer]:
    manager = TelemetryManager(TelemetryConfig(otlp_endpoint=phoenix.grpc_endpoint))
    try:
        for turn in range(TURNS):
            with (
                using_session(SESSION),
                manager.span("agent.turn", tenant_id=TENANT) as span,
            ):
                span.set_attribute("input.value", f"turn {turn}")
                try:
                    with manager.span("rerank"):
                        time.sleep(0.003)
                        if turn == 1:  # tolerated: the turn itself succeeds
                            raise ConnectionError(f"reranker refused api_key={SECRET}")
                except ConnectionError:
                    pass
                span.set_attribute("output.value", f"reply {turn}")
        for i in range(5):
            try:
                with manager.span("cogniverse.routing", tenant_id=TENANT):
                    if i == 4:
                        raise ConnectionError("vespa down")
            except ConnectionError:
                pass
        for tenant in (TENANT, OTHER_TENANT):
            with using_session(SHARED_SESSION), manager.span("agent.turn", tenant_id=tenant):
                time.sleep(0.02)
        assert manager.force_flush(timeout_millis=20_000)
    finally:
        manager.shutdown()
    wait_for_spans(phoenix.http_url, f"cogniverse-{TENANT}", 2 * TURNS + 5 + 1)
    wait_for_spans(phoenix.http_url, f"cogniverse-{OTHER_TENANT}", 1)
    yield phoenix


def _text(page: str) -> str:
    without_scripts = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_scripts)))


@pytest.mark.phoenix
def test_report_command_counts_every_span(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--since", "1h",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spans, roots = 2 * TURNS + 5 + 1, TURNS + 5 + 1
    assert f"{spans} spans (2 failed) in {roots} traces from tenant {TENANT} written to {out}" in (
        result.stdout
    )
    page = out.read_text()
    text = _text(page)
    # What is counted is said at the top; the failed child is counted, the roots apart.
    assert "Counted: every span of every operation, at any depth." in text
    assert f"{spans} spans in {roots} traces; {roots} of the spans are trace roots" in text
    assert "rerank 3 3 1 33.3%" in text  # spans, traces, failed spans, error rate
    assert "agent.turn 4 0 1" in text  # root table: traces, failed at the root, with a failure
    assert "ConnectionError" in text and "reranker refused api_key=" in text
    assert SECRET not in page
    # Plots drawn from the same figures: the rerank failure is in the error-rate bars.
    figures = plotly_figures(page)
    [bars] = figures["plot-operations-1"]["data"]
    assert dict(zip(bars["y"], bars["x"], strict=True))["rerank"] == pytest.approx(1 / 3)
    # plotly.js inlined exactly once, no script fetched from anywhere.
    counts = {marker: page.count(marker) for marker in ("Plotly.newPlot(", "window.Plotly = ")}
    assert counts == {"Plotly.newPlot(": 6, "window.Plotly = ": 1}
    assert page.count("<script src=") == 0


@pytest.mark.phoenix
def test_report_of_one_operation_at_depth(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "rerank.html"
    result = tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--operation", "rerank",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{TURNS} spans (1 failed) in {TURNS} traces" in result.stdout
    text = _text(out.read_text())
    assert "Counted: every span named 'rerank', at any depth." in text
    assert "None of the counted spans is a trace root" in text


@pytest.mark.phoenix
def test_report_limit_is_said(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "limited.html"
    result = tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--limit", "4",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "4 spans" in result.stdout and "raise --limit" in result.stdout
    assert "only the first 4 spans (oldest first) were read" in _text(out.read_text())


@pytest.mark.phoenix
def test_sessions_export_command_writes_jsonl(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "trajectories.jsonl"
    result = tenantrace(
        "sessions", "export", "--phoenix-url", traced.http_url, "--tenant", TENANT,
        "--session-id", SESSION,
        "--session-id", "unknown-session", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 session trajectory written" in result.stdout
    assert f"(1 not found in tenant {TENANT})" in result.stdout
    [line] = out.read_text().splitlines()
    record = json.loads(line)
    assert [t["input"] for t in record["turns"]] == ["turn 0", "turn 1", "turn 2"]
    assert record["tenant_id"] == TENANT


@pytest.mark.phoenix
def test_sessions_export_without_a_tenant_searches_every_tenant(
    traced: PhoenixServer, tmp_path: Path
) -> None:
    out = tmp_path / "trajectories.jsonl"
    found = tenantrace(
        "sessions", "export", "--phoenix-url", traced.http_url, "--session-id", SESSION,
        "--session-id", "never-recorded", "--out", str(out),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "1 session trajectory written" in found.stdout
    assert "(1 not found in any tenant's projects)" in found.stdout
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["session_id"] == SESSION and record["tenant_id"] == TENANT
    assert [t["input"] for t in record["turns"]] == ["turn 0", "turn 1", "turn 2"]
    # The same id in two tenants: which one is meant must be said.
    both = tenantrace(
        "sessions", "export", "--phoenix-url", traced.http_url, "--session-id", SHARED_SESSION,
        "--out", str(out),
    )  # fmt: skip
    assert both.returncode == 2
    assert f"is in several tenants ({TENANT}, {OTHER_TENANT})" in both.stderr
    assert "--tenant" in both.stderr and "Traceback" not in both.stderr
    none = tenantrace(
        "sessions", "export", "--phoenix-url", traced.http_url, "--session-id", "nope",
        "--out", str(out),
    )  # fmt: skip
    assert none.returncode == 1
    assert "0 session trajectories written" in none.stdout


@pytest.mark.phoenix
def test_doctor_is_healthy_against_phoenix_and_degraded_against_nothing(
    traced: PhoenixServer,
) -> None:
    healthy = tenantrace("doctor", "--endpoint", traced.grpc_endpoint, "--json")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["status"] == "healthy" and report["endpoint"]["reachable"] is True
    assert report["stats"]["exported_spans"] >= 1
    dead = tenantrace("doctor", "--endpoint", "127.0.0.1:9", "--timeout", "2")
    assert dead.returncode == 1, dead.stdout + dead.stderr
    assert "status: degraded" in dead.stdout and "does not accept connections" in dead.stdout


def test_a_phoenix_that_refuses_connections_is_a_clear_error(tmp_path: Path) -> None:
    result = tenantrace(
        "report", "--phoenix-url", "http://127.0.0.1:9", "--out", str(tmp_path / "r.html")
    )
    assert result.returncode == 2
    assert "Phoenix at http://127.0.0.1:9 is unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_every_command_has_help() -> None:
    for command in (["demo"], ["doctor"], ["report"], ["sessions"], ["sessions", "export"]):
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1h").total_seconds() == 3600
    assert parse_duration("2d").total_seconds() == 2 * 86400
    for bad in ("", "1", "h", "-1h", "1y"):
        with pytest.raises(Exception, match="not a duration"):
            parse_duration(bad)


@pytest.mark.phoenix
def test_the_report_renders_offline_in_headless_chromium(
    traced: PhoenixServer, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert tenantrace(
        "report", "--phoenix-url", traced.http_url, "--since", "1h", "--out", str(out)
    ).returncode == 0  # fmt: skip
    page = out.read_text()
    dom = dump_dom(out.as_uri(), tmp_path)
    # Plotly replaces each plot's empty div with an SVG drawing once it has rendered.
    assert dom.count('class="main-svg"') >= 6, dom[:2000]
    # What is drawn: one box per operation of the figure, one line per tenant.
    figures = plotly_figures(page)
    boxes = figures["plot-operations-0"]["data"]
    assert dom.count('class="trace boxes"') == len(boxes)
    assert {"agent.turn", "rerank"} <= {b["name"] for b in boxes}
    tenant_lines = {line["name"] for line in figures["plot-over-time-0"]["data"]}
    assert {TENANT, OTHER_TENANT} <= tenant_lines or any(
        name.startswith("other (") for name in tenant_lines
    )
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    shots = screenshot_sections(out, SECTIONS, ARTIFACTS / "report-phoenix", tmp_path)
    stats = pixel_stats(shots, tmp_path)
    for section in SECTIONS:  # not blank: text and tables drawn
        assert stats[section]["non_white"] > 0.005, (section, stats[section])
        assert stats[section]["luminance_std"] > 5, (section, stats[section])
    for section in ("operations", "tenants"):  # the data drawn in trace colours
        assert stats[section]["trace_colored"] > 0.002, (section, stats[section])
    # The spans here were sent within a second or two: each tenant's series is a
    # point or two, drawn as markers (a few pixels) rather than lines.
    assert stats["over-time"]["trace_colored"] > 0.0001, stats["over-time"]
    over_time = dom.split('id="plot-over-time-0"', 1)[1].split('id="plot-over-time-1"', 1)[0]
    points = sum(len(line["x"]) for line in figures["plot-over-time-0"]["data"])
    assert over_time.count('class="point"') == points


@pytest.mark.phoenix
def test_a_report_link_opens_the_trace_in_phoenix_ui(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--out", str(out)
    ).returncode == 0  # fmt: skip
    errors = out.read_text().split("<section id='errors'>", 1)[1].split("</section>", 1)[0]
    [row] = [row for row in errors.split("<tr>") if "reranker refused" in row]
    [link] = re.findall(r"href='([^']+)'", row)
    link = html.unescape(link)
    match = re.fullmatch(
        re.escape(traced.http_url)
        + r"/projects/([^/]+)/traces/([0-9a-f]{32})\?selectedSpanNodeId=.+",
        link,
    )
    assert match, link
    project_id, trace_id = match.groups()
    # The project id is the one Phoenix's API gives for the tenant's project.
    body = httpx.get(f"{traced.http_url}/v1/projects/cogniverse-{TENANT}", trust_env=False).json()
    assert body["data"]["id"] == project_id
    # Phoenix's own UI opens it: the trace, its spans and the selected span's error.
    dom = dump_dom(link, tmp_path, budget_ms=20_000, loopback=True)
    assert trace_id in dom
    assert "agent.turn" in dom and "rerank" in dom
    assert "reranker refused" in dom


@pytest.mark.phoenix
def test_the_analytics_example_runs_against_phoenix(phoenix: PhoenixServer, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "phoenix_analytics.py"
    env = {
        **os.environ,
        "PHOENIX_URL": phoenix.http_url,
        "PHOENIX_GRPC_ENDPOINT": phoenix.grpc_endpoint,
    }
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "turn 2: 'only from 2023'" in result.stdout
    assert (tmp_path / "report.html").exists() and (tmp_path / "trajectories.jsonl").exists()
