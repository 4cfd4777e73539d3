"""The HTTP side of reading Phoenix: one client, paging, and answers checked against the API.

Every failure to talk to Phoenix, a refused connection, a timeout, an error
status or a body that is not what the API documents, becomes one
``PhoenixError`` that names the URL, never a traceback from deep inside an
HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

try:
    import httpx
except ImportError as _missing:  # pragma: no cover - depends on the install
    raise ImportError(
        "reading traces from Phoenix needs httpx: pip install 'tenantrace[phoenix]'"
    ) from _missing

from tenantrace.analytics.errors import PhoenixError
from tenantrace.analytics.records import Malformed
from tenantrace.instrumentation.config import TelemetryConfig
from tenantrace.instrumentation.sessions import tenant_session_id

__all__ = ["PhoenixClient"]

# The span endpoint accepts at most 1000 per page; smaller pages keep a
# progress bar moving and each request short.
_PAGE: Final = 500


class PhoenixClient:
    """A Phoenix server's ``/v1`` API: projects, spans page by page, checked answers.

    A tenant's project is named by ``config``'s templates (the default
    config's unless given).
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

    def __enter__(self) -> Self:
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
                body = self._get(f"/v1/projects/{segment(project)}", {}, missing_ok=True)
                if body is None:
                    return None
                self._project_ids[project] = str(field_of(body, "data", dict)["id"])
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

    # ------------------------------------------------------------ plumbing

    def _spans(
        self,
        project: str,
        params: Mapping[str, Any],
        progress: Callable[[int], None] | None,
    ) -> Iterator[dict[str, Any]]:
        """The spans of ``project`` page by page, fetched as the caller reads them."""
        path = f"/v1/projects/{segment(project)}/spans"
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
            for item in field_of(body, "data", list):
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


def local_roots(spans: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The spans of ``_mark_roots`` that are roots."""
    return (span for span, root in mark_roots(spans) if root)


def mark_roots(spans: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], bool]]:
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


def span_params(
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


def segment(value: str) -> str:
    return quote(value, safe="")


def _iso(moment: datetime) -> str:
    # A naive datetime is local time, as ``datetime.now()`` in the seed gives.
    return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC).isoformat()


def field_of(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise Malformed(f"an answer with no {name!r} {kind.__name__}")
    return value
