"""ModalityMetricsTracker: rolling-window figures per modality; bounded, thread-safe, lenient."""

from __future__ import annotations

import logging
import math
import threading
from enum import Enum

import pytest

from tenantrace.analytics.modality import ModalityMetricsTracker


class QueryModality(Enum):
    VIDEO = "video"
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


class NumberedModality(Enum):
    DOCUMENT = 1


class FakeClock:
    """Seconds that advance only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


STATS_KEYS = [
    "modality",
    "total_requests",
    "success_count",
    "error_count",
    "success_rate",
    "error_rate",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "avg_latency",
    "min_latency",
    "max_latency",
    "error_breakdown",
    "throughput_qps",
]


def test_seed_sample_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    tracker = ModalityMetricsTracker(window_size=1000)
    tracker.record_modality_execution(modality=QueryModality.VIDEO, latency_ms=234.5, success=True)
    tracker.record_modality_execution(
        modality="text", latency_ms=12.0, success=False, error="timeout"
    )
    stats = tracker.get_modality_stats(QueryModality.VIDEO)
    print(f"P95 latency: {stats['p95_latency']:.2f}ms")
    print(f"Success rate: {stats['success_rate']:.2%}")
    all_stats = tracker.get_all_stats()
    for modality, stats in all_stats.items():
        print(f"{modality}: {stats['total_requests']} requests")
    slowest = tracker.get_slowest_modalities(top_k=3)
    for entry in slowest:
        print(f"{entry['modality']}: {entry['p95_latency']:.1f}ms")
    error_prone = tracker.get_error_prone_modalities(min_error_rate=0.1)
    for entry in error_prone:
        print(f"{entry['modality']}: {entry['error_rate']:.2%} {entry['error_breakdown']}")
    summary = tracker.get_summary_stats()
    print(summary["overall_success_rate"], summary["active_modalities"])
    print(summary["avg_latency_p95"], summary["total_requests"])

    assert capsys.readouterr().out.splitlines() == [
        "P95 latency: 234.50ms",
        "Success rate: 100.00%",
        "text: 1 requests",
        "video: 1 requests",
        "video: 234.5ms",
        "text: 12.0ms",
        "text: 100.00% {'timeout': 1}",
        "0.5 2",
        "123.25 2",
    ]


def test_stats_dict_has_exactly_the_documented_keys_in_order() -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution(QueryModality.VIDEO, 10.0, True)
    assert list(tracker.get_modality_stats(QueryModality.VIDEO)) == STATS_KEYS
    assert list(tracker.get_modality_stats("never-seen")) == STATS_KEYS


def test_exact_figures_on_latencies_1_to_100() -> None:
    clock = FakeClock()
    tracker = ModalityMetricsTracker(clock=clock)
    for latency in range(1, 101):
        # Every tenth request fails: 10 errors, 5 timeouts and 5 ConnectionErrors.
        failed = latency % 10 == 0
        error: BaseException | str | None = None
        if failed:
            error = "timeout" if latency % 20 == 0 else ConnectionError("refused")
        tracker.record_modality_execution("video", float(latency), not failed, error=error)
        clock.now += 0.5

    stats = tracker.get_modality_stats("video")
    assert stats == {
        "modality": "video",
        "total_requests": 100,
        "success_count": 90,
        "error_count": 10,
        "success_rate": 0.9,
        "error_rate": 0.1,
        "p50_latency": 50.5,
        "p95_latency": 95.05,
        "p99_latency": 99.01,
        "avg_latency": 50.5,
        "min_latency": 1.0,
        "max_latency": 100.0,
        "error_breakdown": {"ConnectionError": 5, "timeout": 5},
        # 100 requests between t=0 and t=49.5.
        "throughput_qps": 100 / 49.5,
    }


def test_one_sample_gives_equal_percentiles_and_no_throughput() -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution(QueryModality.AUDIO, 42.0, True)
    stats = tracker.get_modality_stats(QueryModality.AUDIO)
    assert stats["p50_latency"] == stats["p95_latency"] == stats["p99_latency"] == 42.0
    assert stats["min_latency"] == stats["max_latency"] == stats["avg_latency"] == 42.0
    assert stats["throughput_qps"] == 0.0


def test_modality_names_from_enums_and_strings() -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution(QueryModality.IMAGE, 1.0, True)
    tracker.record_modality_execution("image", 1.0, True)
    tracker.record_modality_execution(NumberedModality.DOCUMENT, 1.0, True)
    assert tracker.get_modality_stats("image")["total_requests"] == 2
    assert tracker.get_modality_stats(NumberedModality.DOCUMENT)["modality"] == "document"
    assert sorted(tracker.get_all_stats()) == ["document", "image"]


def test_rolling_window_keeps_only_the_last_executions() -> None:
    tracker = ModalityMetricsTracker(window_size=10)
    for _ in range(5):
        tracker.record_modality_execution("text", 1000.0, False, error="timeout")
    for latency in range(1, 21):
        tracker.record_modality_execution("text", float(latency), True)
    stats = tracker.get_modality_stats("text")
    # Only 11..20 remain: the failures and the first ten successes left the window.
    assert stats["total_requests"] == 10
    assert (stats["min_latency"], stats["max_latency"], stats["avg_latency"]) == (11.0, 20.0, 15.5)
    assert stats["error_count"] == 0
    assert stats["error_breakdown"] == {}
    assert stats["success_rate"] == 1.0


def test_error_breakdown_kinds_and_cap() -> None:
    tracker = ModalityMetricsTracker(window_size=100, max_error_kinds=3)
    tracker.record_modality_execution("video", 1.0, False, error=TimeoutError("slow"))
    tracker.record_modality_execution("video", 1.0, False, error="timeout")
    tracker.record_modality_execution("video", 1.0, False)
    for kind in ("a", "b", "c"):
        tracker.record_modality_execution("video", 1.0, False, error=kind)
    tracker.record_modality_execution("video", 1.0, False, error="timeout")
    # An error passed with success=True is not a failure.
    tracker.record_modality_execution("video", 1.0, True, error="ignored")
    stats = tracker.get_modality_stats("video")
    assert stats["error_breakdown"] == {"other": 3, "timeout": 2, "TimeoutError": 1, "unknown": 1}
    assert stats["error_count"] == 7
    assert sum(stats["error_breakdown"].values()) == stats["error_count"]


def test_error_kinds_free_up_when_they_leave_the_window() -> None:
    tracker = ModalityMetricsTracker(window_size=2, max_error_kinds=1)
    tracker.record_modality_execution("video", 1.0, False, error="a")
    tracker.record_modality_execution("video", 1.0, True)
    tracker.record_modality_execution("video", 1.0, True)
    tracker.record_modality_execution("video", 1.0, False, error="b")
    assert tracker.get_modality_stats("video")["error_breakdown"] == {"b": 1}


def test_long_error_messages_are_truncated() -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution("video", 1.0, False, error="x" * 10_000)
    (kind,) = tracker.get_modality_stats("video")["error_breakdown"]
    assert kind == "x" * 100


def test_default_error_kinds_cap_is_32_plus_other() -> None:
    tracker = ModalityMetricsTracker()
    for i in range(100):
        tracker.record_modality_execution("video", 1.0, False, error=f"error-{i}")
    breakdown = tracker.get_modality_stats("video")["error_breakdown"]
    assert len(breakdown) == 33
    assert breakdown["other"] == 68


def test_number_of_modalities_is_bounded_least_recent_evicted() -> None:
    tracker = ModalityMetricsTracker(max_modalities=3)
    for name in ("a", "b", "c"):
        tracker.record_modality_execution(name, 1.0, True)
    tracker.record_modality_execution("a", 1.0, True)  # now "b" is the least recent
    tracker.record_modality_execution("d", 1.0, True)
    assert sorted(tracker.get_all_stats()) == ["a", "c", "d"]
    assert tracker.get_modality_stats("b")["total_requests"] == 0
    assert tracker.get_modality_stats("a")["total_requests"] == 2


def test_slowest_and_error_prone_ordering() -> None:
    tracker = ModalityMetricsTracker()
    figures = {
        "video": (300.0, 0.5),
        "text": (10.0, 0.0),
        "image": (100.0, 0.25),
        "audio": (50.0, 0.1),
    }
    for name, (latency, error_rate) in figures.items():
        for i in range(20):
            failed = i < 20 * error_rate
            tracker.record_modality_execution(name, latency, not failed, error="timeout")

    slowest = tracker.get_slowest_modalities(top_k=3)
    assert [s["modality"] for s in slowest] == ["video", "image", "audio"]
    assert [s["p95_latency"] for s in slowest] == [300.0, 100.0, 50.0]
    assert tracker.get_slowest_modalities(top_k=0) == []
    assert len(tracker.get_slowest_modalities(top_k=10)) == 4

    error_prone = tracker.get_error_prone_modalities(min_error_rate=0.1)
    assert [(s["modality"], s["error_rate"]) for s in error_prone] == [
        ("video", 0.5),
        ("image", 0.25),
        ("audio", 0.1),
    ]
    assert error_prone[0]["error_breakdown"] == {"timeout": 10}
    assert tracker.get_error_prone_modalities(min_error_rate=0.3)[0]["modality"] == "video"
    assert tracker.get_error_prone_modalities(min_error_rate=0.9) == []


def test_summary() -> None:
    tracker = ModalityMetricsTracker()
    assert tracker.get_summary_stats() == {
        "total_requests": 0,
        "total_errors": 0,
        "overall_success_rate": 0.0,
        "overall_error_rate": 0.0,
        "active_modalities": 0,
        "avg_latency_p95": 0.0,
        "rejected_samples": 0,
    }
    for _ in range(3):
        tracker.record_modality_execution("video", 200.0, True)
    tracker.record_modality_execution("text", 100.0, False, error="timeout")
    tracker.record_modality_execution("text", -5.0, True)
    assert tracker.get_summary_stats() == {
        "total_requests": 4,
        "total_errors": 1,
        "overall_success_rate": 0.75,
        "overall_error_rate": 0.25,
        "active_modalities": 2,
        "avg_latency_p95": 150.0,
        "rejected_samples": 1,
    }


def test_tenant_dimension() -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution("video", 100.0, True, tenant_id="acme")
    tracker.record_modality_execution("video", 300.0, False, error="timeout", tenant_id="globex")
    tracker.record_modality_execution("video", 200.0, True)
    tracker.record_modality_execution("text", 5.0, True, tenant_id="acme")

    across = tracker.get_modality_stats("video")
    assert (across["total_requests"], across["error_count"], across["p50_latency"]) == (3, 1, 200.0)
    acme = tracker.get_modality_stats("video", tenant_id="acme")
    assert (acme["total_requests"], acme["error_count"], acme["max_latency"]) == (1, 0, 100.0)
    globex = tracker.get_modality_stats("video", tenant_id="globex")
    assert globex["error_breakdown"] == {"timeout": 1}
    assert tracker.get_modality_stats("video", tenant_id="initech")["total_requests"] == 0

    assert sorted(tracker.get_all_stats(tenant_id="acme")) == ["text", "video"]
    assert sorted(tracker.get_all_stats(tenant_id="globex")) == ["video"]
    assert tracker.get_summary_stats(tenant_id="acme")["total_requests"] == 2
    assert tracker.get_error_prone_modalities(tenant_id="globex")[0]["error_rate"] == 1.0


def test_tenant_series_are_bounded() -> None:
    tracker = ModalityMetricsTracker(max_tenant_series=2)
    for tenant in ("t1", "t2", "t3"):
        tracker.record_modality_execution("video", 1.0, True, tenant_id=tenant)
    assert tracker.get_modality_stats("video", tenant_id="t1")["total_requests"] == 0
    assert tracker.get_modality_stats("video", tenant_id="t3")["total_requests"] == 1
    assert tracker.get_modality_stats("video")["total_requests"] == 3


def test_thread_safety_totals_exact_and_window_respected() -> None:
    threads_count, per_thread = 8, 10_000
    unbounded = ModalityMetricsTracker(window_size=threads_count * per_thread)
    windowed = ModalityMetricsTracker(window_size=1000)
    start = threading.Barrier(threads_count)

    def work(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            failed = i % 10 == 0
            for tracker in (unbounded, windowed):
                tracker.record_modality_execution(
                    QueryModality.VIDEO,
                    float(i % 100),
                    not failed,
                    error=f"kind-{index}" if failed else None,
                    tenant_id=f"tenant-{index}",
                )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stats = unbounded.get_modality_stats(QueryModality.VIDEO)
    assert stats["total_requests"] == 80_000
    assert stats["error_count"] == 8_000
    assert stats["success_count"] == 72_000
    assert stats["error_breakdown"] == {f"kind-{n}": 1000 for n in range(threads_count)}
    for n in range(threads_count):
        tenant = unbounded.get_modality_stats(QueryModality.VIDEO, tenant_id=f"tenant-{n}")
        assert (tenant["total_requests"], tenant["error_count"]) == (10_000, 1000)

    stats = windowed.get_modality_stats(QueryModality.VIDEO)
    assert stats["total_requests"] == 1000
    assert sum(stats["error_breakdown"].values()) == stats["error_count"]
    assert stats["success_count"] + stats["error_count"] == 1000


@pytest.mark.parametrize("latency", [math.nan, math.inf, -math.inf, -1.0, None, "fast", 10**400])
def test_bad_latency_is_rejected_and_counted(latency: object) -> None:
    tracker = ModalityMetricsTracker()
    tracker.record_modality_execution("video", latency, True)  # type: ignore[arg-type]
    assert tracker.rejected_samples == 1
    assert tracker.get_modality_stats("video")["total_requests"] == 0
    assert tracker.get_all_stats() == {}


def test_rejections_warn_once_per_tracker(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tenantrace.analytics.modality"):
        first = ModalityMetricsTracker()
        for latency in (math.nan, math.inf, -1.0):
            first.record_modality_execution("video", latency, True)
        second = ModalityMetricsTracker()
        second.record_modality_execution("video", -2.0, True)
    assert first.rejected_samples == 3
    assert second.rejected_samples == 1
    assert len(caplog.records) == 2


def test_unknown_modality_gives_zeros() -> None:
    tracker = ModalityMetricsTracker()
    assert tracker.get_modality_stats(QueryModality.VIDEO) == {
        "modality": "video",
        "total_requests": 0,
        "success_count": 0,
        "error_count": 0,
        "success_rate": 0.0,
        "error_rate": 0.0,
        "p50_latency": 0.0,
        "p95_latency": 0.0,
        "p99_latency": 0.0,
        "avg_latency": 0.0,
        "min_latency": 0.0,
        "max_latency": 0.0,
        "error_breakdown": {},
        "throughput_qps": 0.0,
    }
    # Reading does not create an entry.
    assert tracker.get_all_stats() == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_size": 0},
        {"window_size": -1},
        {"window_size": 1.5},
        {"window_size": True},
        {"max_modalities": 0},
        {"max_tenant_series": 0},
        {"max_error_kinds": 0},
    ],
)
def test_bad_construction_arguments_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be a positive int"):
        ModalityMetricsTracker(**kwargs)  # type: ignore[arg-type]


def test_throughput_with_injected_clock() -> None:
    clock = FakeClock()
    tracker = ModalityMetricsTracker(window_size=5, clock=clock)
    tracker.record_modality_execution("video", 1.0, True)
    tracker.record_modality_execution("video", 1.0, True)
    # Two samples at the same instant: no span, no throughput.
    assert tracker.get_modality_stats("video")["throughput_qps"] == 0.0
    for _ in range(8):
        clock.now += 0.25
        tracker.record_modality_execution("video", 1.0, True)
    # The window holds the last 5 samples, recorded at t=1.0, 1.25, ..., 2.0.
    assert tracker.get_modality_stats("video")["throughput_qps"] == 5.0
