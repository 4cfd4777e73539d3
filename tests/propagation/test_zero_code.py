"""Zero-code: a FastAPI app under ``opentelemetry-instrument``, two tenants from a trusted header.

``examples/zero_code_app.py serve`` runs as two processes under ``opentelemetry-instrument``
(the installed FastAPI and httpx instrumentations), configured by the environment only:
``OTEL_PYTHON_CONFIGURATOR=tenantrace``, ``OTEL_PROPAGATORS=tenantrace``.

- front faces the gateway, which sets ``x-tenant-id`` (``TENANTRACE_TENANT_HEADER``); a
  tenant the client claims in its own ``baggage`` is refused; baggage goes out to
  ``127.0.0.1`` only (``TENANTRACE_EGRESS_ALLOWED_HOSTS``). ``GET /hello`` calls back's
  ``GET /whoami`` with httpx, at ``127.0.0.1`` (allowlisted) or ``localhost`` (not).
- back is an internal service that honours its callers' claims of its tenants
  (``TENANTRACE_TRUST_TENANT_CLAIMS=acme,globex,default``).

Requests come with ``x-tenant-id: acme``, ``globex``, none, and with forged claims. Every
span (front's SERVER span and the ASGI internal spans, the httpx CLIENT span, back's spans)
must be in its own tenant's project and nowhere else, no trace in two projects, one SERVER
span per request and process (no FastAPI-native sibling). Read back from a real Phoenix
(front exports over OTLP gRPC, back over OTLP HTTP) and, faster, from the console exporter.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix_server import PhoenixServer, phoenix_project_spans, phoenix_projects

APP = Path(__file__).resolve().parents[2] / "examples" / "zero_code_app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ZERO_CODE = {
    "OTEL_PYTHON_CONFIGURATOR": "tenantrace",
    "OTEL_PROPAGATORS": "tenantrace",
    "TENANTRACE_TENANT_HEADER": "x-tenant-id",
}
FRONT = {
    **ZERO_CODE,
    "OTEL_SERVICE_NAME": "zero-code-front",
    "TENANTRACE_EGRESS_ALLOWED_HOSTS": "127.0.0.1",
}
BACK = {
    **ZERO_CODE,
    "OTEL_SERVICE_NAME": "zero-code-back",
    "TENANTRACE_TRUST_TENANT_CLAIMS": "acme,globex,default",
}
# One line per span from tenantrace's console exporter (OTEL_TRACES_EXPORTER=console).
SPAN_LINE = re.compile(
    r"^\[(?P<project>[^\]]+)\] tenant=(?P<tenant>\S+) (?P<name>.+) [\d.]+ms \w+ "
    r"trace=(?P<trace_id>[0-9a-f]{32}) parent=(?P<parent>\S+)$"
)
# The SERVER spans of front and back, and httpx's CLIENT span.
FRONT_SERVER, BACK_SERVER, CLIENT = "GET /hello", "GET /whoami", "GET"


@dataclass(frozen=True)
class Call:
    """A request to front's ``GET /hello`` and the tenant it must run for."""

    headers: dict[str, str]
    hop: str  # "internal": back at 127.0.0.1 (allowlisted); "external": at localhost
    tenant: str


def _calls() -> list[Call]:
    """The requests, with fresh trace ids (the gateway's; a forger's) per run."""
    gateway = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    forged = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    acme, globex = {"x-tenant-id": "acme"}, {"x-tenant-id": "globex"}
    return [
        Call(acme, "internal", "acme"),
        Call(globex, "internal", "globex"),
        Call({}, "internal", "default"),
        Call(acme, "internal", "acme"),
        Call(globex, "internal", "globex"),
        # The gateway's header wins over the client's own claim.
        Call({**acme, "baggage": "tenant.id=globex"}, "internal", "acme"),
        # A claim nobody vouches for: refused, and its remote parent is not continued.
        Call({"traceparent": forged, "baggage": "tenant.id=globex"}, "internal", "default"),
        # A trace the gateway started, with its header but no trusted claim of the
        # caller's own: the header names the request's tenant, not whose trace that
        # is, so front starts a new trace (linked).
        Call({**globex, "traceparent": gateway}, "internal", "globex"),
        # Not on front's egress allowlist: no baggage, so back starts its own trace.
        Call(acme, "external", "acme"),
        Call(globex, "external", "globex"),
    ]


@dataclass(frozen=True)
class Span:
    project: str
    tenant: str | None
    name: str
    trace_id: str
    parent_id: str | None
    span_id: str | None = None  # not printed by the console exporter


# ---------------------------------------------------------------- the services


def _require_zero_code() -> None:
    modules = ("opentelemetry.instrumentation.fastapi", "opentelemetry.instrumentation.httpx")
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if not INSTRUMENT.exists():
        missing.append(str(INSTRUMENT))
    if missing:
        message = f"the zero-code tests need {missing}"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide them", pytrace=False)
        pytest.skip(message)


