"""Learn from traces: per-modality metrics, spans read back from Phoenix, plots, a report.

``ModalityMetricsTracker`` needs nothing beyond the standard library. The
Phoenix reader needs the ``phoenix`` extra (httpx) and the plots and report
the ``plots`` extra (plotly); they are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tenantrace.analytics.errors import PhoenixError
from tenantrace.analytics.modality import ModalityMetricsTracker, ModalityStats

if TYPE_CHECKING:
    from tenantrace.analytics.insights import overview, slowest_traces, top_errors
    from tenantrace.analytics.phoenix import PhoenixAnalytics
    from tenantrace.analytics.records import SessionTurn, SpanMetrics, TraceMetrics, trace_url
    from tenantrace.analytics.report import write_report
    from tenantrace.analytics.summary import GroupStats, TimeBucket, summarize, time_series

__all__ = [
    "GroupStats",
    "ModalityMetricsTracker",
    "ModalityStats",
    "PhoenixAnalytics",
    "PhoenixError",
    "SessionTurn",
    "SpanMetrics",
    "TimeBucket",
    "TraceMetrics",
    "overview",
    "slowest_traces",
    "summarize",
    "time_series",
    "top_errors",
    "trace_url",
    "write_report",
]

_LAZY = {
    "PhoenixAnalytics": "phoenix",
    "SessionTurn": "records",
    "SpanMetrics": "records",
    "TraceMetrics": "records",
    "trace_url": "records",
    "overview": "insights",
    "slowest_traces": "insights",
    "top_errors": "insights",
    "GroupStats": "summary",
    "TimeBucket": "summary",
    "summarize": "summary",
    "time_series": "summary",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
