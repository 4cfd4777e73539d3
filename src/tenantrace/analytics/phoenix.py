"""Read traces and sessions back from Arize Phoenix, over its documented ``/v1`` REST API.

Only httpx is needed (the ``phoenix`` extra). Every failure to talk to Phoenix,
a refused connection, a timeout, an error status or a body that is not what
the API documents, becomes one ``PhoenixError`` that names the URL, never a
traceback from deep inside an HTTP library.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import quote

try:
    import httpx
except ImportError as _missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "reading traces from Phoenix needs httpx: pip install 'tenantrace[phoenix]'"
    ) from _missing

from tenantrace.analytics.errors import PhoenixError
from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.sessions import SESSION_ID, tenant_session_id

__all__ = ["PhoenixAnalytics", "PhoenixError", "SessionTurn", "TraceMetrics"]

Outcome = Literal["success", "partial", "failure"]
OUTCOMES: Final = ("success", "partial", "failure")
# The span endpoint accepts at most 1000 per page; smaller pages keep a
# progress bar moving and each request short.
_PAGE: Final = 500
_TRACE_IDS_PER_REQUEST: Final = 50
# Attribute names (their last dotted segment) the seed reads as profile/strategy.
_PROFILE_KEYS: Final = ("profile",)
_STRATEGY_KEYS: Final = ("strategy",)


class _Malformed(ValueError):
    """A part of an answer is not what Phoenix's API describes."""


@dataclass(frozen=True, slots=True)
class TraceMetrics:
    """One traced operation read back from Phoenix (the seed's fields, then where it lives)."""

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


