"""``tenantrace doctor``: the configuration, the endpoint probed, a test span, the stats."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
from typing import Any, TextIO
from urllib.parse import urlsplit

from tenantrace._cli_common import EXIT_DEGRADED, EXIT_OK, EXIT_UNHEALTHY


def _endpoint_address(endpoint: str) -> tuple[str, int] | None:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname, port or default


def _reachable(endpoint: str, timeout_s: float = 1.0) -> tuple[bool, str]:
    address = _endpoint_address(endpoint)
    if address is None:
        return False, f"cannot read a host and port from {endpoint!r}"
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True, f"{address[0]}:{address[1]} accepts connections"
    except OSError as exc:
        return False, f"{address[0]}:{address[1]} does not accept connections ({exc})"


_PROBE = b"GET / HTTP/1.1\r\nHost: tenantrace-doctor\r\nConnection: close\r\n\r\n"
_HTTP2_SETTINGS = 0x04


def _speaks(address: tuple[str, int], timeout_s: float = 1.0) -> str | None:
    """What a plain-text port answers to an HTTP/1.1 request: ``"http/1.1"`` (an
    OTLP/HTTP receiver), ``"http/2"`` (an HTTP/2 SETTINGS frame: a gRPC server
    answers at once), or None (no answer in time: a hung or black-holed port)."""
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(_PROBE)
            data = sock.recv(16)
            if data.startswith(b"HTTP/"):  # read the reply out: the server closes after it
                with contextlib.suppress(OSError):
                    for _ in range(64):
                        if not sock.recv(4096):
                            break
    except OSError:
        return None
    if data.startswith(b"HTTP/"):
        return "http/1.1"
    if len(data) >= 4 and data[3] == _HTTP2_SETTINGS:
        return "http/2"
    return "other" if data else None


def _protocol_hint(protocol: str, speaks: str | None, where: str) -> str | None:
    if protocol == "grpc" and speaks == "http/1.1":
        return (
            f"{where} answers HTTP/1.1, as an OTLP/HTTP receiver does (port 4318 by "
            "convention), but the exporter speaks gRPC: set OTEL_EXPORTER_OTLP_PROTOCOL="
            "http/protobuf, or point the endpoint at the gRPC port (4317 by convention)"
        )
    if protocol == "http/protobuf" and speaks == "http/2":
        return (
            f"{where} answers HTTP/2 only, as an OTLP/gRPC receiver does (port 4317 by "
            "convention), but the exporter speaks OTLP/HTTP: set OTEL_EXPORTER_OTLP_PROTOCOL="
            "grpc, or point the endpoint at the HTTP port (4318 by convention)"
        )
    return None


# How long the test span's export may take when the endpoint is refusing
# connections, not answering, or speaking another protocol: the check then
# ends in about this long instead of the exporter's retries up to --timeout.
_FAILING_EXPORT_S = 1.0


def _check_endpoint(config: Any, report: dict[str, Any]) -> tuple[bool, str | None]:
    """Connect and probe; fill ``report["endpoint"]``. (answers as expected, hint)."""
    reachable, detail = _reachable(config.otlp_endpoint)
    endpoint: dict[str, Any] = {"reachable": reachable, "detail": detail}
    report["endpoint"] = endpoint
    address = _endpoint_address(config.otlp_endpoint)
    tls = config.otlp_use_tls or config.otlp_endpoint.startswith("https://")
    if not reachable or address is None or tls:  # a TLS port is not probed in plain text
        return reachable, None
    speaks = _speaks(address)
    endpoint["answers"] = speaks
    if speaks is None:
        endpoint["detail"] = f"{detail}, but did not answer a probe within {_FAILING_EXPORT_S:g} s"
        return False, None
    hint = _protocol_hint(config.otlp_protocol, speaks, f"{address[0]}:{address[1]}")
    return hint is None, hint


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    from dataclasses import replace

    from tenantrace.instrumentation.config import TelemetryConfig
    from tenantrace.instrumentation.manager import TelemetryManager

    explicit: dict[str, Any] = {}
    if args.endpoint:
        explicit["otlp_endpoint"] = args.endpoint
    try:
        config = TelemetryConfig.from_env(**explicit)
    except ValueError as exc:
        out.write(f"status: unhealthy\nconfiguration error: {exc}\n")
        return EXIT_UNHEALTHY
    report: dict[str, Any] = {
        "config": {
            "enabled": config.enabled,
            "level": config.level.value,
            "exporter": config.effective_exporter,
            "otlp_endpoint": config.otlp_endpoint,
            "otlp_protocol": config.otlp_protocol,
            "tenant_project_template": config.tenant_project_template,
            "sync_export": config.batch_config.use_sync_export,
        }
    }
    answers, hint = True, None
    if config.enabled and config.effective_exporter.startswith("otlp"):
        answers, hint = _check_endpoint(config, report)
    # The test span's export is bounded by --timeout (by ~1 s when the endpoint is
    # already known not to take it), and the flush waits for its outcome, so the
    # figures below count it: they agree with what the exporter logs.
    export_s = args.timeout if answers else min(args.timeout, _FAILING_EXPORT_S)
    export_ms = max(1, int(export_s * 1000))
    config = replace(
        config, batch_config=replace(config.batch_config, export_timeout_millis=export_ms)
    )
    # A console exporter prints the test span: keep stdout for the report itself.
    with contextlib.redirect_stdout(sys.stderr):
        manager = TelemetryManager(config)
        try:
            health = manager.health(timeout_millis=export_ms + 1000)
        finally:
            manager.shutdown(timeout_millis=1000)
        stats = manager.get_stats()  # the final figures, after shutdown
    status = str(health["status"])
    lost = stats.get("export_failures", 0) or stats.get("dropped_spans", 0)
    if status == "healthy" and (not answers or hint or lost):
        status = "degraded"
    error = health.get("error")
    if not report.get("endpoint", {}).get("reachable", True):
        error = "the endpoint does not accept connections"
    elif hint is not None:
        error = "the endpoint speaks another protocol than the exporter"
    elif not answers:
        error = "the endpoint accepts connections but does not answer"
    elif status == "degraded" and error is None:
        error = "the test span was not exported"
    report["status"] = status
    if error is not None:
        report["error"] = error
    if hint is not None:
        report["hint"] = hint
    report["stats"] = stats
    _write_doctor(report, out, json_output=args.json)
    return {"healthy": EXIT_OK, "disabled": EXIT_OK, "degraded": EXIT_DEGRADED}.get(
        status, EXIT_UNHEALTHY
    )


def _write_doctor(report: dict[str, Any], out: TextIO, *, json_output: bool) -> None:
    if json_output:
        out.write(json.dumps(report, indent=2, default=str) + "\n")
        return
    out.write(f"status: {report['status']}\n")
    for key, value in report["config"].items():
        out.write(f"  {key}: {value}\n")
    if "endpoint" in report:
        out.write(f"endpoint: {report['endpoint']['detail']}\n")
    if "error" in report:
        out.write(f"error: {report['error']}\n")
    if "hint" in report:
        out.write(f"hint: {report['hint']}\n")
    stats = report["stats"]
    out.write(
        "stats: "
        + ", ".join(
            f"{key}={stats.get(key)}"
            for key in ("spans_started", "exported_spans", "dropped_spans", "export_failures")
        )
        + "\n"
    )
