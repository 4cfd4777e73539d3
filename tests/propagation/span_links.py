"""Helpers of the propagation tests."""

from __future__ import annotations

from tenantrace.testing import CapturedSpan


def linked_ids(span: CapturedSpan) -> set[tuple[str, str]]:
    """(trace id, span id) in hex of every span ``span`` links to."""
    assert span.raw is not None
    return {(f"{x.context.trace_id:032x}", f"{x.context.span_id:016x}") for x in span.raw.links}
