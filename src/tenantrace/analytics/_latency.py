"""Latency figures shared by the in-process tracker and the traces read back from Phoenix."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypedDict

__all__ = ["LatencyFigures", "latency_figures"]


class LatencyFigures(TypedDict):
    p50_latency: float
    p95_latency: float
    p99_latency: float
    avg_latency: float
    min_latency: float
    max_latency: float


def latency_figures(ordered: Sequence[float]) -> LatencyFigures:
    """Percentiles (linear interpolation between closest ranks), mean, min and max.

    ``ordered`` must be sorted; an empty sequence gives zeros.
    """
    if not ordered:
        return LatencyFigures(
            p50_latency=0.0,
            p95_latency=0.0,
            p99_latency=0.0,
            avg_latency=0.0,
            min_latency=0.0,
            max_latency=0.0,
        )
    if len(ordered) == 1:
        p50 = p95 = p99 = ordered[0]
    else:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    return LatencyFigures(
        p50_latency=p50,
        p95_latency=p95,
        p99_latency=p99,
        avg_latency=statistics.fmean(ordered),
        min_latency=ordered[0],
        max_latency=ordered[-1],
    )
