"""What the leak corpus observes: a raw-bytes OTLP/gRPC receiver and a header-recording server.

``RawOtlpReceiver`` is ``otlp_receivers``'s real OTLP/gRPC endpoint
(opentelemetry-proto's TraceService on an in-process grpcio server), which
keeps every request exactly as it arrived: its request deserializer records the
bytes before parsing them, so a test searches what went over the wire, not what
a decoder chose to show. ``HeaderServer`` is a plain HTTP server on loopback that
records the path and headers of every request (what an outbound client sent)
and answers with credentials of its own (``Set-Cookie``), for the response-header
capture of client instrumentations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from otlp_receivers import GrpcReceiver, decode_attributes, spans_of


@dataclass(frozen=True)
class WireSpan:
    """A received span, decoded only for the positive checks (the search is on bytes)."""

    name: str
    kind: int
    tenant: str | None
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[dict[str, Any]]
    status: str


class RawOtlpReceiver(GrpcReceiver):
    """An OTLP/gRPC trace receiver on ``127.0.0.1`` that keeps the raw request bytes."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)

    @property
    def endpoint(self) -> str:
        return self.url

    def wire(self) -> bytes:
        """Every request received so far, concatenated as it arrived."""
        with self._cond:
            return b"".join(self.bodies)

    def spans(self) -> list[WireSpan]:
        return [
            WireSpan(
                name=span.name,
                kind=span.kind,
                tenant=resource.get("tenant.id"),
                attributes=decode_attributes(span.attributes),
                events=[(e.name, decode_attributes(e.attributes)) for e in span.events],
                links=[decode_attributes(link.attributes) for link in span.links],
                status=span.status.message,
            )
            for request in self.received()
            for resource, span in spans_of(request)
        ]


def spellings(secret: str) -> set[bytes]:
    """The byte strings that would show ``secret`` on the wire: as it is and percent-encoded."""
    forms = {secret, quote(secret, safe=""), quote(secret, safe="@:/")}
    return {form.encode() for form in forms if form}


def leaked(wire: bytes, secrets: Iterable[str]) -> list[str]:
    """The secrets any spelling of which occurs in ``wire``."""
    return sorted({s for s in secrets if any(form in wire for form in spellings(s))})


@dataclass(frozen=True)
class Received:
    """One request as the server got it."""

    path: str
    headers: dict[str, str]  # lowercase names; repeated headers joined with ", "
    server: tuple[str, int]  # the address the connection was accepted on


class HeaderServer:
    """HTTP on ``host`` (loopback), recording each request; answers 200 (404 under
    ``/missing``) with a session cookie."""

    def __init__(self, host: str = "127.0.0.1", cookie: str = "") -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._cookie = cookie
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    key = name.lower()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                address = self.connection.getsockname()
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, headers, (address[0], int(address[1])))
                    )
                body = b"ok"
                # /missing...: a 404, for raise_for_status() and its message quoting the URL.
                self.send_response(404 if self.path.startswith("/missing") else 200)
                if receiver._cookie:
                    self.send_header("Set-Cookie", f"session={receiver._cookie}; HttpOnly")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self._server = Server((host, 0), Handler)
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
