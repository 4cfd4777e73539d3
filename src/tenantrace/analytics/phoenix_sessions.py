"""Sessions read back from Phoenix: their turns, where a session is stored, exports, outcomes."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal

from tenantrace.analytics._client import PhoenixClient, field_of, local_roots, segment
from tenantrace.analytics.records import (
    SessionTurn,
    parse_time,
    session_turn,
    turn_record,
)

__all__ = ["OUTCOMES", "Outcome", "SessionReader"]

Outcome = Literal["success", "partial", "failure"]
OUTCOMES: Final = ("success", "partial", "failure")
_TRACE_IDS_PER_REQUEST: Final = 50


class SessionReader(PhoenixClient):
    """Sessions recorded with ``using_session``: turns, lookup across tenants, outcomes."""

    def get_session_turns(
        self, session_id: str, *, tenant_id: str | None = None
    ) -> list[SessionTurn]:
        """The turns of a session in the order they started ([] for an unknown session).

        Sessions recorded with ``using_session`` / ``session_span`` are the
        tenant's: give ``tenant_id`` (or the full ``"<tenant>:<id>"``).
        """
        key = self.session_key(session_id, tenant_id)
        with self._reading():
            body = self._get(f"/v1/sessions/{segment(key)}", {}, missing_ok=True)
            if body is None:
                return []
            data = field_of(body, "data", dict)
            project = str(data.get("project_id", ""))
            trace_ids = [str(t["trace_id"]) for t in field_of(data, "traces", list)]
            roots: dict[str, dict[str, Any]] = {}
            for start in range(0, len(trace_ids), _TRACE_IDS_PER_REQUEST):
                batch = trace_ids[start : start + _TRACE_IDS_PER_REQUEST]
                params = {"trace_id": batch, "sort": "start_time", "order": "asc"}
                for span in local_roots(self._spans(project, params, None)):
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
                body = self._get(f"/v1/sessions/{segment(key)}", {}, missing_ok=True)
                if body is None:
                    continue
                project = names_by_id.get(str(field_of(body, "data", dict).get("project_id")))
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
            inserted = field_of(body, "data", list) if body else []
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
        path = f"/v1/projects/{segment(project)}/session_annotations"
        with self._reading():
            return list(self._paged(path, {"session_ids": [key], "limit": 100}))
