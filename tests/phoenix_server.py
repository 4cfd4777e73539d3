"""Run a real Arize Phoenix server for the tests and read its spans back over the REST API.

``start_phoenix`` launches ``python -m phoenix.server.main serve`` in a subprocess on two free
loopback ports, with a private working directory (SQLite database, log file) and telemetry off.
The ``phoenix_*`` helpers read projects and spans through Phoenix's ``/v1`` REST API. Only httpx
and the standard library are used, so this works wherever ``arize-phoenix`` is installed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

LOG_FILE_NAME = "phoenix.log"
LOOPBACK = "127.0.0.1"
# Largest page the span endpoint accepts (``limit`` is validated as ``le=1000``).
_MAX_SPAN_PAGE = 1000
_PROJECT_PAGE = 100
_POLL_INTERVAL_S = 0.25
_PORT_IN_USE_MARKERS = ("address already in use", "errno 98", "failed to bind", "couldn't bind")
# Ports handed out by this process, so two servers started close together never share one.
_ISSUED_PORTS: set[int] = set()


@dataclass
class PhoenixServer:
    """A running Phoenix subprocess and the endpoints it serves."""

    http_url: str
    grpc_endpoint: str
    process: subprocess.Popen[bytes]
    working_dir: Path
    log_path: Path
    startup_seconds: float = 0.0
    _started_at: float = field(default_factory=time.monotonic, repr=False)
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def otlp_http_endpoint(self) -> str:
        """OTLP/HTTP (protobuf) trace endpoint, for the HTTP ``OTLPSpanExporter``."""
        return f"{self.http_url}/v1/traces"

    @property
    def pid(self) -> int:
        """Process id of the Phoenix server."""
        return self.process.pid

    def is_running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server log."""
        return _tail(self.log_path, lines)

    def stop(self, grace_s: float = 15.0) -> None:
        """Terminate the server (SIGTERM), killing it if it outlives ``grace_s``; idempotent."""
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_phoenix(
    tmp_dir: Path,
    timeout_s: float = 120,
    *,
    extra_env: dict[str, str] | None = None,
    attempts: int = 3,
) -> PhoenixServer:
    """Start Phoenix with its data and log in ``tmp_dir``; return once HTTP and gRPC answer.

    Inherited ``PHOENIX_*`` and ``OTEL_*`` variables are dropped so a developer's settings (a
    Postgres URL, auth, a collector endpoint) cannot leak in; ``extra_env`` is applied last.
    A start that loses a port race is retried on fresh ports, up to ``attempts`` times.
    Raises ``RuntimeError`` with the tail of the log when the server dies or times out.
    """
    tmp_dir = Path(tmp_dir).resolve()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    for attempt in range(1, attempts + 1):
        server = _launch(tmp_dir, extra_env)
        try:
            _wait_until_ready(server, deadline)
        except _PortInUseError:
            server.stop()
            if attempt == attempts:
                raise RuntimeError(_failure("could not bind its ports", server)) from None
            continue
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")  # pragma: no cover


