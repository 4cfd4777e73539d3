"""``tenantrace report`` and ``tenantrace sessions export``: what is read back from Phoenix."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from tenantrace._cli_common import EXIT_DEGRADED, EXIT_OK, parse_duration


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
