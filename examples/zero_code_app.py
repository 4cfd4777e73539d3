"""Zero-code: a FastAPI service under ``opentelemetry-instrument``, its spans routed per tenant.

Run: python examples/zero_code_app.py  (no server to install: starts two copies of
this service under ``opentelemetry-instrument``, spans printed to their stdout, sends
them a few requests, then shows where each span went)

The service sets up no telemetry and no tenant. ``opentelemetry-instrument`` loads
the FastAPI and httpx instrumentations; the environment does the rest:

- ``OTEL_PYTHON_CONFIGURATOR=tenantrace``: each span goes to its tenant's project;
- ``OTEL_PROPAGATORS=tenantrace``: the server takes the tenant from the header the
  gateway sets (``TENANTRACE_TENANT_HEADER``), not from the client's own baggage;
  the httpx client sends the tenant (as baggage) only to the hosts of
  ``TENANTRACE_EGRESS_ALLOWED_HOSTS``;
- ``TENANTRACE_TRUST_TENANT_CLAIMS``: an internal service honours the tenant its
  callers name (of these tenants), so their traces go on there.

One service, by hand (``/hello`` calls ``/whoami`` of the service on ``--peer-port``)::

    OTEL_PYTHON_CONFIGURATOR=tenantrace OTEL_PROPAGATORS=tenantrace \\
    TENANTRACE_TENANT_HEADER=x-tenant-id TENANTRACE_EGRESS_ALLOWED_HOSTS=127.0.0.1 \\
    OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4317 \\
    opentelemetry-instrument python zero_code_app.py serve --port 8000 --peer-port 8001
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request

from tenantrace import current_tenant
from tenantrace.propagation import get_trace_id

# ------------------------------------------------------------------ the service


def build_app(peer_port: int | None) -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello(hop: str = "internal") -> dict[str, Any]:
        # 127.0.0.1 is on the egress allowlist of the demo's front service;
        # "localhost" (the same peer, by another name) stands for a host that is not.
        host = "127.0.0.1" if hop == "internal" else "localhost"
        downstream = None
        if peer_port is not None:
            async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
                downstream = (await client.get(f"http://{host}:{peer_port}/whoami")).json()
        return {"tenant": current_tenant(), "trace_id": get_trace_id(), "downstream": downstream}

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {
            "tenant": current_tenant(),
            "trace_id": get_trace_id(),
            "baggage": request.headers.get("baggage"),
            "traceparent": request.headers.get("traceparent"),
        }

    return app


def serve(port: int, peer_port: int | None) -> None:
    """Serve on 127.0.0.1:``port`` (0: any free port); print the port once listening."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)  # requests wait here until uvicorn serves them
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(build_app(peer_port), log_level="warning", lifespan="off")
    # Ctrl-C (SIGINT): a normal exit, so the spans still queued are flushed.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


# ------------------------------------------------------- the demo (no arguments)

ZERO_CODE = {
    "OTEL_PYTHON_CONFIGURATOR": "tenantrace",
    "OTEL_PROPAGATORS": "tenantrace",
    "TENANTRACE_TENANT_HEADER": "x-tenant-id",
    "OTEL_TRACES_EXPORTER": "console",  # the demo prints; unset it to export over OTLP
    "TELEMETRY_SYNC_EXPORT": "true",
}
FRONT = {**ZERO_CODE, "OTEL_SERVICE_NAME": "front", "TENANTRACE_EGRESS_ALLOWED_HOSTS": "127.0.0.1"}
BACK = {
    **ZERO_CODE,
    "OTEL_SERVICE_NAME": "back",
    "TENANTRACE_TRUST_TENANT_CLAIMS": "acme,globex,default",
}
# (what, the headers front receives, which way front calls back)
REQUESTS: list[tuple[str, dict[str, str], str]] = [
    ("acme", {"x-tenant-id": "acme"}, "internal"),
    ("globex", {"x-tenant-id": "globex"}, "internal"),
    ("no tenant header", {}, "internal"),
    ("acme, claims globex", {"x-tenant-id": "acme", "baggage": "tenant.id=globex"}, "internal"),
    ("acme, external host", {"x-tenant-id": "acme"}, "external"),
]
# One line per span from tenantrace's console exporter.
SPAN_LINE = re.compile(
    r"^\[(?P<project>[^\]]+)\] tenant=(?P<tenant>\S+) (?P<name>.+) [\d.]+ms \w+ "
    r"trace=(?P<trace_id>[0-9a-f]{32}) parent=(?P<parent>\S+)$"
)


