"""What the report counts and draws, on spans with known figures (no server needed).

The spans mirror the issue: every trace's root succeeds while a ``rerank``
child fails in one trace of seven, across 36 operations and three tenants.
The figures are checked in the data, in the plotly figures embedded in the
HTML, and in what headless Chromium draws, section by section.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest
from report_browser import pixel_stats, plotly_figures, screenshot, screenshot_sections
from synthetic_spans import Made, make_spans

from tenantrace.analytics.insights import overview, root_summary, slowest_traces, top_errors
from tenantrace.analytics.records import trace_url
from tenantrace.analytics.report import SECTIONS, write_report
from tenantrace.analytics.summary import (
    choose_bucket,
    ranked_groups,
    roots,
    summarize,
    time_series_by,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "report-synthetic"
OPERATIONS = 34  # tool.step_*, besides agent.turn and rerank
PHOENIX = "http://phoenix.example:6006"


@pytest.fixture(scope="module")
def made() -> Made:
    return make_spans(700, operations=OPERATIONS)


def test_every_span_is_counted_and_roots_apart(made: Made) -> None:
    by_operation = summarize(made.spans, by="operation")
    assert by_operation["rerank"]["count"] == made.traces
    assert by_operation["rerank"]["error_count"] == made.rerank_failures == 100
    assert by_operation["agent.turn"]["error_count"] == 0
    # Counting roots only is what hid the failures.
    assert summarize(roots(made.spans))["agent.turn"]["error_count"] == 0
    o = overview(made.spans)
    assert (o["spans"], o["traces"], o["roots"]) == (len(made.spans), made.traces, made.traces)
    assert (o["failed_spans"], o["traces_with_failed_span"], o["failed_roots"]) == (100, 100, 0)
    [(name, stats)] = root_summary(made.spans).items()
    assert name == "agent.turn"
    assert (stats["traces"], stats["failed_roots"], stats["traces_with_failed_span"]) == (
        700,
        0,
        100,
    )


def test_the_top_groups_then_other(made: Made) -> None:
    ranked = ranked_groups(made.spans, "operation", 5)
    names = [name for name, _ in ranked]
    assert names[:2] == ["agent.turn", "rerank"]
    assert names[-1] == f"other ({OPERATIONS + 2 - 5} operations)"
    assert sum(len(members) for _, members in ranked) == len(made.spans)
    assert len(ranked_groups(made.spans, "tenant", 5)) == 3  # no "other" when all fit
    with pytest.raises(ValueError, match="top"):
        ranked_groups(made.spans, "operation", 0)


def test_time_series_per_tenant(made: Made) -> None:
    bucket = choose_bucket(made.spans)
    assert bucket == timedelta(minutes=1)  # an hour of spans: about 60 points
    series = time_series_by(made.spans, "tenant", bucket)
    assert list(series) == ["acme", "globex", "initech"]
    assert sum(p["count"] for points in series.values() for p in points) == len(made.spans)
    assert sum(p["error_count"] for points in series.values() for p in points) == 100


def test_top_errors_are_scrubbed_and_grouped(made: Made) -> None:
    [group] = top_errors(made.spans)
    assert group.error_type == "ConnectionError" and group.count == 100
    assert "SECRET123" not in group.message and "pw@" not in group.message
    assert "rerank backend refused" in group.message
    assert group.operations == {"rerank": 100}
    assert sum(group.tenants.values()) == 100
    assert group.example.timestamp == group.last


def test_slowest_traces_and_their_links(made: Made) -> None:
    slow = slowest_traces(made.spans, 5)
    durations = [s.root.duration_ms for s in slow]
    assert durations == sorted(durations, reverse=True)
    assert durations[0] == max(s.duration_ms for s in made.spans)
    assert all(s.root.is_root and s.spans == 5 for s in slow)
    assert trace_url(PHOENIX + "/", "UHJvamVjdDox", "ab" * 16) == (
        f"{PHOENIX}/projects/UHJvamVjdDox/traces/{'ab' * 16}"
    )
    assert trace_url(PHOENIX, "UHJvamVjdDox", "ab" * 16, span_node_id="U3Bhbjo5=").endswith(
        "?selectedSpanNodeId=U3Bhbjo5%3D"
    )


def _text(page: str) -> str:
    without_scripts = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_scripts))


def test_the_report_says_what_it_counts_and_lists_errors(made: Made, tmp_path: Path) -> None:
    page = write_report(made.spans, tmp_path / "r.html", phoenix_url=PHOENIX).read_text()
    text = _text(page)
    assert "Counted: every span of every operation, at any depth." in text
    assert f"{len(made.spans):,} spans in 700 traces; 700 of the spans are trace roots" in text
    assert "SECRET123" not in page and "u:pw@" not in page
    assert [s for s in SECTIONS if f"<section id='{s}'>" in page] == list(SECTIONS)
    # The top error and the slowest traces link to the traces in Phoenix's UI.
    assert page.count(f"href='{PHOENIX}/projects/UHJvamVjdDo") == 11
    roots_only = write_report(roots(made.spans), tmp_path / "roots.html").read_text()
    assert "Counted: root spans only, one per trace" in _text(roots_only)


def test_figures_show_the_top_operations_and_other(made: Made, tmp_path: Path) -> None:
    page = write_report(made.spans, tmp_path / "r.html", top=10).read_text()
    figures = plotly_figures(page)
    assert list(figures) == [
        "plot-operations-0", "plot-operations-1", "plot-tenants-0",
        "plot-over-time-0", "plot-over-time-1", "plot-over-time-2",
    ]  # fmt: skip
    other = f"other ({OPERATIONS + 2 - 10} operations)"
    boxes = figures["plot-operations-0"]["data"]
    assert [b["name"] for b in boxes][::-1][:3] == ["agent.turn", "rerank", "tool.step_00"]
    assert boxes[0]["name"] == other and len(boxes) == 11
    assert sum(len(b["x"]) for b in boxes) == len(made.spans)
    [bars] = figures["plot-operations-1"]["data"]
    rates = dict(zip(bars["y"], bars["x"], strict=True))
    assert rates["rerank"] == pytest.approx(100 / 700) and rates["agent.turn"] == 0
    assert len(bars["y"]) == 11 and bars["y"][0] == other
    tenants_lines = figures["plot-over-time-0"]["data"]
    assert [line["name"] for line in tenants_lines] == ["acme", "globex", "initech"]
    operation_lines = figures["plot-over-time-1"]["data"]
    assert len(operation_lines) == 9 and operation_lines[-1]["name"].startswith("other (")
    error_lines = figures["plot-over-time-2"]["data"]
    assert [line["name"] for line in error_lines] == ["acme", "globex", "initech"]
    assert all(0 <= rate <= 1 for line in error_lines for rate in line["y"])
    assert [t["name"] for t in figures["plot-tenants-0"]["data"]] == [
        "p50", "p95", "error rate", "sessions",
    ]  # fmt: skip


def test_long_operation_names_are_cut_in_labels(tmp_path: Path) -> None:
    long_name = "svc." + "x" * 120
    made = make_spans(20, operations=3)
    spans = [s.__class__(**{**_fields(s), "operation": long_name}) for s in made.spans[:5]]
    page = write_report(spans + made.spans, tmp_path / "r.html").read_text()
    names = [b["name"] for b in plotly_figures(page)["plot-operations-0"]["data"]]
    assert all(len(name) <= 48 for name in names)
    assert any(name.startswith("svc.xxx") and name.endswith("…") for name in names)


def _fields(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def test_an_empty_range_says_so(tmp_path: Path) -> None:
    page = write_report([], tmp_path / "r.html").read_text()
    assert "No spans in this range" in page and "Plotly.newPlot(" not in page


def test_each_section_is_drawn_in_headless_chromium(made: Made, tmp_path: Path) -> None:
    report = write_report(made.spans, tmp_path / "r.html", phoenix_url=PHOENIX, top=10)
    shots = screenshot_sections(report, SECTIONS, ARTIFACTS, tmp_path)
    # A control: the same page with every section hidden is blank by these measures.
    blank = tmp_path / "blank.html"
    blank.write_text(
        report.read_text().replace("</head>", "<style>section{display:none}</style></head>")
    )
    shots["(blank)"] = screenshot(blank.as_uri(), tmp_path / "blank.png", tmp_path)
    stats = pixel_stats(shots, tmp_path)
    assert stats["(blank)"]["non_white"] < 0.001 and stats["(blank)"]["luminance_std"] < 1
    for section in SECTIONS:
        assert stats[section]["non_white"] > 0.005, (section, stats[section])
        assert stats[section]["luminance_std"] > 5, (section, stats[section])
    # Sections with plots have their data drawn in the traces' colours.
    for section in ("operations", "tenants", "over-time"):
        assert stats[section]["trace_colored"] > 0.005, (section, stats[section])
    for section in ("overview", "traces", "errors", "slowest"):
        assert stats[section]["trace_colored"] < 0.005, (section, stats[section])
