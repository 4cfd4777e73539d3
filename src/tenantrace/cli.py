"""The ``tenantrace`` command: ``demo``, ``doctor``, ``report`` and ``sessions export``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

__all__ = ["main", "parse_duration"]

EXIT_OK = 0
EXIT_DEGRADED = 1
EXIT_UNHEALTHY = 2
EXIT_FAILURE = 2  # as argparse's usage errors
_DEFAULT_PHOENIX = "http://localhost:6006"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` or ``"1w"`` as a ``timedelta``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 1h or 2d: {text!r}")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise argparse.ArgumentTypeError(f"too long a duration: {text!r}") from None


# ------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from tenantrace.demo import run_demo

    return run_demo(endpoint=args.endpoint, out=out)


# ----------------------------------------------------------------- doctor


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


# ----------------------------------------------------------------- report


def _progress(description: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A progress bar on stderr (tqdm, hidden when stderr is not a terminal)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return (lambda read: None), (lambda: None)
    bar = tqdm(desc=description, unit=" spans", file=sys.stderr, disable=None, leave=False)
    state = {"last": 0}

    def update(read: int) -> None:
        # The reader reports a running count per project; tqdm wants increments.
        if read < state["last"]:
            state["last"] = 0
        bar.update(read - state["last"])
        state["last"] = read

    return update, bar.close


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from tenantrace.analytics.phoenix import PhoenixAnalytics
    from tenantrace.analytics.report import write_report

    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    end = datetime.now().astimezone()
    start = end - parse_duration(args.since)
    update, close = _progress("fetching spans from Phoenix")
    try:
        with PhoenixAnalytics(args.phoenix_url) as analytics:
            # One more than the limit: whether the range held more is then known.
            spans = analytics.get_spans(
                start,
                end,
                operation_filter=args.operation,
                limit=args.limit + 1,
                project=args.project,
                tenant_id=args.tenant,
                progress=update,
            )
    finally:
        close()
    truncated = len(spans) > args.limit
    spans = spans[: args.limit]
    scope = args.project or (f"tenant {args.tenant}" if args.tenant else "all projects")
    counting = (
        f"every span named {args.operation!r}, at any depth"
        if args.operation
        else "every span of every operation, at any depth"
    )
    path = write_report(
        spans,
        args.out,
        title=f"tenantrace report: {scope}, last {args.since}",
        source=args.phoenix_url,
        phoenix_url=args.phoenix_url,
        counting=counting,
        truncated_at=args.limit if truncated else None,
        top=args.top,
    )
    traces = len({(s.project, s.trace_id) for s in spans})
    failed = sum(1 for s in spans if s.status == "error")
    out.write(
        f"{len(spans)} spans ({failed} failed) in {traces} traces from {scope} written to {path}\n"
    )
    if truncated:
        out.write(
            f"only the first {args.limit} spans of the range were read (oldest first): "
            "raise --limit for the rest\n"
        )
    if not spans:
        out.write(
            "no spans in that range: check --since, and --tenant/--project against "
            f"the projects in Phoenix at {args.phoenix_url}\n"
        )
    return EXIT_OK


# --------------------------------------------------------------- sessions


def _sessions_export(args: argparse.Namespace, out: TextIO) -> int:
    from tenantrace.analytics.phoenix import PhoenixAnalytics

    with PhoenixAnalytics(args.phoenix_url) as analytics:
        # Without --tenant each id is looked for in every tenant's projects;
        # an id that several tenants hold is an error naming them.
        written = analytics.export_session_trajectories(
            args.session_id, args.out, tenant_id=args.tenant
        )
    missing = len(args.session_id) - written
    noun = "trajectory" if written == 1 else "trajectories"
    out.write(f"{written} session {noun} written to {args.out}")
    where = f"tenant {args.tenant}" if args.tenant else "any tenant's projects"
    out.write(f" ({missing} not found in {where})\n" if missing else "\n")
    return EXIT_OK if written else EXIT_DEGRADED


# ------------------------------------------------------------------ parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantrace", description="Tenant-aware OpenTelemetry instrumentation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="trace a small multi-tenant app and print each tenant's trace trees",
        description="Run a small multi-tenant app through the layers and propagation and "
        "print each tenant's trace trees (in memory, no server needed).",
    )
    demo.add_argument(
        "--endpoint", help="send the spans to this OTLP gRPC collector instead (host:port)"
    )
    demo.set_defaults(run=_demo)

    doctor = commands.add_parser(
        "doctor",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="check the telemetry set-up: config, endpoint, a test span, stats",
        description="Health check: the configuration in force (from OTEL_* / TELEMETRY_* "
        "variables), whether the endpoint accepts connections, and a test span flushed "
        "through the real pipeline. Exit code 0 healthy (or disabled), 1 degraded, "
        "2 unhealthy.",
    )
    doctor.add_argument(
        "--endpoint", help="check this OTLP endpoint (host:port) instead of the configured one"
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds the test span's export may take (about 1 s when the endpoint "
        "refuses connections, does not answer or speaks another protocol)",
    )
    doctor.add_argument("--json", action="store_true", help="print the result as JSON")
    doctor.set_defaults(run=_doctor)

    phoenix_url = os.environ.get("PHOENIX_URL", _DEFAULT_PHOENIX)
    report = commands.add_parser(
        "report",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="read spans back from Phoenix and write an HTML report with plots",
        description="Fetch every span of a time range from Phoenix and write one "
        "self-contained HTML file (plotly.js embedded, opens offline): latency and errors "
        "per operation (every span, at any depth) and per trace (root spans), tenants side "
        "by side, latency and error rate over time per tenant and operation, the top "
        "errors (scrubbed) and the slowest traces linked to Phoenix's UI.",
    )
    report.add_argument("--phoenix-url", default=phoenix_url, help="Phoenix's HTTP address")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--project", help="one Phoenix project")
    which.add_argument(
        "--tenant", help="the main project of one tenant (its service projects: --project)"
    )
    report.add_argument("--since", default="1h", help="how far back: e.g. 30m, 1h, 2d")
    report.add_argument("--operation", help="only spans of this name (any depth)")
    report.add_argument(
        "--limit", type=int, default=50_000, help="at most this many spans (the oldest first)"
    )
    report.add_argument(
        "--top",
        type=int,
        default=12,
        help="operations and tenants drawn one by one in the plots; the rest are 'other'",
    )
    report.add_argument("--out", default="report.html", help="the HTML file to write")
    report.set_defaults(run=_report)

    sessions = commands.add_parser(
        "sessions", help="session tools", description="Tools for sessions stored in Phoenix."
    )
    session_commands = sessions.add_subparsers(
        dest="session_command", required=True, metavar="SESSION_COMMAND"
    )
    export = session_commands.add_parser(
        "export",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write sessions' turns as JSON Lines (one session per line)",
        description="Export each session's trajectory (its turns in order, with inputs, "
        "outputs and timings) as JSON Lines, ready for a fine-tuning data set.",
    )
    export.add_argument("--phoenix-url", default=phoenix_url, help="Phoenix's HTTP address")
    export.add_argument(
        "--session-id", action="append", required=True, help="a session id (repeatable)"
    )
    export.add_argument(
        "--tenant",
        help="the tenant whose sessions these are (as recorded by using_session); "
        "without it every tenant's projects are searched",
    )
    export.add_argument("--out", default="trajectories.jsonl", help="the JSONL file to write")
    export.set_defaults(run=_sessions_export)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return its exit code (2 for a usage error or a failure)."""
    from tenantrace.analytics.errors import PhoenixError

    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        result: int = args.run(args, stream)
    except (PhoenixError, ImportError, ValueError, OSError, argparse.ArgumentTypeError) as exc:
        # What the user can act on; PhoenixError's message names the URL.
        sys.stderr.write(f"tenantrace {args.command}: {exc}\n")
        return EXIT_FAILURE
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
