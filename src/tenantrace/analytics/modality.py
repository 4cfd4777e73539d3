"""In-process latency percentiles, error rates and throughput per query modality.

``ModalityMetricsTracker`` keeps the last ``window_size`` executions of each modality
(optionally per tenant too) and computes figures over that rolling window on read.
It needs only the standard library, is thread-safe, and never raises on bad samples.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, TypedDict, TypeVar

from tenantrace.analytics._latency import LatencyFigures, latency_figures

__all__ = ["ModalityMetricsTracker", "ModalityStats", "SummaryStats"]

logger = logging.getLogger(__name__)

OTHER_ERRORS = "other"
UNKNOWN_ERROR = "unknown"
_MAX_ERROR_KEY_LENGTH = 100

_K = TypeVar("_K")


class ModalityStats(LatencyFigures):
    """Figures for one modality over its rolling window (latencies in milliseconds)."""

    modality: str
    total_requests: int
    success_count: int
    error_count: int
    success_rate: float
    error_rate: float
    error_breakdown: dict[str, int]
    throughput_qps: float


class SummaryStats(TypedDict):
    """Figures across all active modalities."""

    total_requests: int
    total_errors: int
    overall_success_rate: float
    overall_error_rate: float
    active_modalities: int
    avg_latency_p95: float
    rejected_samples: int


class _Sample(NamedTuple):
    at: float
    latency_ms: float
    error: str | None  # None for a success


class _Window:
    """The last ``size`` samples of one series, with running counts kept in step."""

    __slots__ = ("errors", "failures", "samples")

    def __init__(self, size: int) -> None:
        self.samples: deque[_Sample] = deque(maxlen=size)
        self.errors: Counter[str] = Counter()
        self.failures = 0

    def add(self, sample: _Sample, max_error_kinds: int) -> None:
        if len(self.samples) == self.samples.maxlen:
            self._forget(self.samples.popleft())
        error = sample.error
        if error is not None:
            if error not in self.errors and len(self.errors) >= max_error_kinds:
                error = OTHER_ERRORS
                sample = sample._replace(error=error)
            self.errors[error] += 1
            self.failures += 1
        self.samples.append(sample)

    def _forget(self, sample: _Sample) -> None:
        if sample.error is None:
            return
        self.failures -= 1
        self.errors[sample.error] -= 1
        if self.errors[sample.error] <= 0:
            # Dropping spent kinds lets new kinds in once old ones leave the window.
            del self.errors[sample.error]


class ModalityMetricsTracker:
    """Latency percentiles, success and error rates and throughput per modality.

    Each modality keeps its last ``window_size`` executions; every figure is over that
    window. With ``tenant_id`` a (tenant, modality) series is kept as well, with its own
    window. Memory is bounded: at most ``max_modalities`` modalities and
    ``max_tenant_series`` (tenant, modality) series are kept (the least recently
    recorded is dropped first) and each window names at most ``max_error_kinds``
    error kinds, counting the rest under ``"other"``.

    ``clock`` returns seconds and is used for throughput; inject one in tests.
    """

    def __init__(
        self,
        window_size: int = 1000,
        *,
        max_modalities: int = 256,
        max_tenant_series: int = 1024,
        max_error_kinds: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("window_size", window_size),
            ("max_modalities", max_modalities),
            ("max_tenant_series", max_tenant_series),
            ("max_error_kinds", max_error_kinds),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.window_size = window_size
        self.max_modalities = max_modalities
        self.max_tenant_series = max_tenant_series
        self.max_error_kinds = max_error_kinds
        self._clock = clock
        self._lock = threading.Lock()
        self._modalities: OrderedDict[str, _Window] = OrderedDict()
        self._tenant_series: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._rejected = 0
        self._warned = False

    @property
    def rejected_samples(self) -> int:
        """How many samples were refused (latency NaN, infinite, negative or not a number)."""
        with self._lock:
            return self._rejected

    def record_modality_execution(
        self,
        modality: Enum | str,
        latency_ms: float,
        success: bool,
        error: BaseException | str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        """Record one execution; never raises.

        ``error`` (an exception, counted by its type name, or a string) is read only
        when ``success`` is false; a failure without one counts as ``"unknown"``. A
        latency that is NaN, infinite, negative or not a number is not recorded and is
        counted in ``rejected_samples`` (a warning is logged the first time).
        """
        try:
            latency = float(latency_ms)
        except (TypeError, ValueError, OverflowError):
            latency = math.nan
        if not math.isfinite(latency) or latency < 0:
            self._reject(latency_ms)
            return
        name = _modality_name(modality)
        kind = None if success else _error_kind(error)
        with self._lock:
            sample = _Sample(self._clock(), latency, kind)
            _touch(self._modalities, name, self.max_modalities, self.window_size).add(
                sample, self.max_error_kinds
            )
            if tenant_id is not None:
                key = (str(tenant_id), name)
                _touch(self._tenant_series, key, self.max_tenant_series, self.window_size).add(
                    sample, self.max_error_kinds
                )

    def get_modality_stats(
        self, modality: Enum | str, tenant_id: str | None = None
    ) -> ModalityStats:
        """Figures for ``modality`` (for one tenant if ``tenant_id`` is given).

        A modality never recorded gives ``total_requests`` 0 and zeros throughout.
        """
        name = _modality_name(modality)
        with self._lock:
            if tenant_id is None:
                window = self._modalities.get(name)
            else:
                window = self._tenant_series.get((str(tenant_id), name))
            snapshot = _snapshot(window)
        return _stats(name, *snapshot)

    def get_all_stats(self, tenant_id: str | None = None) -> dict[str, ModalityStats]:
        """``{modality: stats}`` for every modality recorded (for one tenant if given)."""
        with self._lock:
            if tenant_id is None:
                windows = list(self._modalities.items())
            else:
                tenant = str(tenant_id)
                windows = [(m, w) for (t, m), w in self._tenant_series.items() if t == tenant]
            snapshots = [(name, _snapshot(window)) for name, window in windows]
        return {name: _stats(name, *snapshot) for name, snapshot in sorted(snapshots)}

    def get_slowest_modalities(
        self, top_k: int = 5, tenant_id: str | None = None
    ) -> list[ModalityStats]:
        """The ``top_k`` modalities with the highest p95 latency, slowest first."""
        if top_k < 1:
            return []
        entries = sorted(
            self.get_all_stats(tenant_id).values(),
            key=lambda s: (-s["p95_latency"], s["modality"]),
        )
        return entries[:top_k]

    def get_error_prone_modalities(
        self, min_error_rate: float = 0.1, tenant_id: str | None = None
    ) -> list[ModalityStats]:
        """Modalities whose error rate is at least ``min_error_rate``, highest rate first."""
        entries = [
            s
            for s in self.get_all_stats(tenant_id).values()
            if s["total_requests"] and s["error_rate"] >= min_error_rate
        ]
        return sorted(entries, key=lambda s: (-s["error_rate"], s["modality"]))

    def get_summary_stats(self, tenant_id: str | None = None) -> SummaryStats:
        """Totals across modalities; ``avg_latency_p95`` is the mean of their p95s."""
        active = [s for s in self.get_all_stats(tenant_id).values() if s["total_requests"]]
        total = sum(s["total_requests"] for s in active)
        errors = sum(s["error_count"] for s in active)
        return SummaryStats(
            total_requests=total,
            total_errors=errors,
            overall_success_rate=(total - errors) / total if total else 0.0,
            overall_error_rate=errors / total if total else 0.0,
            active_modalities=len(active),
            avg_latency_p95=statistics.fmean(s["p95_latency"] for s in active) if active else 0.0,
            rejected_samples=self.rejected_samples,
        )

    def _reject(self, latency_ms: object) -> None:
        with self._lock:
            self._rejected += 1
            first = not self._warned
            self._warned = True
        if first:
            logger.warning(
                "ModalityMetricsTracker: rejected latency %r (must be a finite number >= 0); "
                "further rejections are counted in rejected_samples without a warning",
                latency_ms,
            )


def _touch(windows: OrderedDict[_K, _Window], key: _K, limit: int, size: int) -> _Window:
    """The window for ``key``, created if new, marked most recently used."""
    window = windows.get(key)
    if window is None:
        window = windows[key] = _Window(size)
        if len(windows) > limit:
            windows.popitem(last=False)
    else:
        windows.move_to_end(key)
    return window


_Snapshot = tuple[list[_Sample], dict[str, int], int]


def _snapshot(window: _Window | None) -> _Snapshot:
    if window is None:
        return [], {}, 0
    return list(window.samples), dict(window.errors), window.failures


def _stats(
    name: str, samples: list[_Sample], errors: dict[str, int], failures: int
) -> ModalityStats:
    total = len(samples)
    latencies = sorted(s.latency_ms for s in samples)
    span = samples[-1].at - samples[0].at if total >= 2 else 0.0
    return ModalityStats(
        modality=name,
        total_requests=total,
        success_count=total - failures,
        error_count=failures,
        success_rate=(total - failures) / total if total else 0.0,
        error_rate=failures / total if total else 0.0,
        **latency_figures(latencies),
        error_breakdown=dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
        throughput_qps=total / span if span > 0 else 0.0,
    )


def _modality_name(modality: object) -> str:
    if isinstance(modality, Enum):
        value = modality.value
        return value if isinstance(value, str) else modality.name.lower()
    return modality if isinstance(modality, str) else str(modality)


def _error_kind(error: object) -> str:
    if error is None:
        return UNKNOWN_ERROR
    if isinstance(error, BaseException):
        return type(error).__name__
    if isinstance(error, type):
        return error.__name__
    # Messages are truncated so that one window's memory stays bounded.
    return str(error)[:_MAX_ERROR_KEY_LENGTH] or UNKNOWN_ERROR
