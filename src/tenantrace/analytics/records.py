"""What is read back from Phoenix: one record per span, one per session turn, and trace links.

The conversion from Phoenix's REST span shape lives here, apart from the HTTP
client, so the figures and the report can be computed (and tested) on records
built anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tenantrace.instrumentation.sessions import SESSION_ID

__all__ = ["SessionTurn", "SpanMetrics", "TraceMetrics", "trace_url"]

# Attribute names (their last dotted segment) the seed reads as profile/strategy.
_PROFILE_KEYS = ("profile",)
_STRATEGY_KEYS = ("strategy",)


class Malformed(ValueError):
    """A part of an answer is not what Phoenix's API describes."""


@dataclass(frozen=True, slots=True)
class TraceMetrics:
    """One span read back from Phoenix (the seed's fields, then where it lives).

    ``get_traces`` gives one per trace (its root); ``get_spans`` one per span,
    with ``is_root`` telling the trace's root as the project sees it.
    ``phoenix_id`` is Phoenix's id of the span (its UI selects a span by it).
    """

    trace_id: str
    timestamp: datetime
    duration_ms: float
    operation: str
    status: str  # "success" or "error"
    profile: str | None
    strategy: str | None
    error: str | None
    metadata: dict[str, Any]
    tenant_id: str | None = None
    project: str | None = None
    session_id: str | None = None
    span_id: str = ""
    parent_id: str | None = None
    is_root: bool = True
    error_type: str | None = None
    project_id: str | None = None
    phoenix_id: str | None = None


# Every span is a TraceMetrics; the name says what ``get_spans`` returns.
SpanMetrics = TraceMetrics


@dataclass(frozen=True, slots=True)
class SessionTurn:
    """One turn of a session: the root span of one of its traces."""

    session_id: str
    index: int
    trace_id: str
    operation: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: str
    input: str | None
    output: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


def trace_url(
    phoenix_url: str, project_id: str, trace_id: str, *, span_node_id: str | None = None
) -> str:
    """The page of a trace in Phoenix's UI: ``<phoenix>/projects/<project id>/traces/<trace id>``.

    ``project_id`` is the project's id as ``/v1/projects`` gives it (a GraphQL
    global id such as ``UHJvamVjdDox``, not its name); ``trace_id`` the
    OpenTelemetry trace id in hex. ``span_node_id`` (a span's ``phoenix_id``)
    opens the trace with that span selected.
    """
    url = f"{phoenix_url.rstrip('/')}/projects/{quote(project_id, safe='')}/traces/{trace_id}"
    if span_node_id:
        url += f"?selectedSpanNodeId={quote(span_node_id, safe='')}"
    return url


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"a span time that is not text: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"a span time that is not ISO 8601: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration_ms(span: Mapping[str, Any]) -> float:
    start, end = parse_time(span.get("start_time")), parse_time(span.get("end_time"))
    return max((end - start).total_seconds() * 1000.0, 0.0)


def _attribute(attributes: Mapping[str, Any], last_segments: tuple[str, ...]) -> str | None:
    for key, value in attributes.items():
        if key.rsplit(".", 1)[-1] in last_segments and value is not None:
            return str(value)
    return None


def error_of(span: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(exception type, message)`` of a failed span; ``(None, None)`` if it did not fail.

    The message is the status description, else the last exception event's
    message (else its type, else ``"error"``). Text is as Phoenix holds it:
    scrub it before showing it to anyone.
    """
    if span.get("status_code") != "ERROR":
        return None, None
    kind: str | None = None
    message: str | None = None
    for event in span.get("events") or []:
        if isinstance(event, dict) and event.get("name") == "exception":
            attributes = event.get("attributes") or {}
            kind = optional_str(attributes.get("exception.type")) or kind
            message = optional_str(attributes.get("exception.message")) or message
    status = span.get("status_message")
    if status:
        return kind, str(status)
    return kind, message or kind or "error"


def span_record(
    span: Mapping[str, Any],
    project: str,
    tenant_id: str | None,
    *,
    is_root: bool,
    project_id: str | None,
) -> TraceMetrics:
    attributes: dict[str, Any] = dict(span.get("attributes") or {})
    kind, error = error_of(span)
    context = span["context"]
    return TraceMetrics(
        trace_id=str(context["trace_id"]),
        timestamp=parse_time(span["start_time"]),
        duration_ms=duration_ms(span),
        operation=str(span["name"]),
        status="error" if error is not None else "success",
        profile=_attribute(attributes, _PROFILE_KEYS),
        strategy=_attribute(attributes, _STRATEGY_KEYS),
        error=error,
        metadata=attributes,
        # Spans of @trace_function carry the tenant only in their Resource,
        # which Phoenix does not keep: the project read from tells it then.
        tenant_id=optional_str(attributes.get("tenant.id")) or tenant_id,
        project=project,
        session_id=optional_str(attributes.get(SESSION_ID)),
        span_id=str(context.get("span_id") or ""),
        parent_id=optional_str(span.get("parent_id")) or None,
        is_root=is_root,
        error_type=kind,
        project_id=project_id,
        phoenix_id=optional_str(span.get("id")),
    )


def session_turn(session_id: str, index: int, span: Mapping[str, Any]) -> SessionTurn:
    attributes: dict[str, Any] = dict(span.get("attributes") or {})
    return SessionTurn(
        session_id=session_id,
        index=index,
        trace_id=str(span["context"]["trace_id"]),
        operation=str(span["name"]),
        start_time=parse_time(span["start_time"]),
        end_time=parse_time(span["end_time"]),
        duration_ms=duration_ms(span),
        status="error" if error_of(span)[1] is not None else "success",
        input=optional_str(attributes.get("input.value")),
        output=optional_str(attributes.get("output.value")),
        attributes=attributes,
    )


def turn_record(turn: SessionTurn) -> dict[str, Any]:
    record = asdict(turn)
    del record["session_id"]
    record["start_time"] = turn.start_time.isoformat()
    record["end_time"] = turn.end_time.isoformat()
    return record


def optional_str(value: object) -> str | None:
    return None if value is None else str(value)