def opentelemetry_instrument() -> str:
    """The ``opentelemetry-instrument`` launcher of this interpreter's environment."""
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    found = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")
    if found is None:
        sys.exit(
            "opentelemetry-instrument not found: pip install opentelemetry-instrumentation "
            "opentelemetry-instrumentation-fastapi opentelemetry-instrumentation-httpx"
        )
    return found


class Service:
    """``opentelemetry-instrument python zero_code_app.py serve ...``, stdout to a file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.name = name
        self.stdout = log_dir / f"{name}.out"
        # Settings of this shell (an OTLP endpoint, ...) must not change the demo.
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "TENANTRACE_", "TELEMETRY_"))
        }
        with self.stdout.open("w") as out:
            self.process = subprocess.Popen(
                [opentelemetry_instrument(), sys.executable, __file__, "serve", *args],
                stdout=out,
                stdin=subprocess.DEVNULL,
                env={**clean, **env, "PYTHONUNBUFFERED": "1"},
            )
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout_s: float = 60) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            line, newline, _ = self.stdout.read_text().partition("\n")
            if newline:
                return int(line)
            time.sleep(0.05)
        self.stop()
        sys.exit(f"the {self.name} service did not start")

    def stop(self) -> None:
        # SIGINT: uvicorn shuts down, the interpreter exits normally and flushes spans.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=20)

    def spans(self) -> list[dict[str, str]]:
        lines = self.stdout.read_text().splitlines()[1:]  # after the port
        return [{"service": self.name, **m.groupdict()} for m in map(SPAN_LINE.match, lines) if m]


def demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        back = Service("back", BACK, Path(tmp))
        try:
            front = Service("front", FRONT, Path(tmp), "--peer-port", str(back.port))
            try:
                base = f"http://127.0.0.1:{front.port}"
                with httpx.Client(base_url=base, timeout=20, trust_env=False) as client:
                    answers = [
                        client.get("/hello", params={"hop": hop}, headers=headers).json()
                        for _, headers, hop in REQUESTS
                    ]
            finally:
                front.stop()
        finally:
            back.stop()
        spans = front.spans() + back.spans()

    for (what, _, hop), answer in zip(REQUESTS, answers, strict=True):
        down = answer["downstream"]
        trace = "same trace" if down["trace_id"] == answer["trace_id"] else "a new trace"
        print(
            f"{what:20} front: {answer['tenant']:7} -> {hop} hop, baggage "
            f"{down['baggage']!s:17} -> back: {down['tenant']:7} ({trace})"
        )
    print()
    traces: dict[str, list[dict[str, str]]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    for trace_id, members in traces.items():
        count = Counter(span["service"] for span in members)
        shown = ", ".join(f"{count[s]} of {s}" for s in ("front", "back") if count[s])
        print(f"trace {trace_id[:8]}: spans {shown:17} in {members[0]['project']}")

    for span in spans:
        assert span["project"] == f"cogniverse-{span['tenant']}", span
    assert all(len({s["project"] for s in members}) == 1 for members in traces.values())
    ran_for = [(a["tenant"], a["downstream"]["tenant"]) for a in answers]
    assert ran_for == [
        ("acme", "acme"),
        ("globex", "globex"),
        ("default", "default"),
        ("acme", "acme"),  # the gateway's header, not the client's claim
        ("acme", "default"),  # no baggage to a host off the allowlist
    ], ran_for
    assert answers[-1]["downstream"]["baggage"] is None


def main() -> None:
    parser = argparse.ArgumentParser(description="A zero-code FastAPI service, or the demo.")
    parser.add_argument("command", nargs="?", choices=["serve"], help="serve; no command: demo")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peer-port", type=int)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.peer_port)
    else:
        demo()


if __name__ == "__main__":
    main()
