"""Read spans, traces and sessions back from Arize Phoenix, over its documented ``/v1`` REST API.

Only httpx is needed (the ``phoenix`` extra). Every failure to talk to Phoenix,
a refused connection, a timeout, an error status or a body that is not what
the API documents, becomes one ``PhoenixError`` that names the URL, never a
traceback from deep inside an HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from tenantrace.analytics._client import mark_roots, span_params
from tenantrace.analytics.errors import PhoenixError
from tenantrace.analytics.phoenix_sessions import OUTCOMES, Outcome, SessionReader
from tenantrace.analytics.records import (
    SessionTurn,
    SpanMetrics,
    TraceMetrics,
    span_record,
    trace_url,
)

__all__ = [
    "OUTCOMES",
    "Outcome",
    "PhoenixAnalytics",
    "PhoenixError",
    "SessionTurn",
    "SpanMetrics",
    "TraceMetrics",
    "trace_url",
]


class PhoenixAnalytics(SessionReader):
    """Spans, traces, sessions and outcomes of a Phoenix server.

    ``PhoenixAnalytics(phoenix_url="http://localhost:6006")``; a tenant's
    project is named by ``config``'s templates (the default config's unless
    given), so ``get_traces(tenant_id="acme")`` reads ``cogniverse-acme``.
    """

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
            span_params(start_time, end_time, operation_filter),
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
            span_params(start_time, end_time, operation_filter),
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
                    marked = mark_roots(spans)
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
