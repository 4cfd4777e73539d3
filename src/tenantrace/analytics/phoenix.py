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
from dataclasses import replace
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
from tenantrace.analytics.records import (
    Malformed,
    SessionTurn,
    SpanMetrics,
    TraceMetrics,
    parse_time,
    session_turn,
    span_record,
    trace_url,
    turn_record,
)
from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.sessions import tenant_session_id

__all__ = [
    "PhoenixAnalytics",
    "PhoenixError",
    "SessionTurn",
    "SpanMetrics",
    "TraceMetrics",
    "trace_url",
]

Outcome = Literal["success", "partial", "failure"]
OUTCOMES: Final = ("success", "partial", "failure")
# The span endpoint accepts at most 1000 per page; smaller pages keep a
# progress bar moving and each request short.
_PAGE: Final = 500
_TRACE_IDS_PER_REQUEST: Final = 50


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
        self._project_ids: dict[str, str] = {}  # name -> Phoenix's id, as read
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
        except (Malformed, KeyError, TypeError, AttributeError, ValueError) as exc:
            detail = exc if isinstance(exc, Malformed) else f"a span without {exc}"
            raise PhoenixError(f"Phoenix at {self.phoenix_url} sent {detail}") from None

    def projects(self) -> list[str]:
        """Names of all projects on the server."""
        return list(self._project_index())

    def project_id(self, project: str) -> str | None:
        """Phoenix's id of a project (what its UI's URLs hold); None if there is none."""
        if project not in self._project_ids:
            with self._reading():
                body = self._get(f"/v1/projects/{_segment(project)}", {}, missing_ok=True)
                if body is None:
                    return None
                self._project_ids[project] = str(_field(body, "data", dict)["id"])
        return self._project_ids[project]

    def _project_index(self) -> dict[str, str]:
        """Every project's name and id, in the server's order (ids kept for links)."""
        with self._reading():
            index = {
                str(p["name"]): str(p["id"]) for p in self._paged("/v1/projects", {"limit": 100})
            }
        self._project_ids.update(index)
        return index

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
        Failed spans below a root do not show here: ``get_spans`` gives them.
        With ``operation_filter``, one per span of that name at any depth.
        ``project`` or ``tenant_id`` picks one project; neither reads every
        project. ``progress`` is called with the number of spans read after each page.
        """
        return self._read(
            _span_params(start_time, end_time, operation_filter),
            limit,
            project=project,
            tenant_id=tenant_id,
            progress=progress,
            chosen="named" if operation_filter is not None else "roots",
        )

    def get_spans(
        self,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        operation_filter: str | None = None,
        limit: int = 10_000,
        *,
        project: str | None = None,
        tenant_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[SpanMetrics]:
        """Every span started in ``[start_time, end_time)`` (the first ``limit``, oldest first).

        Each span's ``is_root`` says whether it is its trace's root as the
        project sees it (its parent is not in the project). With
        ``operation_filter`` only spans of that name are read, and one is a
        root only when it has no parent at all. ``project``, ``tenant_id`` and
        ``progress`` as for ``get_traces``.
        """
        return self._read(
            _span_params(start_time, end_time, operation_filter),
            limit,
            project=project,
            tenant_id=tenant_id,
            progress=progress,
            chosen="named" if operation_filter is not None else "all",
        )

    def _read(
        self,
        params: Mapping[str, Any],
        limit: int,
        *,
        project: str | None,
        tenant_id: str | None,
        progress: Callable[[int], None] | None,
        chosen: Literal["roots", "all", "named"],
    ) -> list[TraceMetrics]:
        if limit <= 0:
            return []
        if project is not None and tenant_id is not None:
            raise ValueError("give project or tenant_id, not both")
        if project is not None:
            projects = [project]
        elif tenant_id is not None:
            projects = [self.project_for(tenant_id)]
        else:
            projects = list(self._project_index())
        owners = dict.fromkeys(projects, tenant_id) if tenant_id else self._tenants_of(projects)
        records: list[TraceMetrics] = []
        with self._reading():
            # Each project's first ``limit``: the oldest ``limit`` of all are among them.
            for name in projects:
                spans = self._spans(name, params, progress)
                marked: Iterator[tuple[dict[str, Any], bool]]
                if chosen == "named":
                    marked = ((span, not span.get("parent_id")) for span in spans)
                else:
                    marked = _mark_roots(spans)
                    if chosen == "roots":
                        marked = (pair for pair in marked if pair[1])
                owner = owners[name]
                known = self._project_ids.get(name)
                read = [
                    span_record(span, name, owner, is_root=root, project_id=known)
                    for span, root in islice(marked, limit)
                ]
                if read and known is None:
                    # Asked only for a project with spans (none for an empty or unknown one).
                    found = self.project_id(name)
                    read = [replace(record, project_id=found) for record in read]
                records.extend(read)
        records.sort(key=lambda t: t.timestamp)
        return records[:limit]

    def trace_url(self, record: TraceMetrics, *, select_span: bool = False) -> str | None:
        """The record's trace in Phoenix's UI (the span selected); None without a project id."""
        if record.project_id is None:
            return None
        node = record.phoenix_id if select_span else None
        return trace_url(self.phoenix_url, record.project_id, record.trace_id, span_node_id=node)

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
            spans = sorted(roots.values(), key=lambda s: parse_time(s["start_time"]))
            return [session_turn(key, index, span) for index, span in enumerate(spans)]

    def find_session(self, session_id: str) -> list[tuple[str | None, str]]:
        """Where a session is stored: ``(tenant, stored session.id)`` for each match.

        The id is looked up as given (a full ``"<tenant>:<id>"``, or a session
        recorded without a tenant), then as each tenant's whose projects are on
        the server (a project's tenant: ``TelemetryConfig.parse_project_name``).
        Two tenants may both have a session of that id: every match is listed.
        """
        index = self._project_index()
        names_by_id = {pid: name for name, pid in index.items()}
        tenants = sorted({t for t in self._tenants_of(list(index)).values() if t is not None})
        keys = [self.session_key(session_id)]
        for tenant in tenants:
            key = self.session_key(session_id, tenant)
            if key not in keys:
                keys.append(key)
        found: list[tuple[str | None, str]] = []
        with self._reading():
            for key in keys:
                body = self._get(f"/v1/sessions/{_segment(key)}", {}, missing_ok=True)
                if body is None:
                    continue
                project = names_by_id.get(str(_field(body, "data", dict).get("project_id")))
                parsed = None if project is None else self._config.parse_project_name(project)
                found.append((None if parsed is None else parsed[0], key))
        return found

    def export_session_trajectories(
        self, session_ids: Iterable[str], path: str | Path, *, tenant_id: str | None = None
    ) -> int:
        """Write one JSON line per session (its turns in order) to ``path``; return the count.

        Each line is ``{"session_id", "tenant_id", "turns": [{"index", "operation",
        "input", "output", "start_time", "duration_ms", "status", ...}]}``, the
        shape a fine-tuning data set of conversations is built from. Without
        ``tenant_id`` each session is looked for in every tenant
        (``find_session``); one held by several tenants is a ``ValueError``
        naming them. Sessions not found are skipped. ``path`` is replaced only
        once every session was read, so a failure leaves an earlier file as it was.
        """
        lines: list[str] = []
        for session_id in session_ids:
            if tenant_id is not None:
                where: list[tuple[str | None, str]] = [(tenant_id, session_id)]
            else:
                where = self.find_session(session_id)
                if len(where) > 1:
                    owners = ", ".join(sorted(t or "(no tenant)" for t, _ in where))
                    raise ValueError(
                        f"session {session_id!r} is in several tenants ({owners}): "
                        "give the tenant (--tenant)"
                    )
            if not where:
                continue
            owner, key = where[0]
            turns = self.get_session_turns(key, tenant_id=tenant_id)
            if not turns:
                continue
            tenant = next(
                (str(v) for t in turns if (v := t.attributes.get("tenant.id")) is not None),
                owner,
            )
            record = {
                "session_id": session_id,
                "tenant_id": tenant,
                "turns": [turn_record(turn) for turn in turns],
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
    """The spans of ``_mark_roots`` that are roots."""
    return (span for span, root in _mark_roots(spans) if root)


def _mark_roots(spans: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Each span, and whether its parent is not among the spans read before it (a root).

    Spans must come oldest first, so a parent in the project is read before its
    children; a parent elsewhere (a caller in another service) makes its child
    a root here. Memory grows with the span ids read, until the caller stops.
    """
    seen: dict[str, set[str]] = {}
    for span in spans:
        context = span["context"]
        ids = seen.setdefault(str(context["trace_id"]), set())
        parent = span.get("parent_id")
        yield span, not parent or parent not in ids
        ids.add(str(context["span_id"]))


def _span_params(
    start_time: datetime | None, end_time: datetime | None, operation_filter: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"sort": "start_time", "order": "asc"}
    if start_time is not None:
        params["start_time"] = _iso(start_time)
    if end_time is not None:
        params["end_time"] = _iso(end_time)
    if operation_filter is not None:
        params["name"] = operation_filter
    return params


def _segment(value: str) -> str:
    return quote(value, safe="")


def _iso(moment: datetime) -> str:
    # A naive datetime is local time, as ``datetime.now()`` in the seed gives.
    return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC).isoformat()


def _field(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise Malformed(f"an answer with no {name!r} {kind.__name__}")
    return value
