"""Servers on loopback (uvicorn, wsgiref) and an HTTP client in another process, for the tests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from tenantrace.testing import CapturedSpan, SpanCapture

CLIENT = Path(__file__).parent / "layers" / "http_client.py"


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # requests wait here until the server thread serves them
    return sock


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread; yields its base URL."""
    sock = _listening_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """``app`` under wsgiref on a free loopback port, in a thread; yields its base URL."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def call_from_another_process(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``requests`` ({method, url, headers, json}) with httpx from a new interpreter.

    Returns one ``{status, body, headers}`` per request; the client process
    has no tenantrace state of its own.
    """
    result = subprocess.run(
        [sys.executable, str(CLIENT)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


def wait_for_spans(capture: SpanCapture, count: int, timeout: float = 10.0) -> list[CapturedSpan]:
    """The captured spans once ``count`` have been exported (a server thread may still be
    ending its span when the client has its response), woken by the export itself."""
    exporter: Any = capture.exporter
    condition: threading.Condition | None = getattr(exporter, "_exported", None)
    if condition is None:
        condition = threading.Condition()
        original = exporter.export

        def export(batch: Any) -> Any:
            result = original(batch)
            with condition:
                condition.notify_all()
            return result

        exporter.export = export
        exporter._exported = condition
    with condition:
        done = condition.wait_for(
            lambda: len(exporter.get_finished_spans()) >= count, timeout=timeout
        )
    assert done, f"expected {count} spans, got {len(exporter.get_finished_spans())}"
    return capture.spans()
