"""A Phoenix URL that is wrong in every way gives one clear PhoenixError naming the URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tenantrace.analytics import PhoenixAnalytics, PhoenixError

# path prefix -> (status, content type, body) the fake server answers with
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/html": (200, "text/html", b"<html><body>not an API</body></html>"),
    "/broken": (500, "text/plain", b"Internal Server Error"),
    "/list": (200, "application/json", b"[1, 2, 3]"),
    "/nodata": (200, "application/json", json.dumps({"next_cursor": None}).encode()),
    "/badspan": (
        200,
        "application/json",
        json.dumps(
            {"data": [{"context": {"trace_id": "t"}, "name": "x", "start_time": "yesterday"}]}
        ).encode(),
    ),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        prefix = "/" + self.path.split("/")[1]
        status, kind, body = ANSWERS.get(prefix, (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def garbage_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/html", "not JSON"),
        ("/broken", "answered 500"),
        ("/list", "unexpected body"),
        ("/nodata", "no 'data' list"),
        ("/badspan", "not ISO 8601"),
    ],
)
def test_garbage_answers_are_one_clear_error(garbage_url: str, prefix: str, message: str) -> None:
    url = garbage_url + prefix
    with PhoenixAnalytics(phoenix_url=url) as phoenix, pytest.raises(PhoenixError) as caught:
        phoenix.get_traces(project="p")
    assert message in str(caught.value)
    assert url in str(caught.value)


def test_a_refused_connection_names_the_url() -> None:
    with (
        PhoenixAnalytics(phoenix_url="http://127.0.0.1:9", timeout_s=2) as phoenix,
        pytest.raises(PhoenixError, match=r"Phoenix at http://127\.0\.0\.1:9 is unreachable"),
    ):
        phoenix.get_traces()


def test_an_unknown_project_or_session_is_empty_not_an_error(garbage_url: str) -> None:
    with PhoenixAnalytics(phoenix_url=garbage_url) as phoenix:
        assert phoenix.get_traces(project="no-such-project") == []
        assert phoenix.get_session_turns("no-such-session") == []


def test_arguments_are_checked_before_any_request() -> None:
    with PhoenixAnalytics(phoenix_url="http://127.0.0.1:9") as phoenix:
        with pytest.raises(ValueError, match="not both"):
            phoenix.get_traces(project="a", tenant_id="b")
        with pytest.raises(ValueError, match="tenant"):
            phoenix.get_traces(tenant_id="bad tenant\r\n")
        assert phoenix.get_traces(limit=0) == []
        with pytest.raises(ValueError, match="finite"):
            phoenix.log_session_outcome("s", "success", score=float("nan"))


def test_the_tenant_of_a_project_is_read_back_through_the_templates() -> None:
    # Decorated spans carry their tenant only in the Resource, which Phoenix drops:
    # reading every project, the project name tells the tenant.
    projects = [
        "cogniverse-acme",
        "cogniverse-globex",
        "cogniverse-globex-orchestration",
        "cogniverse-tenant~123",
        "cogniverse-tenant-123-video",
        "cogniverse-tenant-123",  # tenant "tenant"'s service "123" (names are injective)
        "someone-elses-project",
    ]
    with PhoenixAnalytics(phoenix_url="http://127.0.0.1:9") as phoenix:
        owners = phoenix._tenants_of(projects)
    assert owners == {
        "cogniverse-acme": "acme",
        "cogniverse-globex": "globex",
        "cogniverse-globex-orchestration": "globex",
        "cogniverse-tenant~123": "tenant-123",
        "cogniverse-tenant-123-video": "tenant-123",
        "cogniverse-tenant-123": "tenant",
        "someone-elses-project": None,
    }
