"""The ``tenantrace`` command: ``demo``, ``doctor``, ``report`` and ``sessions export``.

The parser and ``main`` live here; ``doctor`` is in ``_cli_doctor``, ``report``
and ``sessions export`` (both read Phoenix) in ``_cli_phoenix``, the exit codes
and ``parse_duration`` in ``_cli_common``. Every name ``tenantrace.cli`` had
before that split is imported back here, so existing imports keep working.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from tenantrace._cli_common import (  # noqa: F401 - re-exported, as before the split
    _UNITS,
    EXIT_DEGRADED,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNHEALTHY,
    parse_duration,
)
from tenantrace._cli_doctor import (  # noqa: F401 - re-exported, as before the split
    _FAILING_EXPORT_S,
    _HTTP2_SETTINGS,
    _PROBE,
    _check_endpoint,
    _doctor,
    _endpoint_address,
    _protocol_hint,
    _reachable,
    _speaks,
    _write_doctor,
)
from tenantrace._cli_phoenix import (  # noqa: F401 - re-exported, as before the split
    _progress,
    _report,
    _sessions_export,
)

__all__ = ["main", "parse_duration"]

_DEFAULT_PHOENIX = "http://localhost:6006"


# ------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from tenantrace.demo import run_demo

    return run_demo(endpoint=args.endpoint, out=out)


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