def phoenix_projects(http_url: str) -> list[str]:
    """Names of all (non-experiment) projects, following the cursor across pages."""
    names: list[str] = []
    cursor: str | None = None
    with _client(http_url) as client:
        while True:
            params: dict[str, Any] = {"limit": _PROJECT_PAGE}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/v1/projects", params=params)
            response.raise_for_status()
            body = response.json()
            names.extend(project["name"] for project in body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return names


def phoenix_project_spans(http_url: str, project: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to ``limit`` spans of ``project`` (name or id), oldest first; [] if no such project.

    Each span is the REST shape: ``id`` (Phoenix GlobalID), ``name``, ``context.trace_id``,
    ``context.span_id``, ``span_kind``, ``parent_id``, ``start_time``/``end_time`` (ISO 8601),
    ``status_code`` ("OK"/"ERROR"/"UNSET"), ``status_message``, flattened ``attributes``
    (without ``openinference.span.kind``) and ``events``.
    """
    spans: list[dict[str, Any]] = []
    cursor: str | None = None
    path = f"/v1/projects/{quote(project, safe='')}/spans"
    with _client(http_url) as client:
        while len(spans) < limit:
            params: dict[str, Any] = {
                "limit": min(_MAX_SPAN_PAGE, limit - len(spans)),
                "sort": "id",
                "order": "asc",
            }
            if cursor:
                params["cursor"] = cursor
            response = client.get(path, params=params)
            if response.status_code == httpx.codes.NOT_FOUND:
                return []
            response.raise_for_status()
            body = response.json()
            spans.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
    return spans


def wait_for_spans(
    http_url: str, project: str, expected_count: int, timeout_s: float = 30
) -> list[dict[str, Any]]:
    """Poll until ``project`` holds at least ``expected_count`` spans, and return them all.

    Phoenix acknowledges an export before it writes the spans, so reads must poll.
    Raises ``TimeoutError`` naming what was found if the count is not reached in time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        spans = phoenix_project_spans(http_url, project, limit=max(expected_count, 1) + 1000)
        if len(spans) >= expected_count:
            return spans
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"project {project!r} has {len(spans)} span(s) after {timeout_s}s, "
                f"expected at least {expected_count}; projects: {phoenix_projects(http_url)}"
            )
        time.sleep(_POLL_INTERVAL_S)


class _PortInUseError(Exception):
    """The server exited because one of its ports was taken."""


def _launch(tmp_dir: Path, extra_env: dict[str, str] | None) -> PhoenixServer:
    http_port = _free_port()
    grpc_port = _free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PHOENIX_", "OTEL_"))
    }
    env.update(
        {
            "PHOENIX_HOST": LOOPBACK,
            "PHOENIX_PORT": str(http_port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(tmp_dir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_LOG_MIGRATIONS": "false",  # else ~4,500 lines of SQL per fresh database
            # Neither the agent assistant nor the /mcp server is needed; ~1.5 s faster start.
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
            "PHOENIX_ENABLE_MCP_SERVER": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    log_path = tmp_dir / LOG_FILE_NAME
    log_file = log_path.open("ab")
    log_file.write(f"\n=== phoenix serve: http {http_port}, grpc {grpc_port} ===\n".encode())
    log_file.flush()
    started_at = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "phoenix.server.main", "serve"],
        cwd=tmp_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent_preexec(),  # noqa: PLW1509 - only calls prctl
    )
    server = PhoenixServer(
        http_url=f"http://{LOOPBACK}:{http_port}",
        grpc_endpoint=f"{LOOPBACK}:{grpc_port}",
        process=process,
        working_dir=tmp_dir,
        log_path=log_path,
        _started_at=started_at,
        _log_file=log_file,
    )
    atexit.register(server.stop)
    return server


def _wait_until_ready(server: PhoenixServer, deadline: float) -> None:
    host, grpc_port = server.grpc_endpoint.rsplit(":", 1)
    with _client(server.http_url, timeout=5.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                if any(marker in server.log_tail(200).lower() for marker in _PORT_IN_USE_MARKERS):
                    raise _PortInUseError
                raise RuntimeError(_failure(f"exited with code {code} during start-up", server))
            if _http_ready(client) and _port_accepts(host, int(grpc_port)):
                server.startup_seconds = time.monotonic() - server._started_at
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(_failure("did not become ready in time", server))
            time.sleep(_POLL_INTERVAL_S)


def _http_ready(client: httpx.Client) -> bool:
    try:
        return (
            client.get("/healthz").status_code == httpx.codes.OK
            and client.get("/v1/projects", params={"limit": 1}).status_code == httpx.codes.OK
        )
    except httpx.HTTPError:
        return False


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    """A loopback port that is free right now and not yet handed out by this process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def _die_with_parent_preexec() -> Any:
    """On Linux, have the server get SIGTERM if the thread that started it dies (no orphans).

    Only used from the main thread: the death signal fires when the forking *thread* exits.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        with contextlib.suppress(Exception):
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _client(http_url: str, timeout: float = 30.0) -> httpx.Client:
    # trust_env=False: a proxy from HTTP(S)_PROXY must never sit between us and loopback.
    return httpx.Client(base_url=http_url, timeout=timeout, trust_env=False)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _failure(what: str, server: PhoenixServer) -> str:
    return (
        f"Phoenix server {what} (http {server.http_url}, grpc {server.grpc_endpoint}, "
        f"log {server.log_path}). Last log lines:\n{server.log_tail()}"
    )
