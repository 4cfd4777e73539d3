"""Span capture for your own tests (also a pytest plugin: the ``tenantrace_spans`` fixture).

``capture_spans()`` installs a process-wide manager that exports synchronously
into memory, so a test can assert on whole exported spans, including the
tenant and project each one was routed to::

    def test_checkout(tenantrace_spans):
        checkout(tenant="acme")
        assert tenantrace_spans.names() == ["checkout"]
        assert tenantrace_spans.spans()[0].tenant == "acme"
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantrace.instrumentation.config import BatchExportConfig, TelemetryConfig
from tenantrace.instrumentation.manager import TelemetryManager, install_manager
from tenantrace.instrumentation.routing import install_routing_provider

__all__ = ["CapturedSpan", "SpanCapture", "capture_spans", "tenantrace_spans"]


@dataclass(frozen=True)
class CapturedSpan:
    """An exported span reduced to what tests assert on."""

    name: str
    tenant: str | None
    project: str | None
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    status: str
    attributes: dict[str, Any]
    events: list[str] = field(default_factory=list)
    links: int = 0
    raw: ReadableSpan | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, span: ReadableSpan) -> CapturedSpan:
        ctx = span.get_span_context()
        resource = span.resource.attributes
        return cls(
            name=span.name,
            tenant=_str_or_none(resource.get("tenant.id")),
            project=_str_or_none(resource.get("openinference.project.name")),
            trace_id=f"{ctx.trace_id:032x}" if ctx else "",
            span_id=f"{ctx.span_id:016x}" if ctx else "",
            parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
            kind=span.kind.name,
            status=span.status.status_code.name,
            attributes=dict(span.attributes or {}),
            events=[event.name for event in span.events],
            links=len(span.links),
            raw=span,
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class SpanCapture:
    """The spans exported by the capturing manager, oldest first."""

    def __init__(self, manager: TelemetryManager, exporter: InMemorySpanExporter) -> None:
        self.manager = manager
        self.exporter = exporter

    def spans(self) -> list[CapturedSpan]:
        self.manager.force_flush(timeout_millis=5000)
        return [CapturedSpan.of(span) for span in self.exporter.get_finished_spans()]

    def names(self) -> list[str]:
        return [span.name for span in self.spans()]

    def by_name(self, name: str) -> list[CapturedSpan]:
        return [span for span in self.spans() if span.name == name]

    def one(self, name: str) -> CapturedSpan:
        found = self.by_name(name)
        if len(found) != 1:
            raise AssertionError(f"expected one span named {name!r}, found {len(found)}")
        return found[0]

    def clear(self) -> None:
        self.exporter.clear()

    def unfinished(self) -> int:
        """Spans started through tenantrace but never ended (leaked)."""
        stats = self.manager.get_stats()
        return int(stats["spans_started"]) - int(stats["spans_ended"])


@contextmanager
def capture_spans(config: TelemetryConfig | None = None) -> Iterator[SpanCapture]:
    """Route every span of the block to memory, synchronously exported.

    Spans of third-party tracers (``trace.get_tracer(...)``, auto-instrumented
    libraries) are captured too: the routing provider is made the global
    OpenTelemetry provider, unless another SDK provider already is (a warning
    says so; OpenTelemetry lets the global provider be set only once).
    """
    exporter = InMemorySpanExporter()
    base = config or TelemetryConfig(exporter_type="memory")
    config = base.with_overrides(
        batch_config=BatchExportConfig(
            max_queue_size=base.batch_config.max_queue_size,
            max_export_batch_size=base.batch_config.max_export_batch_size,
            use_sync_export=True,
        )
    )
    manager = TelemetryManager(config, exporter=exporter)
    previous = install_manager(manager)
    install_routing_provider()  # follows the process-wide manager: this one, in the block
    try:
        yield SpanCapture(manager, exporter)
    finally:
        install_manager(previous)
        manager.shutdown(timeout_millis=1000)


try:  # the fixture only where pytest is installed
    import pytest

    @pytest.fixture
    def tenantrace_spans() -> Iterator[SpanCapture]:
        """Capture every span tenantrace exports during the test."""
        with capture_spans() as capture:
            yield capture

except ImportError:  # pragma: no cover - pytest is a test-time dependency
    pass
