"""Shared fixtures: a capturing manager per test, a leak check, real services."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api

from phoenix_server import PhoenixServer, start_phoenix
from tenantrace.instrumentation.tenants import current_tenant
from tenantrace.testing import SpanCapture, capture_spans

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a local service is absent; in CI (CI=true) its absence fails the test."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    """Every span exported during the test, synchronously, in memory."""
    with capture_spans() as capture:
        yield capture
        # No span may stay open past the test, or it would leak into the next one.
        assert capture.unfinished() == 0, "a span was started but never ended"


@pytest.fixture(autouse=True)
def no_leaked_context() -> Iterator[None]:
    """A test must leave no span or tenant attached to the context it ran in."""
    token = otel_context.attach(otel_context.Context())
    try:
        yield
        assert not trace_api.get_current_span().get_span_context().is_valid, "span context leaked"
        assert current_tenant() is None, "tenant scope leaked"
    finally:
        otel_context.detach(token)


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """One real Arize Phoenix server for the whole session (free ports, private data dir).

    Skips locally when ``arize-phoenix`` is not installed; in CI it must run.
    """
    try:
        import phoenix.server.main  # noqa: F401 - only checks that the server is installed
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"arize-phoenix is not installed ({exc}); CI must provide it")
        pytest.skip(f"arize-phoenix is not installed ({exc})")
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    try:
        yield server
    finally:
        server.stop()
