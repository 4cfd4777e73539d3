"""Two real processes: an ASGI service under uvicorn calling a second one with httpx.

One trace across both; the tenant routed to its project at the receiver, but
only when the receiver's trust policy accepts the caller; baggage stripped
toward a host that is not on the egress allowlist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = Path(__file__).with_name("two_process_app.py")


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, str(APP), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the port, once the socket listens
    if not line.strip().isdigit():
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"service {args[0]} did not start: {line!r}\n{err}")
    return process, int(line)


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[str, str]]:
    back, back_port = _start("back")
    try:
        front, front_port = _start("front", "--peer-port", str(back_port))
        try:
            yield f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{back_port}"
        finally:
            front.terminate()
            front.communicate(timeout=10)
    finally:
        back.terminate()
        back.communicate(timeout=10)


def _spans(base: str, name: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{base}/spans", timeout=10).json()
    return [span for span in found if span["name"] == name]


def test_one_trace_and_the_tenant_routed_at_the_receiver(services: tuple[str, str]) -> None:
    front, back = services
    answer = httpx.post(f"{front}/checkout", headers={"X-Tenant": "acme"}, timeout=20).json()
    trace_id = answer["trace_id"]
    assert answer["work"] == {"tenant": "acme", "trace_id": trace_id}

    [checkout] = [s for s in _spans(front, "front.checkout") if s["trace_id"] == trace_id]
    [work] = [s for s in _spans(back, "back.work") if s["trace_id"] == trace_id]
    assert (checkout["tenant"], checkout["project"]) == ("acme", "front-acme")
    assert (work["tenant"], work["project"]) == ("acme", "back-acme")  # the receiver's project
    assert work["parent_id"] == checkout["span_id"]  # one trace, parent across the wire
    assert work["kind"] == "SERVER"


def test_baggage_goes_to_the_allowlisted_host_only(services: tuple[str, str]) -> None:
    front, _ = services
    answer = httpx.post(f"{front}/checkout", headers={"X-Tenant": "globex"}, timeout=20).json()
    assert answer["sent"]["baggage"] == "tenant.id=globex"  # to 127.0.0.1: allowlisted
    echoed = answer["echo"]  # what the not-allowlisted host (localhost) received
    assert echoed["traceparent"].split("-")[1] == answer["trace_id"]
    assert "baggage" not in echoed
    assert "globex" not in repr(echoed)


def test_a_caller_without_the_service_token_cannot_pick_the_tenant(
    services: tuple[str, str],
) -> None:
    front, back = services
    rejected_before = httpx.get(f"{back}/stats", timeout=10).json()["rejected_tenants"]
    answer = httpx.post(
        f"{front}/checkout", params={"forge": "1"}, headers={"X-Tenant": "acme"}, timeout=20
    ).json()
    assert answer["work"]["tenant"] is None
    # One trace, one tenant: an untrusted caller's trace is not continued, but linked.
    [work] = [s for s in _spans(back, "back.work") if answer["trace_id"] in s["linked_traces"]]
    assert work["trace_id"] != answer["trace_id"] and work["parent_id"] is None
    assert (work["tenant"], work["project"]) == ("default", "back-default")
    assert httpx.get(f"{back}/stats", timeout=10).json()["rejected_tenants"] == rejected_before + 1
