"""The command line as a user runs it, and the HTML report as a browser shows it.

``tenantrace report`` and ``tenantrace sessions export`` read the session's real
Phoenix; the report is opened in headless Chromium with the network off and
its plots must render (a screenshot is kept in ``test-artifacts/``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix_server import PhoenixServer, wait_for_spans
from tenantrace import TelemetryConfig, TelemetryManager, using_session
from tenantrace.cli import main, parse_duration

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TENANT = "cli_acme"
SESSION = "cli-session-1"


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
        for turn in range(3):
            with (
                using_session(SESSION),
                manager.span("agent.turn", tenant_id=TENANT) as span,
            ):
                span.set_attribute("input.value", f"turn {turn}")
                span.set_attribute("output.value", f"reply {turn}")
                time.sleep(0.003)
        for i in range(5):
            try:
                with manager.span("cogniverse.routing", tenant_id=TENANT):
                    if i == 4:
                        raise ConnectionError("vespa down")
            except ConnectionError:
                pass
        assert manager.force_flush(timeout_millis=20_000)
    finally:
        manager.shutdown()
    wait_for_spans(phoenix.http_url, f"cogniverse-{TENANT}", 8)
    yield phoenix


@pytest.mark.phoenix
def test_report_command_writes_a_self_contained_html(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--since", "1h",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"8 traces from tenant {TENANT} written to {out}" in result.stdout
    page = out.read_text()
    found = {name: name in page for name in ("cogniverse.routing", "agent.turn")}
    assert found == {"cogniverse.routing": True, "agent.turn": True}
    # Four plots, plotly.js inlined exactly once, no script fetched from anywhere.
    counts = {marker: page.count(marker) for marker in ("Plotly.newPlot(", "window.Plotly = ")}
    assert counts == {"Plotly.newPlot(": 4, "window.Plotly = ": 1}
    assert page.count("<script src=") == 0


@pytest.mark.phoenix
def test_sessions_export_command_writes_jsonl(traced: PhoenixServer, tmp_path: Path) -> None:
    out = tmp_path / "trajectories.jsonl"
    result = tenantrace(
        "sessions", "export", "--phoenix-url", traced.http_url, "--tenant", TENANT,
        "--session-id", SESSION,
        "--session-id", "unknown-session", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 session trajectory written" in result.stdout and "(1 not found)" in result.stdout
    [line] = out.read_text().splitlines()
    record = json.loads(line)
    assert [t["input"] for t in record["turns"]] == ["turn 0", "turn 1", "turn 2"]
    assert record["tenant_id"] == TENANT


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


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.phoenix
def test_the_report_renders_offline_in_headless_chromium(
    traced: PhoenixServer, tmp_path: Path
) -> None:
    browser = _chromium()
    if browser is None:
        message = "Debian's chromium is not installed (scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "report.html"
    assert tenantrace(
        "report", "--phoenix-url", traced.http_url, "--tenant", TENANT, "--out", str(out)
    ).returncode == 0  # fmt: skip
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}",
        # No network at all: anything the page fetched from outside would fail.
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=10000", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    # Plotly replaces each plot's empty div with an SVG drawing once it has rendered.
    assert dom.stdout.count('class="main-svg"') >= 4, dom.stdout[:2000]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    screenshot = subprocess.run(
        [browser, *flags, "--virtual-time-budget=10000", "--window-size=1200,2400",
         f"--screenshot={shot}", out.as_uri()],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert screenshot.returncode == 0 and shot.stat().st_size > 20_000, screenshot.stderr[-2000:]


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
