"""Per-modality latency percentiles, error rates and throughput over a rolling window.

Run: python examples/analytics_modality.py  (standard library only, no server)
"""

import random
from enum import Enum

from tenantrace.analytics import ModalityMetricsTracker


class QueryModality(Enum):
    VIDEO = "video"
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


# (typical latency in ms, failure rate, possible errors) for a simulated workload.
PROFILES = {
    QueryModality.VIDEO: (220.0, 0.08, [TimeoutError("search timed out"), "connection_error"]),
    QueryModality.TEXT: (15.0, 0.01, ["timeout"]),
    QueryModality.IMAGE: (90.0, 0.15, ["connection_error", "decode_error"]),
    QueryModality.AUDIO: (140.0, 0.03, ["timeout"]),
}


class SimulatedClock:
    """One request every 20 ms (50 qps across modalities), as a live service would see."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.02
        return self.now


rng = random.Random(7)
tracker = ModalityMetricsTracker(window_size=1000, clock=SimulatedClock())
for _ in range(4000):
    modality = rng.choice(list(PROFILES))
    typical, failure_rate, errors = PROFILES[modality]
    failed = rng.random() < failure_rate
    tracker.record_modality_execution(
        modality=modality,
        latency_ms=rng.lognormvariate(0, 0.5) * typical,
        success=not failed,
        error=rng.choice(errors) if failed else None,
        tenant_id=rng.choice(["acme", "globex"]),
    )
# A broken timer's reading is refused and counted, never raised.
tracker.record_modality_execution(QueryModality.TEXT, latency_ms=float("nan"), success=True)

HEADER = ("modality", "requests", "p50 ms", "p95 ms", "p99 ms", "errors", "qps")
print(f"{HEADER[0]:<8}", *(f"{column:>8}" for column in HEADER[1:]))
for name, stats in tracker.get_all_stats().items():
    print(
        f"{name:<8} {stats['total_requests']:>8} {stats['p50_latency']:>8.1f} "
        f"{stats['p95_latency']:>8.1f} {stats['p99_latency']:>8.1f} "
        f"{stats['error_rate']:>8.1%} {stats['throughput_qps']:>8.1f}"
    )

video = tracker.get_modality_stats(QueryModality.VIDEO)
print(
    f"\nvideo P95 latency: {video['p95_latency']:.2f}ms, success rate: {video['success_rate']:.2%}"
)
acme = tracker.get_modality_stats(QueryModality.VIDEO, tenant_id="acme")
print(f"video for tenant acme: {acme['total_requests']} requests, p95 {acme['p95_latency']:.2f}ms")

slowest = tracker.get_slowest_modalities(top_k=2)
print("slowest:", ", ".join(f"{s['modality']} ({s['p95_latency']:.0f}ms p95)" for s in slowest))
for entry in tracker.get_error_prone_modalities(min_error_rate=0.05):
    print(f"error-prone: {entry['modality']} {entry['error_rate']:.1%} {entry['error_breakdown']}")

summary = tracker.get_summary_stats()
print(
    f"overall: {summary['total_requests']} requests in the windows, "
    f"{summary['overall_success_rate']:.2%} success, {summary['active_modalities']} modalities, "
    f"mean p95 {summary['avg_latency_p95']:.1f}ms, {summary['rejected_samples']} sample rejected"
)
assert summary["rejected_samples"] == 1
assert slowest[0]["modality"] == "video"
