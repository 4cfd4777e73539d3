"""``tenantrace demo``: a small multi-tenant app, traced, each tenant's trace trees printed.

Three tenants send requests to a toy search service. Each request goes through
the layers a real service has (API handler, memory recall, cache, database,
a queue to a background indexer on another thread) and the trace and tenant
follow it everywhere. By default spans are kept in memory and printed as one
tree per trace, grouped by the project each tenant's spans were routed to; with
``--endpoint`` the same spans go to a real OTLP collector such as Phoenix.
"""

from __future__ import annotations

import queue
import sqlite3
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tenantrace.instrumentation.config import BatchExportConfig, TelemetryConfig
from tenantrace.instrumentation.manager import TelemetryManager, install_manager
from tenantrace.instrumentation.tenants import tenant_scope
from tenantrace.layers.cache import record_cache_hit, record_cache_miss, trace_cache_operation
from tenantrace.layers.database import trace_query
from tenantrace.layers.decorators import get_tracer, trace_function
from tenantrace.layers.memory import trace_recall
from tenantrace.propagation import extract_context_from_dict, propagate_context_to_dict

__all__ = ["format_trace_trees", "run_demo"]

TENANTS = ("acme", "globex", "initech")
QUERIES = {
    "acme": ["basketball dunks", "basketball dunks"],
    "globex": ["volcano lairs"],
    "initech": ["tps reports", "stapler"],
}


class _SearchService:
    """A toy multi-tenant search service: SQLite documents, a dict cache, a job queue."""

    def __init__(self, jobs: queue.Queue[dict[str, Any] | None]) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE TABLE documents (tenant_id TEXT, title TEXT)")
        for tenant, titles in QUERIES.items():
            self._db.executemany(
                "INSERT INTO documents VALUES (?, ?)", [(tenant, t) for t in titles]
            )
        self._cache: dict[str, list[str]] = {}
        self._jobs = jobs
        self._lock = threading.Lock()

    @trace_function(name="api.search", kind=SpanKind.SERVER)
    def search(self, tenant_id: str, query: str) -> list[str]:
        with trace_recall(query, max_concepts=5, tenant_id=tenant_id) as span:
            span.set_attribute("memory.concepts_found", 2)
        key = f"search:{tenant_id}:{query}"
        with trace_cache_operation("GET", key, tenant_id):
            cached = self._cache.get(key)
            if cached is not None:
                record_cache_hit(key, tenant_id)
                return cached
            record_cache_miss(key, tenant_id)
        sql = "SELECT title FROM documents WHERE tenant_id = ? AND title LIKE ?"
        with trace_query(sql, "SELECT", "documents", tenant_id) as span, self._lock:
            rows = self._db.execute(sql, (tenant_id, f"%{query.split(maxsplit=1)[0]}%")).fetchall()
            span.set_attribute("db.response.returned_rows", len(rows))
        results = [row[0] for row in rows]
        with trace_cache_operation("SET", key, tenant_id):
            self._cache[key] = results
        # Hand the indexing to a background worker; the trace and tenant travel
        # inside the message.
        self._jobs.put(propagate_context_to_dict({"event_type": "search_logged", "query": query}))
        return results


def _indexer(jobs: queue.Queue[dict[str, Any] | None]) -> None:
    tracer = get_tracer("demo.indexer")
    while (message := jobs.get()) is not None:
        ctx = extract_context_from_dict(message, trusted=True)  # our own queue: trusted hop
        with tracer.start_as_current_span("index_search", context=ctx, kind=SpanKind.CONSUMER):
            pass


def format_trace_trees(spans: Iterable[ReadableSpan]) -> str:
    """One block per project, one indented tree per trace, children in start order."""
    by_project: dict[str, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        project = str(span.resource.attributes.get("openinference.project.name", "?"))
        by_project[project].append(span)
    lines: list[str] = []
    for project in sorted(by_project):
        members = sorted(by_project[project], key=lambda s: s.start_time or 0)
        tenant = members[0].resource.attributes.get("tenant.id", "?")
        lines.append(f"project {project}  (tenant {tenant}, {len(members)} spans)")
        ids = {s.context.span_id for s in members if s.context is not None}
        children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
        for span in members:
            parent = span.parent.span_id if span.parent is not None else None
            children[parent if parent in ids else None].append(span)

        for root in children[None]:
            trace_id = f"{root.context.trace_id:032x}" if root.context else "?"
            lines.append(f"  trace {trace_id}")
            _walk(root, "    ", "", children, lines)
        lines.append("")
    return "\n".join(lines)


def _walk(
    span: ReadableSpan,
    prefix: str,
    connector: str,
    children: dict[int | None, list[ReadableSpan]],
    lines: list[str],
) -> None:
    duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    status = "" if span.status.is_ok else f"  [{span.status.status_code.name}]"
    remote = connector == "" and span.parent is not None
    marker = "  (continues a remote trace)" if remote else ""
    hit = (span.attributes or {}).get("cache.hit")
    if hit is not None:
        marker += "  hit" if hit else "  miss"
    lines.append(f"{prefix}{connector}{span.name}  {duration:.2f} ms{status}{marker}")
    below = prefix + {"": "", "└─ ": "   "}.get(connector, "│  ")
    kids = children.get(span.context.span_id if span.context else None, [])
    for index, child in enumerate(kids):
        _walk(child, below, "└─ " if index == len(kids) - 1 else "├─ ", children, lines)


def run_demo(endpoint: str | None = None, out: TextIO = sys.stdout) -> int:
    """Run the demo; print trace trees (or send to ``endpoint``). Returns an exit code."""
    memory = InMemorySpanExporter()
    if endpoint:
        config = TelemetryConfig.from_env(otlp_endpoint=endpoint, exporter_type="otlp")
        manager = TelemetryManager(config)
    else:
        config = TelemetryConfig(
            exporter_type="memory", batch_config=BatchExportConfig(schedule_delay_millis=50)
        )
        manager = TelemetryManager(config, exporter=memory)
    previous = install_manager(manager)
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=100)
    worker = threading.Thread(target=_indexer, args=(jobs,), name="demo-indexer")
    worker.start()
    try:
        service = _SearchService(jobs)
        for tenant in TENANTS:
            with tenant_scope(tenant):
                for query in QUERIES[tenant]:
                    service.search(tenant, query)
    finally:
        jobs.put(None)
        worker.join(timeout=10)
        flushed = manager.force_flush(timeout_millis=10_000)
        install_manager(previous)
    stats = manager.get_stats()
    manager.shutdown(timeout_millis=5000)
    if endpoint:
        out.write(
            f"sent {stats['exported_spans']} spans for {len(TENANTS)} tenants to {endpoint} "
            f"(flushed: {flushed}, export failures: {stats['export_failures']})\n"
        )
        return 0 if flushed and not stats["export_failures"] else 1
    out.write(format_trace_trees(memory.get_finished_spans()))
    out.write(
        f"{stats['exported_spans']} spans, {stats['cached_tenants']} tenant projects, "
        f"{stats['dropped_spans']} dropped, one export thread.\n"
    )
    return 0