def _clean_environ() -> dict[str, str]:
    """This environment without a developer's OpenTelemetry or tenantrace settings."""
    prefixes = ("OTEL_", "TENANTRACE_", "TELEMETRY_", "PHOENIX_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class Service:
    """``opentelemetry-instrument python examples/zero_code_app.py serve ...``."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.name = name
        self.stdout = log_dir / f"{name}.out"
        self.stderr = log_dir / f"{name}.err"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [str(INSTRUMENT), sys.executable, str(APP), "serve", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**_clean_environ(), **env, "PYTHONUNBUFFERED": "1"},
            )
        self.port = self._port()

    def _port(self, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line, newline, _ = self.stdout.read_text().partition("\n")
            if newline and line.strip().isdigit():
                return int(line)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not start:\n{self.output()}")

    def stop(self) -> int:
        """SIGINT: uvicorn shuts down and the interpreter exits normally, flushing spans.

        (On SIGTERM uvicorn re-raises the signal after shutting down, and the
        process dies before the exit-time flush.)
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"

    def console_spans(self) -> list[Span]:
        spans = []
        for line in self.stdout.read_text().splitlines()[1:]:  # after the port
            match = SPAN_LINE.match(line)
            assert match is not None, f"not a span line of {self.name}: {line!r}"
            parent = match["parent"]
            spans.append(
                Span(
                    project=match["project"],
                    tenant=match["tenant"],
                    name=match["name"],
                    trace_id=match["trace_id"],
                    parent_id=None if parent == "root" else parent,
                )
            )
        return spans


@dataclass
class Run:
    calls: list[Call]
    answers: list[dict[str, Any]]
    front: Service
    back: Service


RunServices = Callable[[dict[str, str], dict[str, str]], Run]


@pytest.fixture
def run_services(tmp_path: Path) -> Iterator[RunServices]:
    """Start back, then front (extra environment for each); send the calls; stop both."""
    _require_zero_code()
    started: list[Service] = []

    def run(front_env: dict[str, str], back_env: dict[str, str]) -> Run:
        back = Service("back", {**BACK, **back_env}, tmp_path)
        started.append(back)
        front = Service("front", {**FRONT, **front_env}, tmp_path, "--peer-port", str(back.port))
        started.append(front)
        calls, answers = _calls(), []
        base = f"http://127.0.0.1:{front.port}"
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
            for call in calls:
                response = client.get("/hello", params={"hop": call.hop}, headers=call.headers)
                assert response.status_code == 200, (call, response.text, front.output())
                answers.append(response.json())
        for service in (front, back):
            assert service.stop() == 0, service.output()
            assert "Traceback" not in service.stderr.read_text(), service.output()
        return Run(calls, answers, front, back)

    try:
        yield run
    finally:
        for service in reversed(started):
            service.stop()


# ---------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Trace:
    trace_id: str
    project: str
    spans: dict[str, int]  # SERVER / CLIENT span name -> how many
    root_parent: str | None  # the parent of its first SERVER span (a remote one), if any


def _expected_traces(run: Run) -> list[Trace]:
    """Check what the handlers said; the traces the requests must have made."""
    traces = []
    for call, answer in zip(run.calls, run.answers, strict=True):
        down = answer["downstream"]
        context = (call, answer)
        assert answer["tenant"] == call.tenant, context  # tenantrace.current_tenant() in front
        carried = call.headers.get("traceparent", "").split("-")
        if len(carried) == 4:  # no trusted claim of the caller's: never continued
            assert answer["trace_id"] != carried[1], context
        project = f"cogniverse-{call.tenant}"
        root_parent = None
        if call.hop == "internal":
            # Baggage (the tenant first) went to the allowlisted host and back trusted
            # it: back ran for the same tenant, in the same trace.
            assert down["baggage"] == f"tenant.id={call.tenant}", context
            assert (down["tenant"], down["trace_id"]) == (call.tenant, answer["trace_id"]), context
            spans = {FRONT_SERVER: 1, CLIENT: 1, BACK_SERVER: 1}
            traces.append(Trace(answer["trace_id"], project, spans, root_parent))
        else:
            # Only the trace context went to the other host: back ran for its default
            # tenant, in a trace of its own (linked to front's, not continuing it).
            assert down["baggage"] is None, context
            assert down["traceparent"].split("-")[1] == answer["trace_id"], context
            assert down["tenant"] == "default", context
            assert down["trace_id"] != answer["trace_id"], context
            spans = {FRONT_SERVER: 1, CLIENT: 1}
            traces.append(Trace(answer["trace_id"], project, spans, root_parent))
            traces.append(Trace(down["trace_id"], "cogniverse-default", {BACK_SERVER: 1}, None))
    ids = [trace.trace_id for trace in traces]
    assert len(set(ids)) == len(ids), "two requests in one trace"
    return traces


def _check_spans(run: Run, spans: list[Span]) -> None:
    """Each span in its trace's project, each trace in one project, the expected spans."""
    traces = {trace.trace_id: trace for trace in _expected_traces(run)}
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        trace = traces.get(span.trace_id)
        assert trace is not None, f"a span in no request's trace (a sibling?): {span}"
        assert span.project == trace.project, (span, trace)
        if span.tenant is not None:  # the console exporter prints the span's tenant
            assert span.project == f"cogniverse-{span.tenant}", span
        by_trace[span.trace_id].append(span)
    for trace_id, trace in traces.items():
        found = by_trace[trace_id]
        names = Counter(span.name for span in found)
        # One SERVER span per request and process (no FastAPI-native sibling), one CLIENT.
        main = {name: n for name, n in names.items() if name in (FRONT_SERVER, BACK_SERVER, CLIENT)}
        assert main == trace.spans, (trace, names)
        # The rest: the ASGI instrumentation's internal spans of those requests.
        servers = tuple(f"{name} " for name in trace.spans if name != CLIENT)
        assert all(name.startswith(servers) for name in set(names) - set(main)), (trace, names)
        roots = [span for span in found if span.parent_id is None]
        root_server = FRONT_SERVER if FRONT_SERVER in trace.spans else BACK_SERVER
        [first] = [span for span in found if span.name == root_server]
        assert first.parent_id == trace.root_parent, (trace, first)
        assert len(roots) == (trace.root_parent is None), (trace, roots)
        _check_parents(trace, found)


def _check_parents(trace: Trace, spans: list[Span]) -> None:
    """With span ids (Phoenix): every span's parent is in its trace, across the wire too."""
    ids = {span.span_id for span in spans}
    if None in ids:
        return  # the console exporter prints no span id
    for span in spans:
        if span.parent_id is not None and span.parent_id != trace.root_parent:
            assert span.parent_id in ids, (trace, span)
    by_name = {span.name: span for span in spans if span.name in trace.spans}
    if CLIENT in by_name:
        assert by_name[CLIENT].parent_id == by_name[FRONT_SERVER].span_id, trace
    if CLIENT in by_name and BACK_SERVER in by_name:  # back continued front's CLIENT span
        assert by_name[BACK_SERVER].parent_id == by_name[CLIENT].span_id, trace


# ---------------------------------------------------------------- the tests


def test_zero_code_spans_printed_by_each_process(run_services: RunServices) -> None:
    """Fast, no Phoenix: both processes print their spans (console exporter, synchronous)."""
    printed = {"OTEL_TRACES_EXPORTER": "console", "TELEMETRY_SYNC_EXPORT": "true"}
    run = run_services(printed, printed)
    _check_spans(run, run.front.console_spans() + run.back.console_spans())


TENANT_PROJECTS = ("cogniverse-acme", "cogniverse-globex", "cogniverse-default")


def _phoenix_spans(
    http_url: str, projects: tuple[str, ...] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(project, span) of ``projects`` (default: every project)."""
    return [
        (project, span)
        for project in (phoenix_projects(http_url) if projects is None else projects)
        for span in phoenix_project_spans(http_url, project, limit=100_000)
    ]


@pytest.mark.phoenix
def test_zero_code_spans_in_their_tenants_phoenix_projects(
    phoenix: PhoenixServer, run_services: RunServices
) -> None:
    """Each tenant's spans in its own Phoenix project and nowhere else, read back over REST."""
    before = {span["context"]["span_id"] for _, span in _phoenix_spans(phoenix.http_url)}
    batched = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # the rest is flushed at exit
    run = run_services(
        {**batched, "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.grpc_endpoint},
        {
            **batched,
            "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.http_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    )
    wanted = {trace.trace_id for trace in _expected_traces(run)}

    def ours(projects: tuple[str, ...] | None = None) -> list[tuple[str, dict[str, Any]]]:
        # Spans new since the test began of these requests, or named after the app's
        # routes (a FastAPI-native sibling would start a trace of its own).
        return [
            (project, span)
            for project, span in _phoenix_spans(phoenix.http_url, projects)
            if span["context"]["span_id"] not in before
            and (
                span["context"]["trace_id"] in wanted
                or span["name"].startswith((FRONT_SERVER, BACK_SERVER))
            )
        ]

    # Phoenix acknowledges an export before it writes it: poll until every trace is in
    # (or give up, and let the checks below say what is missing or misplaced).
    deadline = time.monotonic() + 30
    while not wanted <= {span["context"]["trace_id"] for _, span in ours(TENANT_PROJECTS)}:
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    time.sleep(1)  # a straggler (a span in a wrong project) would land by now
    found = ours()
    span_ids = [span["context"]["span_id"] for _, span in found]
    assert len(span_ids) == len(set(span_ids)), "a span in two projects"
    spans = [
        Span(
            project=project,
            tenant=span["attributes"].get("tenant.id"),
            name=span["name"],
            trace_id=span["context"]["trace_id"],
            parent_id=span["parent_id"],
            span_id=span["context"]["span_id"],
        )
        for project, span in found
    ]
    _check_spans(run, spans)
    assert {span.project for span in spans} == set(TENANT_PROJECTS)