class PhoenixAnalytics:
    """Traces, sessions and outcomes of a Phoenix server.

    ``PhoenixAnalytics(phoenix_url="http://localhost:6006")``; a tenant's
    project is named by ``config``'s templates (the default config's unless
    given), so ``get_traces(tenant_id="acme")`` reads ``cogniverse-acme``.
    """

    def __init__(
        self,
        phoenix_url: str = "http://localhost:6006",
        *,
        config: TelemetryConfig | None = None,
        api_key: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.phoenix_url = phoenix_url.rstrip("/")
        self._config = config or TelemetryConfig()
        headers = {"accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        # trust_env=False: a proxy from the environment must not sit between us
        # and a Phoenix on loopback.
        try:
            self._client = httpx.Client(
                base_url=self.phoenix_url, headers=headers, timeout=timeout_s, trust_env=False
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise PhoenixError(f"not a Phoenix URL: {phoenix_url!r} ({exc})") from None

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PhoenixAnalytics:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------- reading

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn an answer that is not what the API describes into one PhoenixError."""
        try:
            yield
        except (_Malformed, KeyError, TypeError, AttributeError, ValueError) as exc:
            detail = exc if isinstance(exc, _Malformed) else f"a span without {exc}"
            raise PhoenixError(f"Phoenix at {self.phoenix_url} sent {detail}") from None

    def projects(self) -> list[str]:
        """Names of all projects on the server."""
        with self._reading():
            return [str(p["name"]) for p in self._paged("/v1/projects", {"limit": 100})]

    def session_key(self, session_id: str, tenant_id: str | None = None) -> str:
        """The ``session.id`` Phoenix stores: the tenant's (``"<tenant>:<id>"``) if given."""
        key = session_id if tenant_id is None else tenant_session_id(tenant_id, session_id)
        if "/" in key:
            # Phoenix's router decodes %2F before matching: such ids cannot be read back.
            raise ValueError(f"a session id with '/' cannot be read from Phoenix: {key!r}")
        return key

    def _tenants_of(self, projects: Sequence[str]) -> dict[str, str | None]:
        """The tenant whose spans the templates route to each project (None: no tenant's).

        Spans of ``@trace_function`` carry their tenant only in the Resource,
        which Phoenix does not keep; project names are injective, so each one
        reads back as exactly one tenant (``TelemetryConfig.parse_project_name``).
        """
        owners: dict[str, str | None] = {}
        for name in projects:
            parsed = self._config.parse_project_name(name)
            owners[name] = None if parsed is None else parsed[0]
        return owners

    def project_for(self, tenant_id: str, service: str | None = None) -> str:
        """The project a tenant's spans are routed to (validates the tenant id)."""
        return self._config.get_project_name(tenant_id, service)

    def get_traces(
        self,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        operation_filter: str | None = None,
        limit: int = 1000,
        *,
        project: str | None = None,
        tenant_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[TraceMetrics]:
        """The first ``limit`` operations started in ``[start_time, end_time)``, oldest first.

        Without ``operation_filter`` one entry per trace: its root as this
        project sees it (a span whose parent is not in the project, so a
        service continuing a caller's trace has its own entry span counted).
        With it, one per span of that name at any depth. ``project`` or
        ``tenant_id`` picks one project; neither reads every project.
        ``progress`` is called with the number of spans read after each page.
        """
        if limit <= 0:
            return []
        if project is not None and tenant_id is not None:
            raise ValueError("give project or tenant_id, not both")
        projects = (
            [project]
            if project is not None
            else [self.project_for(tenant_id)]
            if tenant_id is not None
            else self.projects()
        )
        params: dict[str, Any] = {"sort": "start_time", "order": "asc"}
        if start_time is not None:
            params["start_time"] = _iso(start_time)
        if end_time is not None:
            params["end_time"] = _iso(end_time)
        if operation_filter is not None:
            params["name"] = operation_filter
        owners = dict.fromkeys(projects, tenant_id) if tenant_id else self._tenants_of(projects)
        traces: list[TraceMetrics] = []
        with self._reading():
            # Each project's first ``limit``: the oldest ``limit`` of all are among them.
            for name in projects:
                spans = self._spans(name, params, progress)
                chosen = spans if operation_filter is not None else _local_roots(spans)
                owner = owners[name]
                traces.extend(_trace_metrics(span, name, owner) for span in islice(chosen, limit))
        traces.sort(key=lambda t: t.timestamp)
        return traces[:limit]

    def get_session_turns(
        self, session_id: str, *, tenant_id: str | None = None
    ) -> list[SessionTurn]:
        """The turns of a session in the order they started ([] for an unknown session).

        Sessions recorded with ``using_session`` / ``session_span`` are the
        tenant's: give ``tenant_id`` (or the full ``"<tenant>:<id>"``).
        """
        key = self.session_key(session_id, tenant_id)
        with self._reading():
            body = self._get(f"/v1/sessions/{_segment(key)}", {}, missing_ok=True)
            if body is None:
                return []
            data = _field(body, "data", dict)
            project = str(data.get("project_id", ""))
            trace_ids = [str(t["trace_id"]) for t in _field(data, "traces", list)]
            roots: dict[str, dict[str, Any]] = {}
            for start in range(0, len(trace_ids), _TRACE_IDS_PER_REQUEST):
                batch = trace_ids[start : start + _TRACE_IDS_PER_REQUEST]
                params = {"trace_id": batch, "sort": "start_time", "order": "asc"}
                for span in _local_roots(self._spans(project, params, None)):
                    roots.setdefault(str(span["context"]["trace_id"]), span)
            spans = sorted(roots.values(), key=lambda s: _parse_time(s["start_time"]))
            return [_turn(key, index, span) for index, span in enumerate(spans)]

    def export_session_trajectories(
        self, session_ids: Iterable[str], path: str | Path, *, tenant_id: str | None = None
    ) -> int:
        """Write one JSON line per session (its turns in order) to ``path``; return the count.

        Each line is ``{"session_id", "tenant_id", "turns": [{"index", "operation",
        "input", "output", "start_time", "duration_ms", "status", ...}]}``, the
        shape a fine-tuning data set of conversations is built from. Sessions
        with no turns are skipped. ``path`` is replaced only once every session
        was read, so a failure leaves an earlier file as it was.
        """
        lines: list[str] = []
        for session_id in session_ids:
            turns = self.get_session_turns(session_id, tenant_id=tenant_id)
            if not turns:
                continue
            tenant = next(
                (str(v) for t in turns if (v := t.attributes.get("tenant.id")) is not None),
                tenant_id,
            )
            record = {
                "session_id": session_id,
                "tenant_id": tenant,
                "turns": [_turn_record(turn) for turn in turns],
            }
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text("".join(lines), encoding="utf-8")
        os.replace(partial, target)
        return len(lines)

    # ------------------------------------------------------------ outcomes

    def log_session_outcome(
        self,
        session_id: str,
        outcome: Outcome,
        *,
        score: float | None = None,
        explanation: str | None = None,
        annotator_kind: Literal["HUMAN", "LLM", "CODE"] = "CODE",
        name: str = "outcome",
        tenant_id: str | None = None,
        wait_s: float = 10.0,
    ) -> str:
        """Record how a session ended as a Phoenix session annotation; return its id.

        Phoenix stores spans shortly after it acknowledges them: an unknown
        session is asked for again for up to ``wait_s`` seconds before the
        404 becomes a ``PhoenixError``.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        if score is not None and not math.isfinite(score):
            raise ValueError(f"score must be a finite number, got {score!r}")
        key = self.session_key(session_id, tenant_id)
        annotation = {
            "session_id": key,
            "name": name,
            "annotator_kind": annotator_kind,
            "result": {"label": outcome, "score": score, "explanation": explanation},
        }
        deadline = time.monotonic() + wait_s
        while True:
            body = self._request(
                "POST",
                "/v1/session_annotations",
                params={"sync": "true"},
                json={"data": [annotation]},
                missing_ok=time.monotonic() < deadline,
            )
            if body is not None:
                break
            time.sleep(0.25)  # the session is not stored yet: nothing to wait on but the API
        with self._reading():
            inserted = _field(body, "data", list) if body else []
            return str(inserted[0]["id"]) if inserted else ""

    def get_session_outcomes(
        self, session_id: str, *, tenant_id: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        """The annotations of a session (each with ``name`` and ``result``).

        The project is the tenant's unless ``project`` is given.
        """
        if project is None:
            if tenant_id is None:
                raise ValueError("give tenant_id or project")
            project = self.project_for(tenant_id)
        key = self.session_key(session_id, tenant_id)
        path = f"/v1/projects/{_segment(project)}/session_annotations"
        with self._reading():
            return list(self._paged(path, {"session_ids": [key], "limit": 100}))

    # ------------------------------------------------------------ plumbing

    def _spans(
        self,
        project: str,
        params: Mapping[str, Any],
        progress: Callable[[int], None] | None,
    ) -> Iterator[dict[str, Any]]:
        """The spans of ``project`` page by page, fetched as the caller reads them."""
        path = f"/v1/projects/{_segment(project)}/spans"
        read = 0
        for span in self._paged(path, {**params, "limit": _PAGE}, True):
            read += 1
            if progress is not None and read % _PAGE == 0:
                progress(read)
            yield span
        if progress is not None and read % _PAGE:
            progress(read)

    def _paged(
        self, path: str, params: Mapping[str, Any], missing_ok: bool = False
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page_params = {**params, **({"cursor": cursor} if cursor else {})}
            body = self._get(path, page_params, missing_ok=missing_ok)
            if body is None:
                return
            for item in _field(body, "data", list):
                if isinstance(item, dict):
                    yield item
            next_cursor = body.get("next_cursor")
            if not next_cursor:
                return
            cursor = str(next_cursor)

    def _get(
        self, path: str, params: Mapping[str, Any], *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        return self._request("GET", path, params=params, missing_ok=missing_ok)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        url = f"{self.phoenix_url}{path}"
        try:
            response = self._client.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise PhoenixError(f"Phoenix at {self.phoenix_url} is unreachable: {exc}") from None
        if response.status_code == httpx.codes.NOT_FOUND and missing_ok:
            return None
        if response.is_error:
            raise PhoenixError(
                f"Phoenix at {url} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            body = response.json()
        except ValueError:
            raise PhoenixError(
                f"Phoenix at {url} answered with something that is not JSON: "
                f"{response.text[:120]!r}"
            ) from None
        if not isinstance(body, dict):
            raise PhoenixError(f"Phoenix at {url} answered with an unexpected body")
        return body


def _local_roots(spans: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The spans whose parent is not among the spans read before them, per trace.

    Spans must come oldest first, so a parent in the project is read before its
    children; a parent elsewhere (a caller in another service) makes its child
    a root here. Memory grows with the span ids read, until the caller stops.
    """
    seen: dict[str, set[str]] = {}
    for span in spans:
        context = span["context"]
        ids = seen.setdefault(str(context["trace_id"]), set())
        parent = span.get("parent_id")
        if not parent or parent not in ids:
            yield span
        ids.add(str(context["span_id"]))


def _segment(value: str) -> str:
    return quote(value, safe="")


def _iso(moment: datetime) -> str:
    # A naive datetime is local time, as ``datetime.now()`` in the seed gives.
    return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC).isoformat()


def _field(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise _Malformed(f"an answer with no {name!r} {kind.__name__}")
    return value


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Malformed(f"a span time that is not text: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Malformed(f"a span time that is not ISO 8601: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration_ms(span: Mapping[str, Any]) -> float:
    start, end = _parse_time(span.get("start_time")), _parse_time(span.get("end_time"))
    return max((end - start).total_seconds() * 1000.0, 0.0)


def _attribute(attributes: Mapping[str, Any], last_segments: tuple[str, ...]) -> str | None:
    for key, value in attributes.items():
        if key.rsplit(".", 1)[-1] in last_segments and value is not None:
            return str(value)
    return None


def _error_of(span: Mapping[str, Any]) -> str | None:
    if span.get("status_code") != "ERROR":
        return None
    message = span.get("status_message")
    if message:
        return str(message)
    for event in span.get("events") or []:
        if isinstance(event, dict) and event.get("name") == "exception":
            attributes = event.get("attributes") or {}
            return str(attributes.get("exception.message") or attributes.get("exception.type"))
    return "error"


def _trace_metrics(span: Mapping[str, Any], project: str, tenant_id: str | None) -> TraceMetrics:
    attributes: dict[str, Any] = dict(span.get("attributes") or {})
    error = _error_of(span)
    return TraceMetrics(
        trace_id=str(span["context"]["trace_id"]),
        timestamp=_parse_time(span["start_time"]),
        duration_ms=_duration_ms(span),
        operation=str(span["name"]),
        status="error" if error is not None else "success",
        profile=_attribute(attributes, _PROFILE_KEYS),
        strategy=_attribute(attributes, _STRATEGY_KEYS),
        error=error,
        metadata=attributes,
        # Spans of @trace_function carry the tenant only in their Resource,
        # which Phoenix does not keep: the project read from tells it then.
        tenant_id=_optional_str(attributes.get("tenant.id")) or tenant_id,
        project=project,
        session_id=_optional_str(attributes.get(SESSION_ID)),
    )


def _turn(session_id: str, index: int, span: Mapping[str, Any]) -> SessionTurn:
    attributes: dict[str, Any] = dict(span.get("attributes") or {})
    return SessionTurn(
        session_id=session_id,
        index=index,
        trace_id=str(span["context"]["trace_id"]),
        operation=str(span["name"]),
        start_time=_parse_time(span["start_time"]),
        end_time=_parse_time(span["end_time"]),
        duration_ms=_duration_ms(span),
        status="error" if _error_of(span) is not None else "success",
        input=_optional_str(attributes.get("input.value")),
        output=_optional_str(attributes.get("output.value")),
        attributes=attributes,
    )


def _turn_record(turn: SessionTurn) -> dict[str, Any]:
    record = asdict(turn)
    del record["session_id"]
    record["start_time"] = turn.start_time.isoformat()
    record["end_time"] = turn.end_time.isoformat()
    return record


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
